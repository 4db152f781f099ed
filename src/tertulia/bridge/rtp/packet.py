"""RTP packets (RFC 3550 §5.1) with RFC 8285 header extensions.

Two layers:

* :class:`RtpPacket` – a full, validating parse into a dataclass and back (``bytes(pkt)``).
* Fast helpers for the forwarding hot path (:func:`header_fields`, :func:`extension_span`,
  :func:`payload_offset`, :func:`parse_extensions`, :func:`rewrite_header`) that work on the raw
  datagram and never build an object.  They check only what they need to stay in bounds.

Fixed header (RFC 3550 §5.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers  (CC x 32)  |
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

__all__ = [
    "ONE_BYTE_PROFILE",
    "TWO_BYTE_PROFILE",
    "RtpPacket",
    "RtpParseError",
    "audio_level",
    "build_extension_block",
    "extension_span",
    "header_fields",
    "is_rtcp",
    "parse_extension_elements",
    "parse_extensions",
    "payload_offset",
    "rewrite_header",
]

#: RFC 8285 §4.2 one-byte header form ("defined by profile" value 0xBEDE).
ONE_BYTE_PROFILE = 0xBEDE
#: RFC 8285 §4.3 two-byte header form: 0x100 followed by 4 "appbits" (0x1000..0x100F).
TWO_BYTE_PROFILE = 0x1000

_HDR = struct.Struct("!BBHII")
_EXT_HDR = struct.Struct("!HH")
_MIN_HEADER = 12


class RtpParseError(ValueError):
    """Raised for a datagram that is not a well-formed RTP packet."""


# --------------------------------------------------------------------------- hot-path helpers


def header_fields(data: bytes) -> tuple[bool, int, int, int, int]:
    """Return ``(marker, payload_type, sequence_number, timestamp, ssrc)`` of an RTP packet.

    Only the length is checked (not the version), for speed.
    """
    if len(data) < _MIN_HEADER:
        raise RtpParseError(f"RTP packet too short: {len(data)} bytes, need at least 12")
    _b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    return bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc


def extension_span(data: bytes | bytearray) -> tuple[int, int, int] | None:
    """Locate the header-extension block (RFC 3550 §5.3.1).

    Returns ``(start, end, profile)`` where ``data[start:end]`` is the whole block *including*
    its 4-byte header (16-bit profile, 16-bit length in words), or None when the X bit is clear.
    """
    n = len(data)
    if n < _MIN_HEADER:
        raise RtpParseError(f"RTP packet too short: {n} bytes, need at least 12")
    b0 = data[0]
    start = _MIN_HEADER + 4 * (b0 & 0x0F)
    if not b0 & 0x10:
        if start > n:
            raise RtpParseError(f"CSRC list ({b0 & 0x0F} entries) runs past the end ({n} bytes)")
        return None
    if start + 4 > n:
        raise RtpParseError(f"extension header at offset {start} runs past the end ({n} bytes)")
    profile, words = _EXT_HDR.unpack_from(data, start)
    end = start + 4 + 4 * words
    if end > n:
        raise RtpParseError(
            f"extension length ({words} words at offset {start}) runs past the end ({n} bytes)"
        )
    return start, end, profile


def payload_offset(data: bytes) -> int:
    """Offset of the first payload byte (after CSRCs and the extension block)."""
    span = extension_span(data)
    if span is not None:
        return span[1]
    return _MIN_HEADER + 4 * (data[0] & 0x0F)


def parse_extension_elements(body: bytes, profile: int) -> list[tuple[int, bytes]]:
    """Decode the elements of an extension block body (without its 4-byte header).

    RFC 8285 §4.2 (one-byte form, profile 0xBEDE): ID 0 is a padding byte, ID 15 stops parsing,
    length field is L-1.  RFC 8285 §4.3 (two-byte form, 0x100X): 8-bit ID (0 is a padding byte)
    and 8-bit length (0 allowed).  Any other profile is not RFC 8285 and yields no elements.
    """
    out: list[tuple[int, bytes]] = []
    n = len(body)
    i = 0
    if profile == ONE_BYTE_PROFILE:
        while i < n:
            b = body[i]
            eid = b >> 4
            if eid == 0:  # ID 0 is padding (RFC 8285 §4.2); a non-zero length nibble is ignored
                i += 1
                continue
            if eid == 15:  # reserved: stop processing (RFC 8285 §4.2)
                break
            j = i + 2 + (b & 0x0F)
            if j > n:
                raise RtpParseError(f"one-byte extension element id {eid} runs past the block")
            out.append((eid, bytes(body[i + 1 : j])))
            i = j
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while i < n:
            eid = body[i]
            if eid == 0:  # padding byte
                i += 1
                continue
            if i + 1 >= n:
                raise RtpParseError(f"two-byte extension element id {eid} has no length byte")
            j = i + 2 + body[i + 1]
            if j > n:
                raise RtpParseError(f"two-byte extension element id {eid} runs past the block")
            out.append((eid, bytes(body[i + 2 : j])))
            i = j
    return out


def parse_extensions(data: bytes) -> list[tuple[int, bytes]]:
    """All RFC 8285 extension elements of an RTP packet, in order, as ``(id, value)``."""
    span = extension_span(data)
    if span is None:
        return []
    start, end, profile = span
    return parse_extension_elements(data[start + 4 : end], profile)


def build_extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """Encode extension elements as a complete block: profile, length, elements, zero padding.

    The one-byte form (RFC 8285 §4.2) is used when every ID is 1..14 and every value is 1..16
    bytes long, the two-byte form (RFC 8285 §4.3, appbits 0) otherwise.  An empty list gives
    ``b""`` (no block at all).
    """
    if not elements:
        return b""
    one_byte = all(1 <= eid <= 14 and 1 <= len(v) <= 16 for eid, v in elements)
    out = bytearray(4)
    if one_byte:
        profile = ONE_BYTE_PROFILE
        for eid, value in elements:
            out.append((eid << 4) | (len(value) - 1))
            out += value
    else:
        profile = TWO_BYTE_PROFILE
        for eid, value in elements:
            if not 1 <= eid <= 255:
                raise ValueError(f"extension id {eid} out of range 1..255")
            if len(value) > 255:
                raise ValueError(f"extension id {eid}: value of {len(value)} bytes is too long")
            out.append(eid)
            out.append(len(value))
            out += value
    pad = -len(out) % 4
    out += bytes(pad)
    _EXT_HDR.pack_into(out, 0, profile, (len(out) - 4) // 4)
    return bytes(out)


def rewrite_header(
    data: bytes,
    *,
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    extensions: list[tuple[int, bytes]] | None = None,
) -> bytes:
    """Copy of ``data`` with payload type, sequence number, timestamp and SSRC replaced.

    ``seq`` and ``ts`` are taken modulo 2**16 / 2**32.  When ``extensions`` is not None the
    extension block is rebuilt from it (an empty list removes the block and clears X); None
    keeps the original block byte for byte.  Marker, CSRCs, payload and padding are kept.
    """
    if not 0 <= pt <= 127:
        raise ValueError(f"payload type {pt} out of range 0..127")
    if not 0 <= ssrc <= 0xFFFFFFFF:
        raise ValueError(f"ssrc {ssrc} out of range")
    n = len(data)
    if n < _MIN_HEADER:
        raise RtpParseError(f"RTP packet too short: {n} bytes, need at least 12")
    b0 = data[0]
    b1 = (data[1] & 0x80) | pt
    if extensions is None:
        if _MIN_HEADER + 4 * (b0 & 0x0F) > n:
            raise RtpParseError("CSRC list runs past the end of the packet")
        return _HDR.pack(b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + data[_MIN_HEADER:]
    span = extension_span(data)
    csrc_end = _MIN_HEADER + 4 * (b0 & 0x0F)
    rest = span[1] if span is not None else csrc_end
    block = build_extension_block(extensions)
    b0 = (b0 | 0x10) if block else (b0 & ~0x10)
    head = _HDR.pack(b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    return b"".join((head, data[_MIN_HEADER:csrc_end], block, data[rest:]))


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: with RTP/RTCP multiplexing, a second byte of 192..223 means RTCP.

    (RTCP packet types 200..207 fall in that range; RTP payload types 64..95 must not be used.)
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


def audio_level(value: bytes) -> tuple[bool, int]:
    """Decode an RFC 6464 §3 client-to-mixer audio level: ``(voice_activity, level)``.

    ``level`` is in -dBov, 0 (loudest) .. 127 (silence).
    """
    if not value:
        raise ValueError("empty audio level extension")
    b = value[0]
    return bool(b & 0x80), b & 0x7F


# --------------------------------------------------------------------------- full packet


@dataclass(slots=True)
class RtpPacket:
    """A parsed RTP packet (RFC 3550 §5.1).

    ``extensions`` holds RFC 8285 elements as ``(id, value)`` in wire order.  A header
    extension with a profile other than RFC 8285's is kept verbatim in ``raw_extension`` as
    ``(profile, body)``.  ``padding_size`` counts the padding octets including the final count
    octet (RFC 3550 §5.1, P bit); serialization writes zeros followed by the count.
    """

    version: int = 2
    marker: bool = False
    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    csrcs: list[int] = field(default_factory=list)
    extensions: list[tuple[int, bytes]] = field(default_factory=list)
    payload: bytes = b""
    padding_size: int = 0
    raw_extension: tuple[int, bytes] | None = None

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        n = len(data)
        if n < _MIN_HEADER:
            raise RtpParseError(f"RTP packet too short: {n} bytes, need at least 12")
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
        version = b0 >> 6
        if version != 2:
            raise RtpParseError(f"RTP version {version}, expected 2")
        cc = b0 & 0x0F
        csrc_end = _MIN_HEADER + 4 * cc
        if csrc_end > n:
            raise RtpParseError(f"CSRC list ({cc} entries) runs past the end ({n} bytes)")
        csrcs = list(struct.unpack_from(f"!{cc}I", data, _MIN_HEADER)) if cc else []
        extensions: list[tuple[int, bytes]] = []
        raw_extension: tuple[int, bytes] | None = None
        offset = csrc_end
        span = extension_span(data)
        if span is not None:
            start, offset, profile = span
            body = data[start + 4 : offset]
            if profile == ONE_BYTE_PROFILE or profile & 0xFFF0 == TWO_BYTE_PROFILE:
                extensions = parse_extension_elements(body, profile)
            else:
                raw_extension = (profile, bytes(body))
        padding_size = 0
        if b0 & 0x20:
            if n == offset:
                raise RtpParseError("padding bit set but the packet has no payload or padding")
            padding_size = data[-1]
            if padding_size == 0:
                raise RtpParseError("padding bit set but the padding count is 0")
            if padding_size > n - offset:
                raise RtpParseError(
                    f"padding of {padding_size} bytes is larger than the "
                    f"{n - offset} bytes after the header"
                )
        return cls(
            version=version,
            marker=bool(b1 & 0x80),
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            csrcs=csrcs,
            extensions=extensions,
            payload=bytes(data[offset : n - padding_size]),
            padding_size=padding_size,
            raw_extension=raw_extension,
        )

    def __bytes__(self) -> bytes:
        if len(self.csrcs) > 15:
            raise ValueError(f"too many CSRCs: {len(self.csrcs)} (max 15)")
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} out of range 0..127")
        if not 0 <= self.padding_size <= 255:
            raise ValueError(f"padding_size {self.padding_size} out of range 0..255")
        if self.raw_extension is not None:
            profile, body = self.raw_extension
            if len(body) % 4:
                raise ValueError("raw extension body must be a multiple of 4 bytes")
            block = _EXT_HDR.pack(profile, len(body) // 4) + body
        else:
            block = build_extension_block(self.extensions)
        b0 = (
            (self.version << 6)
            | (0x20 if self.padding_size else 0)
            | (0x10 if block else 0)
            | len(self.csrcs)
        )
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [
            _HDR.pack(b0, b1, self.sequence_number, self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrcs)}I", *self.csrcs),
            block,
            self.payload,
        ]
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)

    def get_extension(self, ext_id: int) -> bytes | None:
        """Value of the first extension element with this id, or None."""
        for eid, value in self.extensions:
            if eid == ext_id:
                return value
        return None


def set_extension_value(data: bytearray, ext_id: int, value: bytes) -> bool:
    """Overwrite, in place, the value of extension element ``ext_id`` when it has exactly
    ``len(value)`` bytes (RFC 8285 §4.2 one-byte and §4.3 two-byte forms). Returns whether
    it was found; the packet is unchanged otherwise. Used to stamp send times at the last
    moment without rebuilding the header."""
    span = extension_span(data)
    if span is None:
        return False
    start, end, profile = span
    i = start + 4
    size = len(value)
    if profile == ONE_BYTE_PROFILE:
        while i < end:
            b = data[i]
            eid = b >> 4
            if eid == 0:
                i += 1
                continue
            if eid == 15:
                return False
            length = (b & 0x0F) + 1
            if eid == ext_id:
                if length != size or i + 1 + length > end:
                    return False
                data[i + 1 : i + 1 + length] = value
                return True
            i += 1 + length
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while i + 1 < end:
            eid = data[i]
            if eid == 0:
                i += 1
                continue
            length = data[i + 1]
            if eid == ext_id:
                if length != size or i + 2 + length > end:
                    return False
                data[i + 2 : i + 2 + length] = value
                return True
            i += 2 + length
    return False


# The last value computed: the bridge stamps every receiver of a packet with the same time.
_last_send_time: tuple[float, bytes] = (math.nan, b"")  # NaN equals no time


def abs_send_time(now: float) -> bytes:
    """The abs-send-time header extension value: 24-bit 6.18 fixed-point seconds, wrapping
    every 64 s (webrtc.org "abs-send-time" experiment). Receivers only use differences, so
    any steady clock will do."""
    global _last_send_time
    last = _last_send_time
    if last[0] == now:
        return last[1]
    value = (int(now * (1 << 18)) & 0xFFFFFF).to_bytes(3, "big")
    _last_send_time = (now, value)
    return value
