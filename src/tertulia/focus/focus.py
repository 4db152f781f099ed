"""The focus: one conference per room, placing each participant's endpoint on a bridge.

Bridges are reached through a :class:`BridgePool` (docs/protocol.md): the in-process bridge of
`tertulia serve`, or bridges from the registry over the control API (`tertulia shard`). A
conference lives on one bridge: until relays between bridges exist, the focus never spreads a
conference, whatever the selection strategy. When a bridge fails, the focus forgets the
conferences on it and asks each of their participants to renegotiate; their fresh offers land
on another bridge.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from tertulia.bridge.bridge import Allocation, AllocationError, Bridge
from tertulia.cluster.control_client import BridgeUnavailable

log = logging.getLogger(__name__)


class BridgeClient(Protocol):
    """What the focus needs from one bridge (in process, or over the control API)."""

    @property
    def bridge_id(self) -> str: ...

    async def allocate(self, conference_id: str, endpoint_id: str, offer_sdp: str
                       ) -> Allocation: ...

    async def expire(self, conference_id: str, endpoint_id: str) -> bool: ...

    async def set_blocked(self, conference_id: str, endpoint_id: str, kind: str,
                          blocked: bool) -> bool: ...


class BridgePool(Protocol):
    """Where the focus's bridges come from."""

    async def choose(self, region: str | None) -> tuple[BridgeClient, str]:
        """A bridge for a new conference and the reason for the choice; raises FocusError."""
        ...

    def client(self, bridge_id: str) -> BridgeClient | None:
        """The live bridge with this id, or None when it is gone."""
        ...


class FocusError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class FocusConference:
    room: str
    conference_id: str
    bridge_id: str | None = None
    endpoints: set[str] = field(default_factory=set)
    placing: int = 0  # offers being allocated right now
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


MediaLostCallback = Callable[[str, str, str], None]  # room, participant id, reason
RenegotiateCallback = Callable[[str, str, str], None]  # room, participant id, reason


