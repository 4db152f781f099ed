"""The shard's side of the control API: one persistent, authenticated WebSocket to one bridge.

Requests get increasing ids and wait for the reply with the same id (bounded by a timeout).
When the connection is lost every waiting request fails with :class:`BridgeUnavailable` and
``on_lost`` is called once, so the focus can move the bridge's participants elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from tertulia.bridge.bridge import Allocation, AllocationError
from tertulia.cluster.auth import make_token
from tertulia.cluster.control import MAX_CONTROL_MESSAGE

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict[str, Any]], None]  # bridge id, event
LostCallback = Callable[[str], None]  # bridge id


class BridgeUnavailable(Exception):
    """The control connection is down (or the bridge did not answer in time)."""


class ControlClient:
    def __init__(
        self,
        bridge_id: str,
        url: str,
        *,
        secret: str,
        shard_id: str,
        session: aiohttp.ClientSession,
        on_event: EventCallback | None = None,
        on_lost: LostCallback | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.bridge_id = bridge_id
        self.url = url
        self.secret = secret
        self.shard_id = shard_id
        self.session = session
        self.on_event = on_event
        self.on_lost = on_lost
        self.request_timeout = request_timeout
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def connect(self, timeout: float = 3.0) -> None:
        headers = {"Authorization": "Bearer " + make_token(self.secret, self.shard_id)}
        try:
            # heartbeat: a bridge that stops answering pings within 2.5 s counts as lost
            self._ws = await asyncio.wait_for(
                self.session.ws_connect(self.url, headers=headers, heartbeat=5.0,
                                        max_msg_size=MAX_CONTROL_MESSAGE),
                timeout,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise BridgeUnavailable(f"bridge {self.bridge_id} refused our credentials "
                                        "(control_secret differs)") from exc
            raise BridgeUnavailable(f"bridge {self.bridge_id}: {exc}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BridgeUnavailable(f"bridge {self.bridge_id}: {exc!r}") from exc
        self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                try:
                    data = msg.json()
                except ValueError:
                    log.warning("bridge %s sent a non-JSON control message", self.bridge_id)
                    continue
                if not isinstance(data, dict):
                    continue
                request_id = data.get("id")
                if isinstance(request_id, int):
                    future = self._pending.pop(request_id, None)
                    if future is not None and not future.done():
                        future.set_result(data)
                elif self.on_event is not None:
                    self.on_event(self.bridge_id, data)
        except Exception:  # any failure means the connection is gone
            log.debug("control reader for bridge %s ended", self.bridge_id, exc_info=True)
        finally:
            self._fail_pending()
            if not self._closing:
                log.warning("control connection to bridge %s lost", self.bridge_id)
                if self.on_lost is not None:
                    self.on_lost(self.bridge_id)

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BridgeUnavailable(f"bridge {self.bridge_id} went away"))
        self._pending.clear()

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        ws = self._ws
        if ws is None or ws.closed:
            raise BridgeUnavailable(f"bridge {self.bridge_id} is not connected")
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send_json({**message, "id": request_id})
            return await asyncio.wait_for(future, self.request_timeout)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise BridgeUnavailable(f"bridge {self.bridge_id}: {exc!r}") from exc
        finally:
            self._pending.pop(request_id, None)

    async def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        reply = await self.request(message)
        if reply.get("type") == "error":
            raise AllocationError(str(reply.get("code", "bridge-error")),
                                  str(reply.get("message", "the bridge refused")))
        return reply

    # -- the BridgeClient interface of the focus ---------------------------------------------

    async def allocate(self, conference_id: str, endpoint_id: str, offer_sdp: str) -> Allocation:
        reply = await self._call({"type": "allocate", "conference": conference_id,
                                  "endpoint": endpoint_id, "offer": offer_sdp})
        answer, channel = reply.get("answer"), reply.get("channel")
        if not isinstance(answer, str) or not isinstance(channel, str):
            raise AllocationError("bridge-error", "the bridge's answer is malformed")
        return Allocation(answer, endpoint_id, channel)

    async def expire(self, conference_id: str, endpoint_id: str) -> bool:
        reply = await self._call({"type": "expire", "conference": conference_id,
                                  "endpoint": endpoint_id})
        return bool(reply.get("expired"))

    async def set_blocked(self, conference_id: str, endpoint_id: str, kind: str,
                          blocked: bool) -> bool:
        reply = await self._call({"type": "set-blocked", "conference": conference_id,
                                  "endpoint": endpoint_id, "kind": kind, "blocked": blocked})
        return bool(reply.get("done"))

    async def relay_open(self, conference_id: str, peer_bridge: str) -> dict[str, Any]:
        reply = await self._call({"type": "relay-open", "conference": conference_id,
                                  "relay": peer_bridge})
        peer = reply.get("peer")
        if not isinstance(peer, dict):
            raise AllocationError("bridge-error", "the bridge's relay-open answer is malformed")
        return peer

    async def relay_connect(self, conference_id: str, peer_bridge: str, peer: dict[str, Any],
                            active: bool) -> bool:
        reply = await self._call({"type": "relay-connect", "conference": conference_id,
                                  "relay": peer_bridge, "peer": peer, "active": active})
        return bool(reply.get("done"))

    async def relay_close(self, conference_id: str, peer_bridge: str) -> bool:
        reply = await self._call({"type": "relay-close", "conference": conference_id,
                                  "relay": peer_bridge})
        return bool(reply.get("closed"))

    async def drain(self) -> None:
        await self._call({"type": "drain"})

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fail_pending()

