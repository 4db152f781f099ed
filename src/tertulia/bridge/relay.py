"""Relays between bridges (cascading), the pure part: what crosses a relay and how.

A conference may span bridges; the focus connects each pair of its bridges with a relay. Each
bridge sends every *local* source once over each relay: audio, and video with all its simulcast
layers, as the sender's own RTP packets (same SSRCs, sequence numbers and header extensions,
SRTP-protected with the relay's DTLS-SRTP keys). Relayed sources are never relayed again: every
pair of bridges has its own relay (a full mesh), so a packet crosses at most one relay.

Besides media, the two bridges exchange small JSON messages as DTLS application data on the
same association (authenticated and encrypted like the media; see docs/protocol.md, "Relays"):

``{"t": "sources", "ids": [...]}``
    The complete list of participants whose media this bridge sends (each second). The far
    bridge removes relayed participants that are no longer listed.
``{"t": "source", "id": ..., "media": [...]}``
    How to read one participant's packets: per role (audio, camera, screen) its mid, payload
    type, the header extension ids the far bridge reads (audio level, mid, rid), simulcast rids
    and its SSRCs with their layer index, and whether its screen share is on. Sent each second
    and at once when a new SSRC shows up.
``{"t": "constraints", "heights": {participant: height}}``
    Layer suspension flowing back: for each relayed camera, the largest height any receiver
    on the sending bridge's far side wants (-1 no limit, 0 nobody). The near bridge folds it
    into its ``sender-constraints`` as if the relay were one more receiver (:func:`fold_height`).
    Sent each second and as soon as it changes.
``{"t": "keyframe", "ssrc": N}``
    A receiver on the far side needs a keyframe of that SSRC (PLI, RFC 4585 §6.3.1).

Every message is state, not an event, except ``keyframe`` (which is retried by the far
bridge's own keyframe logic), so a lost datagram costs at most one second. ``source`` also
carries whether the participant's screen share is on, so screen slots follow on every bridge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tertulia.protocol.sdp import EXT_MID

if TYPE_CHECKING:
    from tertulia.bridge.endpoint import Endpoint, SendingMedia

# A relay message is one DTLS record in one datagram: keep it under the DTLS MTU (1200).
MAX_MESSAGE = 1100
MAX_SOURCES = 500  # participants listed in one `sources` message
MAX_SSRCS_PER_MEDIA = 8  # layers (3) and their replacements; more is refused
ROLES = ("audio", "video", "screen")
ID_MAX = 128


class RelayMessageError(ValueError):
    """A relay message that does not follow docs/protocol.md; it is dropped and counted."""


class RelaySink(Protocol):
    """What a conference needs from one of its relays (bridge/relay_link.py)."""

    def forward_rtp(self, sender: Endpoint, media: SendingMedia, ssrc: int, plain: bytes,
                    now: float) -> None: ...

    def max_height(self, sender_id: str) -> int | None: ...


# -- what is sent --------------------------------------------------------------------------------


def should_relay(sender_relayed: bool, blocked: bool) -> bool:
    """A packet goes over the relays when its sender is local (relayed sources are never
    relayed again: each pair of bridges has its own relay) and a moderator has not blocked
    it. Every simulcast layer goes: the far bridge chooses layers per receiver itself."""
    return not sender_relayed and not blocked


def fold_height(wanted: int, far: int | None) -> int:
    """Fold what a relay's far side wants (``far``; None = not a source sent there) into the
    largest height local receivers want (``wanted``): -1 (no limit) wins, else the larger."""
    if far is None:
        return wanted
    if wanted < 0 or far < 0:
        return -1
    return max(wanted, far)


@dataclass(frozen=True, slots=True)
class MediaDescription:
    role: str  # audio | video | screen
    kind: str  # audio | video
    mid: str
    payload_type: int
    level_ext: int | None  # RFC 6464 audio level extension id
    mid_ext: int | None  # RFC 8843 mid extension id
    rid_ext: int | None  # RFC 8852 rid extension id
    rids: tuple[str, ...]
    ssrcs: tuple[tuple[int, int], ...]  # (ssrc, layer index; -1 when not layered)

    def shape(self) -> tuple[object, ...]:
        """Everything but the SSRCs: when it changes the relayed participant is rebuilt."""
        return (self.role, self.kind, self.mid, self.payload_type, self.level_ext,
                self.mid_ext, self.rid_ext, self.rids)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    participant: str
    media: tuple[MediaDescription, ...]
    sharing: bool = False  # the participant says its screen share is on

    def shape(self) -> tuple[object, ...]:
        return tuple(m.shape() for m in self.media)

    def ssrcs(self) -> set[int]:
        return {ssrc for m in self.media for ssrc, _ in m.ssrcs}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def source_message(description: SourceDescription) -> dict[str, Any]:
    return {
        "t": "source",
        "id": description.participant,
        "sharing": description.sharing,
        "media": [
            {"role": m.role, "kind": m.kind, "mid": m.mid, "pt": m.payload_type,
             "level": m.level_ext, "midx": m.mid_ext, "ridx": m.rid_ext, "rids": list(m.rids),
             "ssrcs": [list(pair) for pair in m.ssrcs]}
            for m in description.media
        ],
    }


def sources_message(participants: list[str]) -> dict[str, Any]:
    return {"t": "sources", "ids": participants[:MAX_SOURCES]}


def constraints_message(heights: dict[str, int]) -> dict[str, Any]:
    return {"t": "constraints", "heights": heights}


def keyframe_message(ssrc: int) -> dict[str, Any]:
    return {"t": "keyframe", "ssrc": ssrc}


# -- what is received ----------------------------------------------------------------------------


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise RelayMessageError(f"{name} must be an integer in [{lo}, {hi}]")
    return value


def _ext(value: object, name: str) -> int | None:
    return None if value is None else _int(value, name, 1, 255)


def _id(value: object, name: str = "id") -> str:
    if not isinstance(value, str) or not value or len(value) > ID_MAX:
        raise RelayMessageError(f"{name} must be a string of 1 to {ID_MAX} characters")
    return value


def _media(data: object) -> MediaDescription:
    if not isinstance(data, dict):
        raise RelayMessageError("media entries must be objects")
    role = data.get("role")
    if role not in ROLES:
        raise RelayMessageError("media role must be audio, video or screen")
    kind = data.get("kind")
    if kind != ("audio" if role == "audio" else "video"):
        raise RelayMessageError("media kind does not match its role")
    rids = data.get("rids")
    if not isinstance(rids, list) or len(rids) > 4 or not all(
            isinstance(r, str) and 0 < len(r) <= 16 for r in rids):
        raise RelayMessageError("rids must be a list of at most 4 short strings")
    ssrcs = data.get("ssrcs")
    if not isinstance(ssrcs, list) or len(ssrcs) > MAX_SSRCS_PER_MEDIA:
        raise RelayMessageError(f"ssrcs must be a list of at most {MAX_SSRCS_PER_MEDIA}")
    pairs: list[tuple[int, int]] = []
    for pair in ssrcs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise RelayMessageError("each ssrc entry must be [ssrc, layer]")
        pairs.append((_int(pair[0], "ssrc", 1, 0xFFFFFFFF),
                      _int(pair[1], "layer", -1, max(len(rids) - 1, -1))))
    mid = data.get("mid")
    if not isinstance(mid, str) or not 0 < len(mid) <= 16:
        raise RelayMessageError("mid must be a short string")
    return MediaDescription(
        role=role, kind=kind, mid=mid, payload_type=_int(data.get("pt"), "pt", 0, 127),
        level_ext=_ext(data.get("level"), "level"), mid_ext=_ext(data.get("midx"), "midx"),
        rid_ext=_ext(data.get("ridx"), "ridx"), rids=tuple(rids), ssrcs=tuple(pairs),
    )


RelayMessage = (
    tuple[str, SourceDescription] | tuple[str, list[str]] | tuple[str, dict[str, int]]
    | tuple[str, int]
)


def parse_message(data: bytes) -> RelayMessage:
    """Validate one relay message; raises :class:`RelayMessageError` for anything else."""
    try:
        message = json.loads(data)
    except ValueError as exc:
        raise RelayMessageError("not valid JSON") from exc
    if not isinstance(message, dict):
        raise RelayMessageError("expected an object")
    kind = message.get("t")
    if kind == "sources":
        ids = message.get("ids")
        if not isinstance(ids, list) or len(ids) > MAX_SOURCES:
            raise RelayMessageError(f"ids must be a list of at most {MAX_SOURCES}")
        return "sources", [_id(i) for i in ids]
    if kind == "source":
        media = message.get("media")
        if not isinstance(media, list) or len(media) > len(ROLES):
            raise RelayMessageError("media must be a list of at most 3 entries")
        described = tuple(_media(m) for m in media)
        if len({m.role for m in described}) != len(described):
            raise RelayMessageError("each role may be described once")
        sharing = message.get("sharing", False)
        if not isinstance(sharing, bool):
            raise RelayMessageError("sharing must be a boolean")
        return "source", SourceDescription(_id(message.get("id")), described, sharing)
    if kind == "constraints":
        heights = message.get("heights")
        if not isinstance(heights, dict) or len(heights) > MAX_SOURCES:
            raise RelayMessageError("heights must be an object")
        return "constraints", {_id(k): _int(v, "height", -1, 1 << 16)
                               for k, v in heights.items()}
    if kind == "keyframe":
        return "keyframe", _int(message.get("ssrc"), "ssrc", 1, 0xFFFFFFFF)
    raise RelayMessageError(f"unknown relay message type {str(kind)[:40]!r}")


# -- describing local senders --------------------------------------------------------------------


def describe(endpoint: Endpoint) -> SourceDescription:
    """What the far bridge needs to read this endpoint's packets."""
    media: list[MediaDescription] = []
    for role in ROLES:
        sending = endpoint.sending.get(role)
        if sending is None:
            continue
        ssrcs = sorted(
            (ssrc, sending.layer_of.get(ssrc, -1) if sending.layered else -1)
            for ssrc, owner in endpoint.media_by_ssrc.items() if owner is sending
        )[-MAX_SSRCS_PER_MEDIA:]
        media.append(MediaDescription(
            role=role, kind=sending.kind, mid=sending.mid, payload_type=sending.payload_type,
            level_ext=sending.audio_level_id, mid_ext=sending.extmap.get(EXT_MID),
            rid_ext=sending.rid_ext_id, rids=sending.rids if sending.layered else (),
            ssrcs=tuple(ssrcs),
        ))
    return SourceDescription(endpoint.id, tuple(media), endpoint.sharing)


