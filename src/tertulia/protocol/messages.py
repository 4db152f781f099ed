"""Client ⇄ signal messages (docs/protocol.md): validation of what clients send.

Pure: takes text, returns a validated message or raises :class:`ProtocolError` carrying the
error code and a message naming the problem.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ROOM_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME = 64
MAX_SDP = 60_000


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, ref: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def reply(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        return out


def normalize_room(name: str) -> str | None:
    """Lower-cased room name, or None when it is not a valid room name."""
    room = name.strip().lower()
    return room if ROOM_RE.match(room) else None


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    name: str
    audio_muted: bool
    video_muted: bool


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str


@dataclass(frozen=True, slots=True)
class Mute:
    audio_muted: bool | None
    video_muted: bool | None


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientMessage = Join | Offer | Mute | Leave | Ping


def _field(msg: dict[str, Any], key: str, kind: type, ref: Any, *, required: bool) -> Any:
    if key not in msg:
        if required:
            raise ProtocolError("bad-message", f"missing field {key!r}", ref)
        return None
    value = msg[key]
    # bool is an int subclass: check exactly
    if kind is bool and not isinstance(value, bool):
        raise ProtocolError("bad-message", f"field {key!r} must be a boolean", ref)
    if kind is str and not isinstance(value, str):
        raise ProtocolError("bad-message", f"field {key!r} must be a string", ref)
    return value


def parse_client_message(text: str | bytes, max_bytes: int) -> tuple[ClientMessage, Any]:
    """Validate one frame; returns the message and its ``id`` (echoed as ``ref``)."""
    if len(text) > max_bytes:
        raise ProtocolError("too-large", f"message larger than {max_bytes} bytes")
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad-json", f"not valid JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("bad-json", "a message must be a JSON object")
    ref = msg.get("id")
    if (ref is not None and not isinstance(ref, str | int)) or isinstance(ref, bool):
        raise ProtocolError("bad-message", "field 'id' must be a string or a number")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad-message", "missing field 'type'", ref)
    if kind == "join":
        room_raw = _field(msg, "room", str, ref, required=True)
        room = normalize_room(room_raw)
        if room is None:
            raise ProtocolError(
                "invalid-room",
                "room names are 1-64 characters: letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
                ref,
            )
        name = _field(msg, "name", str, ref, required=False) or ""
        name = " ".join(name.split())[:MAX_NAME]
        audio = _field(msg, "audioMuted", bool, ref, required=False)
        video = _field(msg, "videoMuted", bool, ref, required=False)
        return Join(room, name, bool(audio), bool(video)), ref
    if kind == "offer":
        sdp = _field(msg, "sdp", str, ref, required=True)
        if len(sdp) > MAX_SDP:
            raise ProtocolError("too-large", f"sdp larger than {MAX_SDP} characters", ref)
        return Offer(sdp), ref
    if kind == "mute":
        return (
            Mute(
                _field(msg, "audioMuted", bool, ref, required=False),
                _field(msg, "videoMuted", bool, ref, required=False),
            ),
            ref,
        )
    if kind == "leave":
        return Leave(), ref
    if kind == "ping":
        return Ping(), ref
    raise ProtocolError("bad-message", f"unknown message type {kind!r}", ref)
