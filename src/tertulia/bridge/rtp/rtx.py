"""RFC 4588 retransmission packets received from a sender: back to the original (pure).

An RTX packet (RFC 4588 §4) carries the original packet's payload behind a 2-byte original
sequence number (OSN), on the RTX SSRC with the RTX payload type; its header extensions and
marker bit are the original's. Unwrapping gives the original packet back: media SSRC, media
payload type, OSN as sequence number, the payload without the OSN. A packet with no OSN
(padding only, RFC 3550 §5.1) is a bandwidth probe, not a retransmission.
"""

from __future__ import annotations

__all__ = ["rtx_payload_size", "unwrap_rtx"]


def rtx_payload_size(plain: bytes, payload_at: int) -> int:
    """Bytes after the header and before the padding (RFC 3550 §5.1: with the P bit set the
    last octet counts the padding); negative for a malformed padding count."""
    padding = plain[-1] if plain[0] & 0x20 else 0
    return len(plain) - payload_at - padding


def unwrap_rtx(plain: bytes, payload_at: int, media_ssrc: int, media_pt: int) -> bytes | None:
    """The original packet of an RTX packet (RFC 4588 §4), or None when it carries no OSN."""
    if rtx_payload_size(plain, payload_at) < 2:
        return None
    head = bytearray(plain[:payload_at])
    head[1] = (head[1] & 0x80) | (media_pt & 0x7F)  # the marker bit stays the original's
    head[2:4] = plain[payload_at : payload_at + 2]
    head[8:12] = media_ssrc.to_bytes(4, "big")
    return bytes(head) + plain[payload_at + 2 :]
