"""The control API's messages (shard ⇄ bridge), pure: parsing and validation, no I/O.

One persistent WebSocket per shard→bridge pair (like Colibri2 over WebSocket). Requests carry an
integer ``id``; the bridge answers each with ``result`` or ``error`` with the same id, in order.
Events from the bridge carry no id. See docs/protocol.md, "Control API".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_CONTROL_MESSAGE = 256 * 1024  # an SDP offer with many slots is ~20 KiB
KINDS = ("audio", "video", "screen")


class ControlError(Exception):
    def __init__(self, code: str, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def reply(self) -> dict[str, Any]:
        return {"id": self.request_id, "type": "error", "code": self.code,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class ControlRequest:
    id: int
    type: str
    conference: str = ""
    endpoint: str = ""
    offer: str = ""
    kind: str = ""
    blocked: bool = False
    relay: str = ""  # the other bridge's id (relay-open, relay-connect, relay-close)
    peer: dict[str, Any] | None = None  # relay-connect: what relay-open answered there
    active: bool = False  # relay-connect: this side sends the checks and is the DTLS client


_NEEDS = {
    "allocate": ("conference", "endpoint", "offer"),
    "expire": ("conference", "endpoint"),
    "set-blocked": ("conference", "endpoint", "kind", "blocked"),
    "relay-open": ("conference", "relay"),
    "relay-connect": ("conference", "relay", "peer", "active"),
    "relay-close": ("conference", "relay"),
    "drain": (),
    "ping": (),
}


def parse_request(text: str) -> ControlRequest:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ControlError("bad-json", "not valid JSON") from exc
    if not isinstance(data, dict):
        raise ControlError("bad-message", "expected an object")
    request_id = data.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise ControlError("bad-message", "field 'id' must be an integer")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _NEEDS:
        raise ControlError("bad-message", f"unknown request type {str(kind)[:40]!r}", request_id)
    for name in _NEEDS[kind]:
        value = data.get(name)
        expected: type = (bool if name in ("blocked", "active")
                          else dict if name == "peer" else str)
        if not isinstance(value, expected) or (expected is str and not value):
            raise ControlError("bad-message", f"field {name!r} missing or wrong type",
                               request_id)
        if name in ("conference", "endpoint", "relay") and len(str(value)) > 128:
            raise ControlError("bad-message", f"field {name!r} too long", request_id)
    if kind == "set-blocked" and data["kind"] not in KINDS:
        raise ControlError("bad-message", "field 'kind' must be audio, video or screen",
                           request_id)
    return ControlRequest(
        id=request_id,
        type=kind,
        conference=data.get("conference", ""),
        endpoint=data.get("endpoint", ""),
        offer=data.get("offer", ""),
        kind=data.get("kind", ""),
        blocked=bool(data.get("blocked", False)),
        relay=data.get("relay", ""),
        peer=data.get("peer"),
        active=bool(data.get("active", False)),
    )


def result(request_id: int, **body: Any) -> dict[str, Any]:
    return {"id": request_id, "type": "result", **body}


def expired_event(conference: str, endpoint: str, reason: str) -> dict[str, Any]:
    return {"type": "endpoint-expired", "conference": conference, "endpoint": endpoint,
            "reason": reason}
