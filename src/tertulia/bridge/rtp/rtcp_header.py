"""The RTCP common header (RFC 3550 §6.4.1) and feedback header (RFC 4585 §6.1), shared by the
packet types in rtcp.py and twcc.py."""

from __future__ import annotations

import struct

PT_SR, PT_RR, PT_SDES, PT_BYE, PT_APP, PT_RTPFB, PT_PSFB, PT_XR = range(200, 208)
FMT_NACK, FMT_TWCC = 1, 15  # RTPFB (RFC 4585 §6.2, TWCC draft §3.1)
FMT_PLI, FMT_FIR, FMT_AFB = 1, 4, 15  # PSFB (RFC 4585 §6.3, RFC 5104 §4.3.1)

_COMMON = struct.Struct("!BBH")
_II = struct.Struct("!II")


class RtcpParseError(ValueError):
    """Raised for an RTCP datagram or packet that is not well-formed."""


def _split(data: bytes, pt: int, what: str) -> tuple[int, bytes]:
    """Check one packet's common header (RFC 3550 §6.4.1); return (count/fmt, unpadded body)."""
    n = len(data)
    if n < 4:
        raise RtcpParseError(f"{what}: {n} bytes, shorter than the 4-byte RTCP header")
    b0, ptype, length = _COMMON.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtcpParseError(f"{what}: RTCP version {b0 >> 6}, expected 2")
    if ptype != pt:
        raise RtcpParseError(f"{what}: packet type {ptype}, expected {pt}")
    if 4 * (length + 1) != n:
        raise RtcpParseError(f"{what}: length field says {4 * (length + 1)} bytes, have {n}")
    end = n
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or pad > n - 4:
            raise RtcpParseError(f"{what}: invalid padding count {pad}")
        end -= pad
    return b0 & 0x1F, bytes(data[4:end])


def _header(count: int, pt: int, body_len: int, padding: bool = False) -> bytes:
    if not 0 <= count <= 31:
        raise ValueError(f"RTCP count/fmt {count} out of range 0..31")
    if body_len % 4:
        raise ValueError("RTCP packet body must be a multiple of 4 bytes")
    return _COMMON.pack(0x80 | (0x20 if padding else 0) | count, pt, body_len // 4)


def _feedback(data: bytes, pt: int, what: str) -> tuple[int, int, int, bytes]:
    """RFC 4585 §6.1 common feedback header: (fmt, sender ssrc, media ssrc, FCI)."""
    fmt, body = _split(data, pt, what)
    if len(body) < 8:
        raise RtcpParseError(f"{what}: body of {len(body)} bytes, need at least 8")
    sender, media = _II.unpack_from(body)
    return fmt, sender, media, body[8:]


def _fb_bytes(fmt: int, pt: int, sender: int, media: int, fci: bytes, pad: bool = False) -> bytes:
    body = _II.pack(sender, media) + fci
    return _header(fmt, pt, len(body), pad) + body