class Focus:
    def __init__(self, pool: BridgePool) -> None:
        self.pool = pool
        self.conferences: dict[str, FocusConference] = {}
        self.by_conference_id: dict[str, FocusConference] = {}
        self.on_media_lost: MediaLostCallback | None = None
        self.on_renegotiate: RenegotiateCallback | None = None
        self.moved = 0  # participants asked to renegotiate after a bridge failure
        self._tasks: set[asyncio.Task[None]] = set()

    def _conference(self, room: str) -> FocusConference:
        conf = self.conferences.get(room)
        if conf is None:
            conf = FocusConference(room, f"{room}~{secrets.token_hex(4)}")
            self.conferences[room] = conf
            self.by_conference_id[conf.conference_id] = conf
        return conf

    def has_media(self, room: str, participant_id: str) -> bool:
        conf = self.conferences.get(room)
        return conf is not None and participant_id in conf.endpoints

    def bridge_of(self, room: str) -> str | None:
        conf = self.conferences.get(room)
        return conf.bridge_id if conf is not None else None

    async def offer(
        self, room: str, participant_id: str, sdp: str, *, blocked: frozenset[str] = frozenset(),
        region: str | None = None,
    ) -> Allocation:
        """Place the participant's media; a participant that already has media (a resumed
        session renegotiating) gets a fresh endpoint. ``blocked`` kinds are not forwarded."""
        conf = self._conference(room)
        conf.placing += 1
        try:
            async with conf.lock:
                return await self._place(conf, participant_id, sdp, blocked, region)
        finally:
            conf.placing -= 1
            if not conf.endpoints and not conf.placing:
                self._forget(conf)

    async def _place(self, conf: FocusConference, participant_id: str, sdp: str,
                     blocked: frozenset[str], region: str | None) -> Allocation:
        client = self.pool.client(conf.bridge_id) if conf.bridge_id else None
        if participant_id in conf.endpoints:
            conf.endpoints.discard(participant_id)
            if client is not None:
                await _quietly(client.expire(conf.conference_id, participant_id))
        if client is None:
            client, reason = await self.pool.choose(region)
            conf.bridge_id = client.bridge_id
            log.info("conference placed on bridge %s: %s", client.bridge_id, reason,
                     extra={"room": conf.room, "conference": conf.conference_id})
        try:
            allocation = await client.allocate(conf.conference_id, participant_id, sdp)
        except AllocationError as exc:
            raise FocusError(exc.code, exc.message) from exc
        except BridgeUnavailable as exc:
            raise FocusError("bridge-unavailable", "the media server is unavailable; "
                             "try again") from exc
        if conf.bridge_id != client.bridge_id:  # the bridge failed while answering
            raise FocusError("bridge-unavailable", "the media server went away; try again")
        conf.endpoints.add(participant_id)
        for kind in blocked:
            await _quietly(client.set_blocked(conf.conference_id, participant_id, kind, True))
        return allocation

    def set_blocked(self, room: str, participant_id: str, kind: str, blocked: bool) -> None:
        """Stop (or resume) forwarding one kind of a participant's media (moderator mute)."""
        conf = self.conferences.get(room)
        client = self._client_of(conf)
        if conf is not None and client is not None and participant_id in conf.endpoints:
            self._spawn(client.set_blocked(conf.conference_id, participant_id, kind, blocked))

    def leave(self, room: str, participant_id: str) -> None:
        """Idempotent: expire the participant's endpoint, if it has one."""
        conf = self.conferences.get(room)
        if conf is None or participant_id not in conf.endpoints:
            return
        conf.endpoints.discard(participant_id)
        client = self._client_of(conf)
        if client is not None:
            self._spawn(client.expire(conf.conference_id, participant_id))
        if not conf.endpoints and not conf.placing:
            self._forget(conf)

    def _client_of(self, conf: FocusConference | None) -> BridgeClient | None:
        if conf is None or conf.bridge_id is None:
            return None
        return self.pool.client(conf.bridge_id)

    def _forget(self, conf: FocusConference) -> None:
        if self.conferences.get(conf.room) is conf:
            del self.conferences[conf.room]
        self.by_conference_id.pop(conf.conference_id, None)

    def endpoint_expired(self, conference_id: str, endpoint_id: str, reason: str) -> None:
        """The bridge dropped an endpoint on its own (ICE consent lost, DTLS failure)."""
        conf = self.by_conference_id.get(conference_id)
        if conf is None or endpoint_id not in conf.endpoints:
            return
        conf.endpoints.discard(endpoint_id)
        room = conf.room
        if not conf.endpoints and not conf.placing:
            self._forget(conf)
        if self.on_media_lost is not None:
            self.on_media_lost(room, endpoint_id, reason)

    def bridge_failed(self, bridge_id: str) -> None:
        """A bridge died: its conferences start over elsewhere. Every participant that had
        media there is asked to renegotiate (send a fresh offer); the first offer places the
        conference on another bridge."""
        for conf in [c for c in self.conferences.values() if c.bridge_id == bridge_id]:
            moved = sorted(conf.endpoints)
            conf.endpoints.clear()
            conf.bridge_id = None
            if not conf.placing:
                self._forget(conf)  # the next offer opens a new conference (new id)
            log.warning("bridge %s failed: moving %d participants", bridge_id, len(moved),
                        extra={"room": conf.room, "conference": conf.conference_id})
            for participant_id in moved:
                self.moved += 1
                if self.on_renegotiate is not None:
                    self.on_renegotiate(conf.room, participant_id, "bridge-failed")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(_quietly(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _quietly(coro: Coroutine[Any, Any, Any]) -> None:
    """Expire and set-blocked are best effort: a bridge that is gone has forgotten anyway."""
    try:
        await coro
    except (BridgeUnavailable, AllocationError) as exc:
        log.debug("bridge request failed: %s", exc)
    except Exception:
        log.exception("bridge request failed")


class LocalBridge:
    """The in-process bridge of `tertulia serve` as an async :class:`BridgeClient`."""

    def __init__(self, bridge: Bridge, bridge_id: str = "local") -> None:
        self.bridge = bridge
        self._id = bridge_id

    @property
    def bridge_id(self) -> str:
        return self._id

    async def allocate(self, conference_id: str, endpoint_id: str, offer_sdp: str
                       ) -> Allocation:
        return self.bridge.allocate(conference_id, endpoint_id, offer_sdp)

    async def expire(self, conference_id: str, endpoint_id: str) -> bool:
        return self.bridge.expire(conference_id, endpoint_id)

    async def set_blocked(self, conference_id: str, endpoint_id: str, kind: str,
                          blocked: bool) -> bool:
        return self.bridge.set_blocked(conference_id, endpoint_id, kind, blocked)


class SingleBridgePool:
    """A pool of exactly one always-present bridge (one process)."""

    def __init__(self, client: BridgeClient) -> None:
        self._client = client

    async def choose(self, region: str | None) -> tuple[BridgeClient, str]:
        return self._client, "the only bridge (one process)"

    def client(self, bridge_id: str) -> BridgeClient | None:
        return self._client if bridge_id == self._client.bridge_id else None


def local_focus(bridge: Bridge) -> Focus:
    """The focus of `tertulia serve`: one in-process bridge, its expiry events wired in."""
    focus = Focus(SingleBridgePool(LocalBridge(bridge)))
    bridge.on_expired = focus.endpoint_expired
    return focus


def attach_local_bridge(focus: Focus, bridge: Bridge) -> None:
    """Wire an in-process bridge's expiry events to the focus."""
    bridge.on_expired = focus.endpoint_expired


