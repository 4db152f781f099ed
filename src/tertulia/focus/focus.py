"""The focus: one conference per room, placing each participant's endpoint on a bridge.

Bridges are reached through a :class:`BridgePool` (docs/protocol.md): the in-process bridge of
`tertulia serve`, or bridges from the registry over the control API (`tertulia shard`). The pool
chooses a bridge for each participant, knowing how many of the conference each bridge holds
(focus/selection.py): with strategy ``single`` the conference stays on one bridge; with
``region`` or ``split`` it may span bridges (cascading). Each pair of a conference's bridges is
connected by a relay (bridge/relay_link.py), which the focus sets up with ``relay-open`` on
both and ``relay-connect`` on both, and tears down with ``relay-close`` when one of the two
holds none of the conference any more. When a bridge fails, its participants are asked to
renegotiate; their fresh offers land on another bridge (the conference goes on wherever it
still has participants).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
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

    async def relay_open(self, conference_id: str, peer_bridge: str) -> dict[str, Any]: ...

    async def relay_connect(self, conference_id: str, peer_bridge: str, peer: dict[str, Any],
                            active: bool) -> bool: ...

    async def relay_close(self, conference_id: str, peer_bridge: str) -> bool: ...


class BridgePool(Protocol):
    """Where the focus's bridges come from."""

    async def choose(self, region: str | None, conference: Mapping[str, int]
                     ) -> tuple[BridgeClient, str]:
        """A bridge for one more participant of a conference (``conference``: bridge id ->
        its participants there) and the reason for the choice; raises FocusError."""
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
    endpoints: set[str] = field(default_factory=set)
    where: dict[str, str] = field(default_factory=dict)  # participant -> bridge id
    relays: set[frozenset[str]] = field(default_factory=set)  # bridge pairs with a relay
    placing: int = 0  # offers being allocated right now
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def counts(self) -> Counter[str]:
        """Participants per bridge."""
        return Counter(self.where[p] for p in self.endpoints if p in self.where)

    @property
    def bridge_id(self) -> str | None:
        """The bridge holding most of the conference (None: no media anywhere)."""
        counts = self.counts()
        return min(counts, key=lambda b: (-counts[b], b)) if counts else None


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
        self.relays_opened = 0
        self._failures: Counter[str] = Counter()  # bridge id -> times it failed
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

    def bridges_of(self, room: str) -> dict[str, int]:
        """Participants per bridge of the room's conference."""
        conf = self.conferences.get(room)
        return dict(conf.counts()) if conf is not None else {}

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
        if participant_id in conf.endpoints:
            old = self._client_of(conf, participant_id)
            self._drop(conf, participant_id)
            if old is not None:
                await _quietly(old.expire(conf.conference_id, participant_id))
        live = {b: n for b, n in conf.counts().items() if self.pool.client(b) is not None}
        client, reason = await self.pool.choose(region, live)
        if client.bridge_id not in live:
            log.info("conference %s bridge %s: %s",
                     "extended to" if live else "placed on", client.bridge_id, reason,
                     extra={"room": conf.room, "conference": conf.conference_id})
        failures = self._failures[client.bridge_id]
        try:
            allocation = await client.allocate(conf.conference_id, participant_id, sdp)
        except AllocationError as exc:
            raise FocusError(exc.code, exc.message) from exc
        except BridgeUnavailable as exc:
            raise FocusError("bridge-unavailable", "the media server is unavailable; "
                             "try again") from exc
        if self._failures[client.bridge_id] != failures:  # it failed while answering
            raise FocusError("bridge-unavailable", "the media server went away; try again")
        conf.endpoints.add(participant_id)
        conf.where[participant_id] = client.bridge_id
        for kind in blocked:
            await _quietly(client.set_blocked(conf.conference_id, participant_id, kind, True))
        for other in sorted(live):
            if other != client.bridge_id:
                await self._link(conf, other, client)
        return allocation

    async def _link(self, conf: FocusConference, existing: str, new: BridgeClient) -> None:
        """Connect two bridges of a conference with a relay; the newly added bridge is the
        active side (it sends the connectivity checks and is the DTLS client)."""
        pair = frozenset((existing, new.bridge_id))
        old = self.pool.client(existing)
        if pair in conf.relays or old is None:
            return
        cid = conf.conference_id
        try:
            old_side = await old.relay_open(cid, new.bridge_id)
            new_side = await new.relay_open(cid, existing)
            await old.relay_connect(cid, new.bridge_id, new_side, False)
            await new.relay_connect(cid, existing, old_side, True)
        except (AllocationError, BridgeUnavailable) as exc:
            log.warning("relay between bridges %s and %s failed: %s", existing,
                        new.bridge_id, exc, extra={"room": conf.room, "conference": cid})
            return
        conf.relays.add(pair)
        self.relays_opened += 1
        log.info("relay between bridges %s and %s", existing, new.bridge_id,
                 extra={"room": conf.room, "conference": cid})

    def _drop(self, conf: FocusConference, participant_id: str) -> None:
        """Forget where a participant was; a bridge left without any of the conference has
        its relays closed (on the other side; it closes its own when its last one leaves)."""
        conf.endpoints.discard(participant_id)
        bridge = conf.where.pop(participant_id, None)
        if bridge is None or bridge in conf.counts():
            return
        for pair in [p for p in conf.relays if bridge in p]:
            conf.relays.discard(pair)
            (other,) = pair - {bridge}
            client = self.pool.client(other)
            if client is not None:
                self._spawn(client.relay_close(conf.conference_id, bridge))

    def set_blocked(self, room: str, participant_id: str, kind: str, blocked: bool) -> None:
        """Stop (or resume) forwarding one kind of a participant's media (moderator mute)."""
        conf = self.conferences.get(room)
        client = self._client_of(conf, participant_id)
        if conf is not None and client is not None and participant_id in conf.endpoints:
            self._spawn(client.set_blocked(conf.conference_id, participant_id, kind, blocked))

    def leave(self, room: str, participant_id: str) -> None:
        """Idempotent: expire the participant's endpoint, if it has one."""
        conf = self.conferences.get(room)
        if conf is None or participant_id not in conf.endpoints:
            return
        client = self._client_of(conf, participant_id)
        self._drop(conf, participant_id)
        if client is not None:
            self._spawn(client.expire(conf.conference_id, participant_id))
        if not conf.endpoints and not conf.placing:
            self._forget(conf)

    def _client_of(self, conf: FocusConference | None, participant_id: str
                   ) -> BridgeClient | None:
        bridge = conf.where.get(participant_id) if conf is not None else None
        return self.pool.client(bridge) if bridge is not None else None

    def _forget(self, conf: FocusConference) -> None:
        if self.conferences.get(conf.room) is conf:
            del self.conferences[conf.room]
        self.by_conference_id.pop(conf.conference_id, None)

    def endpoint_expired(self, conference_id: str, endpoint_id: str, reason: str) -> None:
        """The bridge dropped an endpoint on its own (ICE consent lost, DTLS failure)."""
        conf = self.by_conference_id.get(conference_id)
        if conf is None or endpoint_id not in conf.endpoints:
            return
        self._drop(conf, endpoint_id)
        room = conf.room
        if not conf.endpoints and not conf.placing:
            self._forget(conf)
        if self.on_media_lost is not None:
            self.on_media_lost(room, endpoint_id, reason)

    def bridge_failed(self, bridge_id: str) -> None:
        """A bridge died: its participants are asked to renegotiate (send a fresh offer),
        which places them on another bridge; relays to it are closed. A conference with no
        participant left anywhere starts over (new id) with the first offer."""
        self._failures[bridge_id] += 1
        for conf in list(self.conferences.values()):
            moved = sorted(p for p, b in conf.where.items() if b == bridge_id)
            if not moved:
                continue
            for participant_id in moved:
                self._drop(conf, participant_id)
            if not conf.endpoints and not conf.placing:
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

    async def relay_open(self, conference_id: str, peer_bridge: str) -> dict[str, Any]:
        return self.bridge.relay_open(conference_id, peer_bridge).to_json()

    async def relay_connect(self, conference_id: str, peer_bridge: str, peer: dict[str, Any],
                            active: bool) -> bool:
        from tertulia.bridge.relay import RelayMessageError, RelayPeer

        try:
            parsed = RelayPeer.from_json(peer)
        except RelayMessageError as exc:
            raise AllocationError("bad-message", str(exc)) from exc
        return self.bridge.relay_connect(conference_id, peer_bridge, parsed, active)

    async def relay_close(self, conference_id: str, peer_bridge: str) -> bool:
        return self.bridge.relay_close(conference_id, peer_bridge)


class SingleBridgePool:
    """A pool of exactly one always-present bridge (one process)."""

    def __init__(self, client: BridgeClient) -> None:
        self._client = client

    async def choose(self, region: str | None, conference: Mapping[str, int]
                     ) -> tuple[BridgeClient, str]:
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


