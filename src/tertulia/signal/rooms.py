"""Rooms and participants as the signal server sees them. Pure: no sockets.

Each participant has an outbox (a callable) to which presence updates are delivered; the
WebSocket shell decides how to actually send them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Outbox = Callable[[dict[str, Any]], None]


@dataclass(slots=True)
class Participant:
    id: str
    name: str
    audio_muted: bool
    video_muted: bool
    outbox: Outbox
    disconnect: Callable[[], None]
    room: str = ""
    has_media: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "audioMuted": self.audio_muted,
            "videoMuted": self.video_muted,
        }


@dataclass(slots=True)
class Room:
    name: str
    participants: dict[str, Participant] = field(default_factory=dict)

    def broadcast(self, message: dict[str, Any], *, exclude: str | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant.id != exclude:
                participant.outbox(message)


def new_participant_id() -> str:
    return "p-" + secrets.token_hex(6)


class Rooms:
    """All rooms of this signal server; a room exists while someone is in it."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}

    def join(self, room_name: str, participant: Participant) -> Room:
        room = self.rooms.get(room_name)
        if room is None:
            room = Room(room_name)
            self.rooms[room_name] = room
        participant.room = room_name
        room.broadcast({"type": "participant-joined", "participant": participant.public()})
        room.participants[participant.id] = participant
        return room

    def leave(self, participant: Participant, reason: str) -> bool:
        """Remove a participant and tell the others; idempotent."""
        room = self.rooms.get(participant.room)
        if room is None or room.participants.get(participant.id) is not participant:
            return False
        del room.participants[participant.id]
        room.broadcast({"type": "participant-left", "id": participant.id, "reason": reason})
        if not room.participants:
            del self.rooms[room.name]
        return True

    def update(self, participant: Participant) -> None:
        room = self.rooms.get(participant.room)
        if room is not None:
            room.broadcast(
                {"type": "participant-updated", "participant": participant.public()},
                exclude=participant.id,
            )

    def find(self, room_name: str, participant_id: str) -> Participant | None:
        room = self.rooms.get(room_name)
        return room.participants.get(participant_id) if room else None

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())
