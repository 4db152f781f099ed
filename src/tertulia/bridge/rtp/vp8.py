"""VP8 RTP payload descriptor (RFC 7741 §4.2) and key-frame header (RFC 6386 §9.1).

Payload descriptor::

         0 1 2 3 4 5 6 7
        +-+-+-+-+-+-+-+-+
        |X|R|N|S|R| PID | (REQUIRED)
        +-+-+-+-+-+-+-+-+
   X:   |I|L|T|K| RSV   | (OPTIONAL)
        +-+-+-+-+-+-+-+-+
   I:   |M| PictureID   | (OPTIONAL, M=1: 15-bit picture ID in two bytes)
        +-+-+-+-+-+-+-+-+
        |   PictureID   |
        +-+-+-+-+-+-+-+-+
   L:   |   TL0PICIDX   | (OPTIONAL)
        +-+-+-+-+-+-+-+-+
   T/K: |TID|Y| KEYIDX  | (OPTIONAL)
        +-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Vp8Descriptor",
    "after_descriptor",
    "is_keyframe_start",
    "keyframe_size",
    "parse_vp8_descriptor",
    "rewrite_picture_ids",
    "rewritten_descriptor",
]

_KEYFRAME_START_CODE = b"\x9d\x01\x2a"  # RFC 6386 §9.1


@dataclass(slots=True, frozen=True)
class Vp8Descriptor:
    """Fields of an RFC 7741 §4.2 payload descriptor; ``size`` is its length in bytes, i.e.
    the offset of the VP8 payload header.  Absent optional fields are None."""

    start_of_partition: bool
    partition_id: int
    picture_id: int | None
    picture_id_15bit: bool
    tl0picidx: int | None
    tid: int | None
    layer_sync: bool
    keyidx: int | None
    size: int
    non_reference: bool = False


# The last payload parsed and its descriptor. The bridge asks about the same payload object
# once per receiver of a packet; the descriptor is immutable and the held reference keeps the
# payload's identity from being reused, so an identity check is enough.
_last_parsed: tuple[bytes, Vp8Descriptor] | None = None


def parse_vp8_descriptor(payload: bytes) -> Vp8Descriptor:
    """Parse the payload descriptor at the start of a VP8 RTP payload.

    Raises ValueError if the payload ends inside the descriptor.
    """
    global _last_parsed
    last = _last_parsed
    if last is not None and last[0] is payload:
        return last[1]
    desc = _parse_vp8_descriptor(payload)
    if type(payload) is bytes:  # immutable: a bytearray could change under the cache
        _last_parsed = (payload, desc)
    return desc


# payload[descriptor size:] of the last payload asked about (same reasoning as _last_parsed)
_last_rest: tuple[bytes, bytes] | None = None


def after_descriptor(payload: bytes) -> bytes:
    """The VP8 payload after its payload descriptor, as one object for the same ``payload``
    (so every receiver of a packet shares it). Raises ValueError like parse_vp8_descriptor."""
    global _last_rest
    last = _last_rest
    if last is not None and last[0] is payload:
        return last[1]
    rest = payload[parse_vp8_descriptor(payload).size :]
    if type(payload) is bytes:
        _last_rest = (payload, rest)
    return rest


def _parse_vp8_descriptor(payload: bytes) -> Vp8Descriptor:
    n = len(payload)
    if n < 1:
        raise ValueError("VP8 payload is empty")
    b0 = payload[0]
    picture_id: int | None = None
    m_bit = False
    tl0: int | None = None
    tid: int | None = None
    layer_sync = False
    keyidx: int | None = None
    i = 1
    if b0 & 0x80:  # X: extended control bits present
        if n < 2:
            raise ValueError("VP8 descriptor truncated: missing X byte")
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture ID
            if i >= n:
                raise ValueError("VP8 descriptor truncated: missing picture ID")
            if payload[i] & 0x80:  # M: 15-bit picture ID
                if i + 2 > n:
                    raise ValueError("VP8 descriptor truncated: missing 15-bit picture ID")
                m_bit = True
                picture_id = ((payload[i] & 0x7F) << 8) | payload[i + 1]
                i += 2
            else:
                picture_id = payload[i]
                i += 1
        if x & 0x40:  # L: TL0PICIDX
            if i >= n:
                raise ValueError("VP8 descriptor truncated: missing TL0PICIDX")
            tl0 = payload[i]
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX byte
            if i >= n:
                raise ValueError("VP8 descriptor truncated: missing TID/KEYIDX byte")
            tk = payload[i]
            i += 1
            if x & 0x20:  # T: TID and Y are valid
                tid = tk >> 6
                layer_sync = bool(tk & 0x20)
            if x & 0x10:  # K: KEYIDX is valid
                keyidx = tk & 0x1F
    return Vp8Descriptor(
        start_of_partition=bool(b0 & 0x10),
        partition_id=b0 & 0x07,
        picture_id=picture_id,
        picture_id_15bit=m_bit,
        tl0picidx=tl0,
        tid=tid,
        layer_sync=layer_sync,
        keyidx=keyidx,
        size=i,
        non_reference=bool(b0 & 0x20),
    )


def _keyframe_header(payload: bytes) -> bytes | None:
    """The VP8 payload header if this packet starts a key frame, else None."""
    try:
        desc = parse_vp8_descriptor(payload)
    except ValueError:
        return None
    if not desc.start_of_partition or desc.partition_id != 0 or desc.size >= len(payload):
        return None
    header = payload[desc.size :]
    # RFC 6386 §9.1 frame tag, bit 0 is P (inverse key frame flag): 0 means key frame.
    # RFC 7741 §4.3 says the same for the first byte of the VP8 payload header.
    if header[0] & 0x01:
        return None
    return header


def is_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 key frame: S=1, PID=0 and frame-tag P bit 0."""
    return _keyframe_header(payload) is not None


def keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a key frame's first packet, or None.

    RFC 6386 §9.1: after the 3-byte frame tag come the start code 9d 01 2a and two 16-bit
    little-endian fields, 14 bits of size and 2 bits of scaling each.
    """
    header = _keyframe_header(payload)
    if header is None or len(header) < 10 or header[3:6] != _KEYFRAME_START_CODE:
        return None
    width = (header[6] | header[7] << 8) & 0x3FFF
    height = (header[8] | header[9] << 8) & 0x3FFF
    return width, height


def rewrite_picture_ids(payload: bytes, picture_id: int | None, tl0picidx: int | None) -> bytes:
    """Copy of ``payload`` with PictureID and/or TL0PICIDX replaced.

    Only fields present in the descriptor are changed (None leaves a field alone); the
    picture ID keeps its 7- or 15-bit width (the value is taken modulo 2**7 or 2**15).
    """
    desc = parse_vp8_descriptor(payload)
    head = rewritten_descriptor(payload, desc, picture_id, tl0picidx)
    return head + payload[desc.size :]


def rewritten_descriptor(
    payload: bytes, desc: Vp8Descriptor, picture_id: int | None, tl0picidx: int | None
) -> bytes:
    """The first ``desc.size`` bytes of ``payload`` (whose parsed descriptor is ``desc``)
    with PictureID and/or TL0PICIDX replaced, as in :func:`rewrite_picture_ids`."""
    out = bytearray(payload[: desc.size])
    i = 2
    if desc.picture_id is not None:
        if picture_id is not None:
            if desc.picture_id_15bit:
                pid = picture_id & 0x7FFF
                out[i] = 0x80 | (pid >> 8)
                out[i + 1] = pid & 0xFF
            else:
                out[i] = picture_id & 0x7F
        i += 2 if desc.picture_id_15bit else 1
    if desc.tl0picidx is not None and tl0picidx is not None:
        out[i] = tl0picidx & 0xFF
    return bytes(out)
