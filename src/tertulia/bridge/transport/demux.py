"""Classify datagrams arriving on the single media port (RFC 7983 §7, RFC 5761 §4)."""

from __future__ import annotations

from enum import IntEnum


class Kind(IntEnum):
    STUN = 1
    DTLS = 2
    RTP = 3
    RTCP = 4
    UNKNOWN = 0


def classify(data: bytes) -> Kind:
    """Return what a datagram is from its first bytes.

    RFC 7983 §7: first byte 0..3 is STUN, 20..63 DTLS, 128..191 RTP/RTCP. RFC 5761 §4: with
    RTP and RTCP multiplexed, a second byte in 192..223 (RTCP packet types 192..223, which as
    marker+payload type are 64..95) is RTCP.
    """
    if not data:
        return Kind.UNKNOWN
    first = data[0]
    if first <= 3:
        return Kind.STUN
    if 20 <= first <= 63:
        return Kind.DTLS
    if 128 <= first <= 191:
        if len(data) < 2:
            return Kind.UNKNOWN
        return Kind.RTCP if 192 <= data[1] <= 223 else Kind.RTP
    return Kind.UNKNOWN