@dataclass(slots=True)
class RelayPeer:
    """The far bridge's relay endpoint, as ``relay-open`` answers and ``relay-connect`` gives."""

    ip: str
    port: int
    ufrag: str
    pwd: str
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        return {"ip": self.ip, "port": self.port, "ufrag": self.ufrag, "pwd": self.pwd,
                "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: object) -> RelayPeer:
        if not isinstance(data, dict):
            raise RelayMessageError("peer must be an object")
        ip, ufrag, pwd, fingerprint = (data.get(k) for k in ("ip", "ufrag", "pwd",
                                                            "fingerprint"))
        for name, value, lo, hi in (("ip", ip, 2, 64), ("ufrag", ufrag, 4, 64),
                                    ("pwd", pwd, 22, 256), ("fingerprint", fingerprint,
                                                            95, 95)):
            if not isinstance(value, str) or not lo <= len(value) <= hi:
                raise RelayMessageError(f"peer field {name!r} missing or malformed")
        assert isinstance(ip, str) and isinstance(ufrag, str) and isinstance(pwd, str)
        assert isinstance(fingerprint, str)
        if ":" in ufrag:
            raise RelayMessageError("peer ufrag must not contain ':'")
        return cls(ip, _int(data.get("port"), "port", 1, 65535), ufrag, pwd, fingerprint)
