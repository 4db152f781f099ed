"""Rooms and participants as the signal server sees them. Pure: no sockets, no clock.

Each participant has an outbox (a callable) to which its messages are delivered and a
``disconnect`` to close its connection; the WebSocket shell decides how to actually send them.
A participant whose connection dropped stays *detached* for a grace period: its outbox then
drops messages (a resumed client gets the whole state in a fresh ``welcome``).
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Outbox = Callable[[dict[str, Any]], None]

MODERATOR = "moderator"
PARTICIPANT = "participant"


def _drop(_: dict[str, Any]) -> None:
    return None


def _noop() -> None:
    return None


@dataclass(slots=True)
class Participant:
    id: str
    name: str
    audio_muted: bool
    video_muted: bool
    outbox: Outbox
    disconnect: Callable[[], None]
    room: str = ""
    role: str = PARTICIPANT
    avatar: str | None = None
    has_media: bool = False
    hand_raised: bool = False
    resume_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    detached_since: float | None = None
    # kinds a moderator muted; the bridge drops them until the participant unmutes itself
    forced_mute: set[str] = field(default_factory=set)
    joined_order: int = 0

    @property
    def is_moderator(self) -> bool:
        return self.role == MODERATOR

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "audioMuted": self.audio_muted,
            "videoMuted": self.video_muted,
            "role": self.role,
            "avatar": self.avatar,
            "handRaised": self.hand_raised,
        }

    def attach(self, outbox: Outbox, disconnect: Callable[[], None]) -> None:
        self.outbox, self.disconnect = outbox, disconnect
        self.detached_since = None

    def detach(self, now: float) -> None:
        self.outbox, self.disconnect = _drop, _noop
        self.detached_since = now


@dataclass(slots=True)
class Knock:
    id: str
    name: str
    outbox: Outbox
    admit: Callable[[], None]
    deny: Callable[[str | None], None]


@dataclass(slots=True)
class Room:
    name: str
    chat_limit: int = 100
    participants: dict[str, Participant] = field(default_factory=dict)
    lobby: bool = False
    password: str | None = None
    knocks: OrderedDict[str, Knock] = field(default_factory=OrderedDict)
    chat: deque[dict[str, Any]] = field(default_factory=deque)
    hands: list[str] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {"lobby": self.lobby, "locked": self.password is not None}

    def broadcast(self, message: dict[str, Any], *, exclude: str | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant.id != exclude:
                participant.outbox(message)

    def moderators(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.is_moderator]

    def to_moderators(self, message: dict[str, Any]) -> None:
        for participant in self.moderators():
            participant.outbox(message)

    def password_matches(self, guess: str | None) -> bool:
        if self.password is None:
            return True
        if guess is None:
            return False
        return hmac.compare_digest(guess.encode(), self.password.encode())

    def add_chat(self, message: dict[str, Any]) -> None:
        self.chat.append(message)
        while len(self.chat) > self.chat_limit:
            self.chat.popleft()

    def hands_message(self) -> dict[str, Any]:
        return {"type": "hands", "hands": list(self.hands)}

    def set_hand(self, participant: Participant, raised: bool) -> bool:
        if participant.hand_raised == raised:
            return False
        participant.hand_raised = raised
        if raised:
            self.hands.append(participant.id)
        elif participant.id in self.hands:
            self.hands.remove(participant.id)
        return True


_order = itertools.count()


def new_participant_id() -> str:
    return "p-" + secrets.token_hex(6)


def chat_message(sender: Participant, text: str, to: Participant | None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "chat",
        "id": "m-" + secrets.token_hex(5),
        "from": sender.id,
        "name": sender.name,
        "text": text,
        "at": int(time.time() * 1000),
        "private": to is not None,
    }
    if to is not None:
        message["to"] = to.id
    return message


class Rooms:
    """All rooms of this signal server; a room exists while someone is in it or knocking."""

    def __init__(self, *, chat_history: int = 100) -> None:
        self.rooms: dict[str, Room] = {}
        self.chat_history = chat_history
        self.by_resume: dict[str, Participant] = {}

    def get_or_create(self, room_name: str) -> Room:
        room = self.rooms.get(room_name)
        if room is None:
            room = Room(room_name, chat_limit=self.chat_history)
            self.rooms[room_name] = room
        return room

    def join(self, room_name: str, participant: Participant) -> Room:
        room = self.get_or_create(room_name)
        participant.room = room_name
        participant.joined_order = next(_order)
        if not room.moderators():
            participant.role = MODERATOR  # the first participant of a room is moderator
        room.broadcast({"type": "participant-joined", "participant": participant.public()})
        room.participants[participant.id] = participant
        self.by_resume[participant.resume_secret] = participant
        return room

    def leave(self, participant: Participant, reason: str) -> bool:
        """Remove a participant and tell the others; idempotent."""
        room = self.rooms.get(participant.room)
        if room is None or room.participants.get(participant.id) is not participant:
            return False
        del room.participants[participant.id]
        self.by_resume.pop(participant.resume_secret, None)
        if room.set_hand(participant, False):
            room.broadcast(room.hands_message())
        room.broadcast({"type": "participant-left", "id": participant.id, "reason": reason})
        if room.participants and not room.moderators():
            # Like Jitsi's auto-owner: the longest-present participant takes over.
            heir = min(room.participants.values(), key=lambda p: p.joined_order)
            heir.role = MODERATOR
            room.broadcast({"type": "participant-updated", "participant": heir.public()})
        self.forget_if_empty(room)
        return True

    def forget_if_empty(self, room: Room) -> None:
        if not room.participants and not room.knocks and self.rooms.get(room.name) is room:
            del self.rooms[room.name]

    def update(self, participant: Participant, *, include_self: bool = False) -> None:
        room = self.rooms.get(participant.room)
        if room is not None:
            room.broadcast(
                {"type": "participant-updated", "participant": participant.public()},
                exclude=None if include_self else participant.id,
            )

    def find(self, room_name: str, participant_id: str) -> Participant | None:
        room = self.rooms.get(room_name)
        return room.participants.get(participant_id) if room else None

    def resumable(self, secret: str) -> Participant | None:
        """The participant a resume secret belongs to (attached or in its grace period)."""
        return self.by_resume.get(secret)

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())
