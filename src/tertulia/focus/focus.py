"""The focus: one conference per room, placing each participant's endpoint on a bridge.

In this version every conference lives on the single bridge the focus knows; bridge selection
strategies and relays plug in behind :class:`BridgeClient` (docs/protocol.md).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tertulia.bridge.bridge import Allocation, AllocationError, Bridge

log = logging.getLogger(__name__)


class BridgeClient(Protocol):
    """What the focus needs from a bridge (in process, or over the control API later)."""

    def allocate(self, conference_id: str, endpoint_id: str, offer_sdp: str) -> Allocation: ...

    def expire(self, conference_id: str, endpoint_id: str) -> bool: ...

    def set_blocked(self, conference_id: str, endpoint_id: str, kind: str, blocked: bool) -> bool:
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


MediaLostCallback = Callable[[str, str, str], None]  # room, participant id, reason


class Focus:
    def __init__(self, bridge: BridgeClient) -> None:
        self.bridge = bridge
        self.conferences: dict[str, FocusConference] = {}
        self.by_conference_id: dict[str, FocusConference] = {}
        self.on_media_lost: MediaLostCallback | None = None

    def _conference(self, room: str) -> FocusConference:
        conf = self.conferences.get(room)
        if conf is None:
            conf = FocusConference(room, f"{room}~{secrets.token_hex(4)}")
            self.conferences[room] = conf
            self.by_conference_id[conf.conference_id] = conf
        return conf

    def offer(
        self, room: str, participant_id: str, sdp: str, *, blocked: frozenset[str] = frozenset()
    ) -> Allocation:
        """Place the participant's media; a participant that already has media (a resumed
        session renegotiating) gets a fresh endpoint. ``blocked`` kinds are not forwarded."""
        conf = self._conference(room)
        if participant_id in conf.endpoints:
            self.bridge.expire(conf.conference_id, participant_id)
            conf.endpoints.discard(participant_id)
        try:
            allocation = self.bridge.allocate(conf.conference_id, participant_id, sdp)
        except AllocationError as exc:
            if not conf.endpoints:
                self._forget(conf)
            raise FocusError(exc.code, exc.message) from exc
        conf.endpoints.add(participant_id)
        for kind in blocked:
            self.bridge.set_blocked(conf.conference_id, participant_id, kind, True)
        return allocation

    def set_blocked(self, room: str, participant_id: str, kind: str, blocked: bool) -> None:
        """Stop (or resume) forwarding one kind of a participant's media (moderator mute)."""
        conf = self.conferences.get(room)
        if conf is not None and participant_id in conf.endpoints:
            self.bridge.set_blocked(conf.conference_id, participant_id, kind, blocked)

    def leave(self, room: str, participant_id: str) -> None:
        """Idempotent: expire the participant's endpoint, if it has one."""
        conf = self.conferences.get(room)
        if conf is None or participant_id not in conf.endpoints:
            return
        conf.endpoints.discard(participant_id)
        self.bridge.expire(conf.conference_id, participant_id)
        if not conf.endpoints:
            self._forget(conf)

    def _forget(self, conf: FocusConference) -> None:
        self.conferences.pop(conf.room, None)
        self.by_conference_id.pop(conf.conference_id, None)

    def endpoint_expired(self, conference_id: str, endpoint_id: str, reason: str) -> None:
        """The bridge dropped an endpoint on its own (ICE consent lost, DTLS failure)."""
        conf = self.by_conference_id.get(conference_id)
        if conf is None or endpoint_id not in conf.endpoints:
            return
        conf.endpoints.discard(endpoint_id)
        room = conf.room
        if not conf.endpoints:
            self._forget(conf)
        if self.on_media_lost is not None:
            self.on_media_lost(room, endpoint_id, reason)


def attach_local_bridge(focus: Focus, bridge: Bridge) -> None:
    """Wire an in-process bridge's expiry events to the focus."""
    bridge.on_expired = focus.endpoint_expired
