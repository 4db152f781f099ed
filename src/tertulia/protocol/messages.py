"""Client ⇄ signal messages (docs/protocol.md): validation of what clients send.

Pure: takes text, returns a validated :class:`Request` or raises :class:`ProtocolError`
carrying the error code and a message naming the problem. Each message type has a small field
table; anything not in the table is ignored.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

ROOM_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME = 64
MAX_SDP = 200_000  # a full Chrome offer with 9 slot pairs and a screen is ~70 KB


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


def clean_text(text: str, limit: int) -> str:
    """Drop control characters (C0/C1, bidi overrides), collapse whitespace, cut to ``limit``."""
    kept = "".join(
        ch
        for ch in text
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    )
    return kept.strip()[:limit]


def clean_name(name: str) -> str:
    return " ".join(clean_text(name, 4 * MAX_NAME).split())[:MAX_NAME]


@dataclass(frozen=True, slots=True)
class Field:
    kind: str  # "str" | "bool" | "str?" (string or null) | "enum"
    required: bool = False
    max_len: int = 0
    choices: tuple[str, ...] = ()


_S = Field("str")
_REQ_S = Field("str", required=True)
_BOOL = Field("bool")
_KIND = Field("enum", required=True, choices=("audio", "video"))

SPECS: dict[str, dict[str, Field]] = {
    "join": {
        "room": _REQ_S,
        "name": Field("str", max_len=1024),
        "audioMuted": _BOOL,
        "videoMuted": _BOOL,
        "password": Field("str", max_len=256),
        "token": Field("str", max_len=16 * 1024),
        "resume": Field("str", max_len=128),
        "region": Field("str", max_len=64),  # a hint; the front's region header wins
    },
    "offer": {"sdp": Field("str", required=True, max_len=MAX_SDP)},
    "mute": {"audioMuted": _BOOL, "videoMuted": _BOOL},
    "set-name": {"name": Field("str", required=True, max_len=1024)},
    "leave": {},
    "ping": {},
    "chat": {"text": Field("str", required=True, max_len=8000), "to": _S},
    "raise-hand": {"raised": Field("bool", required=True)},
    "lobby-admit": {"knock": _REQ_S},
    "lobby-deny": {"knock": _REQ_S, "message": Field("str", max_len=1000)},
    "set-lobby": {"enabled": Field("bool", required=True)},
    "set-password": {"password": Field("str?", required=True, max_len=64)},
    "grant-moderator": {"participant": _REQ_S},
    "mute-participant": {"participant": _REQ_S, "kind": _KIND},
    "mute-all": {"kind": _KIND},
    "ask-unmute": {"participant": _S},
    "kick": {"participant": _REQ_S, "message": Field("str", max_len=1000)},
    "end-meeting": {},
}


@dataclass(frozen=True, slots=True)
class Request:
    """A validated client message: its type, its known fields (absent ones omitted), ``id``."""

    type: str
    data: dict[str, Any]
    ref: Any = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _check(name: str, spec: Field, value: Any, ref: Any) -> Any:
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ProtocolError("bad-message", f"field {name!r} must be a boolean", ref)
        return value
    if spec.kind == "str?" and value is None:
        return None
    if not isinstance(value, str):
        kind = "a string or null" if spec.kind == "str?" else "a string"
        raise ProtocolError("bad-message", f"field {name!r} must be {kind}", ref)
    if spec.kind == "enum" and value not in spec.choices:
        raise ProtocolError(
            "bad-message", f"field {name!r} must be one of {', '.join(spec.choices)}", ref
        )
    if spec.max_len and len(value) > spec.max_len:
        raise ProtocolError("too-large", f"field {name!r} is longer than {spec.max_len}", ref)
    return value


def parse_client_message(text: str | bytes, max_bytes: int) -> Request:
    """Validate one frame; unknown fields are ignored, known ones type-checked."""
    if len(text) > max_bytes:
        raise ProtocolError("too-large", f"message larger than {max_bytes} bytes")
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad-json", f"not valid JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("bad-json", "a message must be a JSON object")
    ref = msg.get("id")
    if ref is not None and (isinstance(ref, bool) or not isinstance(ref, str | int)):
        raise ProtocolError("bad-message", "field 'id' must be a string or a number")
    if isinstance(ref, str) and len(ref) > 64:
        raise ProtocolError("bad-message", "field 'id' is longer than 64")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad-message", "missing field 'type'", ref)
    spec = SPECS.get(kind)
    if spec is None:
        raise ProtocolError("bad-message", f"unknown message type {kind[:40]!r}", ref)
    data: dict[str, Any] = {}
    for name, field_spec in spec.items():
        if name not in msg:
            if field_spec.required:
                raise ProtocolError("bad-message", f"missing field {name!r}", ref)
            continue
        data[name] = _check(name, field_spec, msg[name], ref)
    if kind == "join":
        room = normalize_room(data["room"])
        if room is None:
            raise ProtocolError(
                "invalid-room",
                "room names are 1-64 characters: letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
                ref,
            )
        data["room"] = room
        data["name"] = clean_name(data.get("name", ""))
    return Request(kind, data, ref)
