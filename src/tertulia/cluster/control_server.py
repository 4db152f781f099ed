"""The bridge's side of the control API: the authenticated WebSocket for shards, and drain.

Requests are carried out in arrival order on the event loop (the bridge is single-threaded);
``endpoint-expired`` events go to the connection that allocated the conference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSMsgType, web

from tertulia.bridge.bridge import AllocationError, Bridge
from tertulia.bridge.relay import RelayMessageError, RelayPeer
from tertulia.cluster.auth import ControlAuthError, verify_header
from tertulia.cluster.control import (
    MAX_CONTROL_MESSAGE,
    ControlError,
    ControlRequest,
    expired_event,
    parse_request,
    result,
)

log = logging.getLogger(__name__)


class ControlServer:
    def __init__(self, bridge: Bridge, secret: str, channel_base: str) -> None:
        self.bridge = bridge
        self.secret = secret
        self.channel_base = channel_base.rstrip("/")
        self.owners: dict[str, str] = {}  # conference id → the shard that allocated it
        self.by_shard: dict[str, web.WebSocketResponse] = {}  # shard id → its latest socket
        self.connections: set[web.WebSocketResponse] = set()
        self.refused = 0
        self._tasks: set[asyncio.Task[None]] = set()
        bridge.on_expired = self._on_expired

    # -- events --------------------------------------------------------------------------

    def _on_expired(self, conference_id: str, endpoint_id: str, reason: str) -> None:
        ws = self.by_shard.get(self.owners.get(conference_id, ""))
        if conference_id not in self.bridge.conferences:
            self.owners.pop(conference_id, None)
        if ws is not None and not ws.closed:
            payload = json.dumps(expired_event(conference_id, endpoint_id, reason))
            self._spawn(ws.send_str(payload))  # fire and forget; a closing socket fails quietly

    # -- requests ------------------------------------------------------------------------

    def handle(self, request: ControlRequest, shard: str) -> dict[str, Any]:
        bridge = self.bridge
        if request.type == "ping":
            return result(request.id)
        if request.type == "drain":
            self.drain()
            return result(request.id, draining=True)
        if request.type == "allocate":
            if bridge.draining and request.conference not in bridge.conferences:
                raise ControlError("draining", "this bridge takes no new conferences",
                                   request.id)
            try:
                allocation = bridge.allocate(request.conference, request.endpoint, request.offer)
            except AllocationError as exc:
                raise ControlError(exc.code, exc.message, request.id) from exc
            self.owners[request.conference] = shard
            return result(request.id, answer=allocation.answer, endpoint=allocation.endpoint_id,
                          channel=self.channel_base + allocation.channel_path)
        if request.type == "expire":
            expired = bridge.expire(request.conference, request.endpoint)
            if request.conference not in bridge.conferences:
                self.owners.pop(request.conference, None)
            return result(request.id, expired=expired)
        if request.type.startswith("relay-"):
            return self._relay(request, shard)
        if request.type == "set-blocked":
            done = bridge.set_blocked(request.conference, request.endpoint, request.kind,
                                      request.blocked)
            return result(request.id, done=done)
        raise ControlError("bad-message", "unknown request", request.id)  # parse_request guards

    def _relay(self, request: ControlRequest, shard: str) -> dict[str, Any]:
        """relay-open / relay-connect / relay-close (docs/protocol.md, "Relays")."""
        bridge = self.bridge
        if request.type == "relay-open":
            if bridge.draining and request.conference not in bridge.conferences:
                raise ControlError("draining", "this bridge takes no new conferences",
                                   request.id)
            peer = bridge.relay_open(request.conference, request.relay)
            self.owners.setdefault(request.conference, shard)
            return result(request.id, peer=peer.to_json())
        if request.type == "relay-connect":
            try:
                peer = RelayPeer.from_json(request.peer)
            except RelayMessageError as exc:
                raise ControlError("bad-message", str(exc), request.id) from exc
            done = bridge.relay_connect(request.conference, request.relay, peer,
                                        request.active)
            return result(request.id, done=done)
        closed = bridge.relay_close(request.conference, request.relay)
        return result(request.id, closed=closed)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        async def quiet() -> None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await coro

        task = asyncio.get_running_loop().create_task(quiet())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def drain(self) -> None:
        if not self.bridge.draining:
            log.info("draining: no new conferences; existing ones continue")
        self.bridge.draining = True

    # -- HTTP ----------------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> str | None:
        try:
            return verify_header(self.secret, request.headers.get("Authorization"))
        except ControlAuthError as exc:
            self.refused += 1
            log.warning("control API request refused: %s", exc)
            return None

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        shard = self._authorize(request)
        if shard is None:
            return _unauthorized()
        ws = web.WebSocketResponse(heartbeat=5.0, max_msg_size=MAX_CONTROL_MESSAGE)
        await ws.prepare(request)
        self.connections.add(ws)
        self.by_shard[shard] = ws  # a reconnecting shard gets its conferences' events again
        log.info("control connection from shard %s", shard)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.ERROR:
                        break
                    continue
                try:
                    reply = self.handle(parse_request(msg.data), shard)
                except ControlError as exc:
                    reply = exc.reply()
                except Exception:  # a bug costs one request, not the connection
                    log.exception("control request failed")
                    reply = ControlError("internal-error", "the bridge failed").reply()
                await ws.send_json(reply)
        finally:
            self.connections.discard(ws)
            if self.by_shard.get(shard) is ws:
                del self.by_shard[shard]
            log.info("control connection from shard %s closed", shard)
        return ws

    async def drain_handler(self, request: web.Request) -> web.Response:
        if self._authorize(request) is None:
            return _unauthorized()
        self.drain()
        return web.json_response({"draining": True})

    async def close(self) -> None:
        for ws in list(self.connections):
            await ws.close(code=1001)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/control/ws", self.ws_handler)
        app.router.add_post("/control/drain", self.drain_handler)


def _unauthorized() -> web.Response:
    return web.json_response(
        {"code": "unauthorized", "message": "missing or bad control credentials"},
        status=401, headers={"WWW-Authenticate": 'Bearer realm="tertulia-control"'},
    )

