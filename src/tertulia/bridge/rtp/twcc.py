"""Transport-wide congestion control feedback (RTPFB fmt 15),
draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1: parse, and serialize exactly as
libwebrtc does (status chunks and P-bit padding), so Chrome's feedback round-trips byte-exact."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tertulia.bridge.rtp.rtcp_header import (
    FMT_TWCC,
    PT_RTPFB,
    RtcpParseError,
    _fb_bytes,
    _feedback,
)

# transport-cc packet status symbols (draft §3.1.1)
_NOT_RECEIVED, _SMALL, _LARGE = 0, 1, 2


def _twcc_vector(syms: list[int]) -> int:
    """Status vector chunk (§3.1.4): 1-bit symbols if more than 7, else 2-bit symbols."""
    if len(syms) > 7:
        return 0x8000 | sum(s << (13 - k) for k, s in enumerate(syms))
    return 0xC000 | sum(s << (12 - 2 * k) for k, s in enumerate(syms))


def _twcc_chunks(symbols: list[int]) -> list[int]:
    """Encode status symbols into chunks exactly like libwebrtc's TransportFeedback::LastChunk.

    Greedy: a chunk grows while it still fits as a 2-bit vector (7), a 1-bit vector (14, no
    large delta) or a run (§3.1.3, up to 8191 equal symbols); otherwise it is emitted, a mixed
    chunk of more than 7 symbols as a 2-bit vector of its first 7, the rest carried over.
    """
    chunks: list[int] = []
    cur: list[int] = []  # pending symbols; more than 14 only while all are equal
    same = True
    for sym in symbols:
        n = len(cur)
        if n and not (
            n < 7
            or (n < 14 and sym != _LARGE and _LARGE not in cur)
            or (n < 0x1FFF and same and sym == cur[0])
        ):
            if same:
                chunks.append((cur[0] << 13) | n)
                cur = []
            elif n == 14:
                chunks.append(_twcc_vector(cur))
                cur = []
            else:
                chunks.append(_twcc_vector(cur[:7]))
                cur = cur[7:]
            same = all(s == cur[0] for s in cur)
        same = not cur or (same and sym == cur[0])
        cur.append(sym)
    if cur:
        chunks.append((cur[0] << 13) | len(cur) if same else _twcc_vector(cur))
    return chunks


@dataclass(slots=True)
class TransportCC:
    """Transport-wide congestion control feedback (RTPFB fmt 15), draft-holmer-01 §3.1.

    ``reference_time`` is the signed 24-bit value in multiples of 64 ms.  ``packets`` holds one
    ``(transport seq, received, delta_us)`` per reported packet; ``delta_us`` is the receive
    delta (multiples of 250 µs) to the previous received packet, or to the reference time for
    the first one, and None for lost packets.  Serialization re-encodes status chunks and pads
    with the P bit exactly like libwebrtc (what Chrome sends), so Chrome's feedback round-trips
    byte-exact; deltas that are not multiples of 250 µs are rounded.
    """

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    packet_status_count: int
    reference_time: int
    fb_pkt_count: int
    packets: list[tuple[int, bool, int | None]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> TransportCC:
        _fmt, sender, media, fci = _feedback(data, PT_RTPFB, "TWCC")
        if len(fci) < 8:
            raise RtcpParseError(f"TWCC: FCI of {len(fci)} bytes, need at least 8")
        base, count, ref_fb = struct.unpack_from("!HHI", fci)
        ref = ref_fb >> 8
        if ref & 0x800000:
            ref -= 1 << 24
        symbols: list[int] = []
        i = 8
        while len(symbols) < count:
            if i + 2 > len(fci):
                raise RtcpParseError(f"TWCC: status chunks end before {count} statuses")
            chunk = int.from_bytes(fci[i : i + 2], "big")
            i += 2
            if not chunk & 0x8000:  # run length chunk (§3.1.3)
                symbols.extend([(chunk >> 13) & 3] * (chunk & 0x1FFF))
            elif not chunk & 0x4000:  # status vector, 14 x 1 bit (§3.1.4)
                symbols.extend((chunk >> (13 - k)) & 1 for k in range(14))
            else:  # status vector, 7 x 2 bits
                symbols.extend((chunk >> (12 - 2 * k)) & 3 for k in range(7))
        packets: list[tuple[int, bool, int | None]] = []
        for k, sym in enumerate(symbols[:count]):
            seq = (base + k) & 0xFFFF
            if sym == 3:
                raise RtcpParseError(f"TWCC: reserved status symbol 3 for seq {seq}")
            if i + sym > len(fci):  # §3.1.5: small = 1 byte unsigned, large = 2 bytes signed
                raise RtcpParseError("TWCC: receive deltas run past the end")
            delta = int.from_bytes(fci[i : i + sym], "big", signed=sym == _LARGE)
            i += sym
            packets.append((seq, sym != _NOT_RECEIVED, delta * 250 if sym else None))
        if len(fci) - i >= 4:
            raise RtcpParseError(f"TWCC: {len(fci) - i} unexpected trailing bytes")
        return cls(sender, media, base, count, ref, ref_fb & 0xFF, packets)

    def __bytes__(self) -> bytes:
        if self.packet_status_count != len(self.packets):
            raise ValueError("TWCC: packet_status_count does not match len(packets)")
        symbols: list[int] = []
        deltas = bytearray()
        for k, (seq, received, delta_us) in enumerate(self.packets):
            if seq != (self.base_seq + k) & 0xFFFF:
                raise ValueError(f"TWCC: packet {k} has seq {seq}, expected base_seq + {k}")
            if not received or delta_us is None:
                symbols.append(_NOT_RECEIVED)
                continue
            ticks = (delta_us + 125) // 250
            if 0 <= ticks <= 255:
                symbols.append(_SMALL)
                deltas.append(ticks)
            elif -0x8000 <= ticks <= 0x7FFF:
                symbols.append(_LARGE)
                deltas += ticks.to_bytes(2, "big", signed=True)
            else:
                raise ValueError(f"TWCC: delta {delta_us} us for seq {seq} does not fit 16 bits")
        ref_fb = ((self.reference_time & 0xFFFFFF) << 8) | (self.fb_pkt_count & 0xFF)
        fci = bytearray(struct.pack("!HHI", self.base_seq, self.packet_status_count, ref_fb))
        chunks = _twcc_chunks(symbols)
        fci += struct.pack(f"!{len(chunks)}H", *chunks) + deltas
        pad = -len(fci) % 4
        if pad:  # libwebrtc: zero bytes, last one the count, P bit set (RFC 3550 §6.4.1)
            fci += bytes(pad - 1) + bytes((pad,))
        return _fb_bytes(FMT_TWCC, PT_RTPFB, self.sender_ssrc, self.media_ssrc, bytes(fci), pad > 0)
