"""RTCP packets: RFC 3550 §6 (SR, RR, SDES, BYE), RFC 4585 §6 (generic NACK, PLI),
RFC 5104 §4.3.1 (FIR), draft-alvestrand-rmcat-remb-03 §2.2 (REMB) and
draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1 (transport-wide CC feedback).

Each packet type is a small dataclass with ``parse(data)`` (one packet, common header included)
and ``__bytes__``.  :func:`parse_rtcp` splits a compound datagram; anything not understood is
kept byte-exact as :class:`Unknown`.  Padding (P bit, RFC 3550 §6.4.1) is stripped on parse and
only re-created for :class:`TransportCC`, which libwebrtc pads with the P bit.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from tertulia.bridge.rtp.rtcp_header import (
    _COMMON,
    _II,
    FMT_AFB,
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    FMT_TWCC,
    PT_BYE,
    PT_PSFB,
    PT_RR,
    PT_RTPFB,
    PT_SDES,
    PT_SR,
    _fb_bytes,
    _feedback,
    _header,
    _split,
)
from tertulia.bridge.rtp.rtcp_header import (
    RtcpParseError as RtcpParseError,
)
from tertulia.bridge.rtp.twcc import TransportCC as TransportCC

# --------------------------------------------------------------------------- reports


@dataclass(slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report block (24 bytes)."""

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0  # cumulative, signed 24 bit
    highest_sequence: int = 0  # extended highest sequence number received
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    _S = struct.Struct("!IIIIII")

    @classmethod
    def parse(cls, data: bytes) -> ReportBlock:
        if len(data) < 24:
            raise RtcpParseError(f"report block needs 24 bytes, have {len(data)}")
        ssrc, lost, high, jitter, lsr, dlsr = cls._S.unpack_from(data)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        return cls(ssrc, lost >> 24, cumulative, high, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = ((self.fraction_lost & 0xFF) << 24) | (self.packets_lost & 0xFFFFFF)
        tail = (self.highest_sequence, self.jitter, self.lsr, self.dlsr)
        return self._S.pack(self.ssrc, lost, *tail)


def _parse_blocks(body: bytes, offset: int, count: int, what: str) -> list[ReportBlock]:
    if offset + 24 * count > len(body):
        raise RtcpParseError(f"{what}: {count} report blocks do not fit in {len(body)} bytes")
    return [ReportBlock.parse(body[offset + 24 * k : offset + 24 * k + 24]) for k in range(count)]


def _report_bytes(pt: int, head: bytes, reports: list[ReportBlock], extension: bytes) -> bytes:
    body = b"".join([head, *map(bytes, reports), extension])
    return _header(len(reports), pt, len(body)) + body


@dataclass(slots=True)
class SenderReport:
    """RFC 3550 §6.4.1 SR; ``ntp_timestamp`` is the full 64-bit NTP value."""

    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: list[ReportBlock] = field(default_factory=list)
    profile_extension: bytes = b""

    _S = struct.Struct("!IQIII")

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        count, body = _split(data, PT_SR, "SR")
        if len(body) < 24:
            raise RtcpParseError(f"SR: body of {len(body)} bytes, need at least 24")
        ssrc, ntp, rtp_ts, packets, octets = cls._S.unpack_from(body)
        reports = _parse_blocks(body, 24, count, "SR")
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, body[24 + 24 * count :])

    def __bytes__(self) -> bytes:
        info = (self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count)
        head = self._S.pack(self.ssrc, *info)
        return _report_bytes(PT_SR, head, self.reports, self.profile_extension)


@dataclass(slots=True)
class ReceiverReport:
    """RFC 3550 §6.4.2 RR (an 8-byte RR without report blocks is valid)."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    profile_extension: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        count, body = _split(data, PT_RR, "RR")
        if len(body) < 4:
            raise RtcpParseError(f"RR: body of {len(body)} bytes, need at least 4")
        reports = _parse_blocks(body, 4, count, "RR")
        ssrc = int.from_bytes(body[:4], "big")
        return cls(ssrc, reports, body[4 + 24 * count :])

    def __bytes__(self) -> bytes:
        head = self.ssrc.to_bytes(4, "big")
        return _report_bytes(PT_RR, head, self.reports, self.profile_extension)


@dataclass(slots=True)
class Sdes:
    """RFC 3550 §6.5 SDES: ``chunks`` is ``[(ssrc, [(item_type, value), ...]), ...]``."""

    chunks: list[tuple[int, list[tuple[int, bytes]]]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> Sdes:
        count, body = _split(data, PT_SDES, "SDES")
        chunks: list[tuple[int, list[tuple[int, bytes]]]] = []
        i, n = 0, len(body)
        for _ in range(count):
            if i + 4 > n:
                raise RtcpParseError("SDES: chunk SSRC runs past the end")
            ssrc = int.from_bytes(body[i : i + 4], "big")
            i += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if i >= n:
                    raise RtcpParseError("SDES: item list not terminated by a null octet")
                item_type = body[i]
                if item_type == 0:  # END: null octet(s) up to the next 32-bit boundary
                    i = (i + 4) & ~3
                    break
                if i + 2 > n or i + 2 + body[i + 1] > n:
                    raise RtcpParseError(f"SDES: item type {item_type} runs past the end")
                j = i + 2 + body[i + 1]
                items.append((item_type, body[i + 2 : j]))
                i = j
            chunks.append((ssrc, items))
        return cls(chunks)

    def __bytes__(self) -> bytes:
        out = bytearray()
        for ssrc, items in self.chunks:
            out += ssrc.to_bytes(4, "big")
            for item_type, value in items:
                if not 1 <= item_type <= 255 or len(value) > 255:
                    raise ValueError(f"SDES item type {item_type} / length {len(value)} invalid")
                out.append(item_type)
                out.append(len(value))
                out += value
            out += bytes(4 - len(out) % 4)  # at least one null octet, then align
        return _header(len(self.chunks), PT_SDES, len(out)) + bytes(out)


@dataclass(slots=True)
class Bye:
    """RFC 3550 §6.6 BYE with an optional reason (None: absent)."""

    sources: list[int] = field(default_factory=list)
    reason: bytes | None = None

    @classmethod
    def parse(cls, data: bytes) -> Bye:
        count, body = _split(data, PT_BYE, "BYE")
        rest = body[4 * count :]
        if 4 * count > len(body) or (rest and 1 + rest[0] > len(rest)):
            raise RtcpParseError(f"BYE: {count} sources and reason do not fit in {len(body)} bytes")
        reason = rest[1 : 1 + rest[0]] if rest else None
        return cls(list(struct.unpack_from(f"!{count}I", body)), reason)

    def __bytes__(self) -> bytes:
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise ValueError("BYE reason longer than 255 bytes")
            body += bytes((len(self.reason),)) + self.reason
            body += bytes(-len(body) % 4)
        return _header(len(self.sources), PT_BYE, len(body)) + body


# --------------------------------------------------------------------------- feedback


def nack_pairs(lost: Iterable[int]) -> list[tuple[int, int]]:
    """Encode sequence numbers as RFC 4585 §6.2.1 (PID, BLP) pairs.

    Duplicates are dropped and the numbers put in wrap-aware order: the list starts right
    after the largest circular gap, so ``[65534, 65535, 0, 1]`` is one pair with PID 65534.
    """
    seqs = sorted({s & 0xFFFF for s in lost})
    if not seqs:
        return []
    n = len(seqs)
    gaps = [((seqs[(k + 1) % n] - seqs[k]) & 0xFFFF) or 0x10000 for k in range(n)]
    cut = max(range(n), key=gaps.__getitem__) + 1
    pairs: list[tuple[int, int]] = []
    for s in seqs[cut:] + seqs[:cut]:
        if pairs:
            pid, blp = pairs[-1]
            dist = (s - pid) & 0xFFFF
            if 1 <= dist <= 16:
                pairs[-1] = (pid, blp | 1 << (dist - 1))
                continue
        pairs.append((s, 0))
    return pairs


@dataclass(slots=True)
class GenericNack:
    """RFC 4585 §6.2.1 generic NACK (RTPFB fmt 1); ``lost`` lists sequence numbers."""

    sender_ssrc: int
    media_ssrc: int
    lost: list[int] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> GenericNack:
        _fmt, sender, media, fci = _feedback(data, PT_RTPFB, "NACK")
        if not fci or len(fci) % 4:
            raise RtcpParseError(f"NACK: FCI of {len(fci)} bytes is not a multiple of 4")
        lost: list[int] = []
        for pid, blp in struct.iter_unpack("!HH", fci):
            lost.append(pid)
            lost.extend((pid + k + 1) & 0xFFFF for k in range(16) if blp >> k & 1)
        return cls(sender, media, lost)

    def __bytes__(self) -> bytes:
        fci = b"".join(struct.pack("!HH", p, b) for p, b in nack_pairs(self.lost))
        return _fb_bytes(FMT_NACK, PT_RTPFB, self.sender_ssrc, self.media_ssrc, fci)


@dataclass(slots=True)
class Pli:
    """RFC 4585 §6.3.1 picture loss indication (PSFB fmt 1, no FCI)."""

    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def parse(cls, data: bytes) -> Pli:
        _fmt, sender, media, fci = _feedback(data, PT_PSFB, "PLI")
        if fci:
            raise RtcpParseError(f"PLI: unexpected FCI of {len(fci)} bytes (length must be 2)")
        return cls(sender, media)

    def __bytes__(self) -> bytes:
        return _fb_bytes(FMT_PLI, PT_PSFB, self.sender_ssrc, self.media_ssrc, b"")


@dataclass(slots=True)
class Fir:
    """RFC 5104 §4.3.1 full intra request (PSFB fmt 4); ``entries`` are (ssrc, seq nr)."""

    sender_ssrc: int
    entries: list[tuple[int, int]] = field(default_factory=list)
    media_ssrc: int = 0  # "SHALL be set to 0" (RFC 5104 §4.3.1.2); kept for round trips

    @classmethod
    def parse(cls, data: bytes) -> Fir:
        _fmt, sender, media, fci = _feedback(data, PT_PSFB, "FIR")
        if not fci or len(fci) % 8:
            raise RtcpParseError(f"FIR: FCI of {len(fci)} bytes is not a multiple of 8")
        entries = [(ssrc, word >> 24) for ssrc, word in struct.iter_unpack("!II", fci)]
        return cls(sender, entries, media)

    def __bytes__(self) -> bytes:
        fci = b"".join(_II.pack(ssrc, (seq & 0xFF) << 24) for ssrc, seq in self.entries)
        return _fb_bytes(FMT_FIR, PT_PSFB, self.sender_ssrc, self.media_ssrc, fci)


@dataclass(slots=True)
class Remb:
    """draft-alvestrand-rmcat-remb-03 §2.2 (PSFB fmt 15, "REMB"); ``bitrate`` in bit/s.

    The bitrate travels as an 18-bit mantissa and 6-bit exponent; encoding picks the smallest
    exponent (as libwebrtc does), so values above 2**18 - 1 lose their low bits.
    """

    sender_ssrc: int
    bitrate: int
    ssrcs: list[int] = field(default_factory=list)
    media_ssrc: int = 0  # "always 0" per the draft; kept for round trips

    @classmethod
    def parse(cls, data: bytes) -> Remb:
        _fmt, sender, media, fci = _feedback(data, PT_PSFB, "REMB")
        if len(fci) < 8 or fci[:4] != b"REMB":
            raise RtcpParseError("REMB: FCI does not start with 'REMB' + 4 bytes")
        num, brexp = fci[4], fci[5] >> 2
        mantissa = ((fci[5] & 3) << 16) | (fci[6] << 8) | fci[7]
        if len(fci) != 8 + 4 * num:
            raise RtcpParseError(f"REMB: {num} SSRCs do not match FCI of {len(fci)} bytes")
        ssrcs = list(struct.unpack_from(f"!{num}I", fci, 8))
        return cls(sender, mantissa << brexp, ssrcs, media)

    def __bytes__(self) -> bytes:
        brexp = max(0, self.bitrate.bit_length() - 18)
        if self.bitrate < 0 or brexp > 63 or len(self.ssrcs) > 255:
            raise ValueError("REMB bitrate or SSRC count out of range")
        num, word = len(self.ssrcs), (brexp << 18) | (self.bitrate >> brexp)
        fci = struct.pack(f"!4sBBH{num}I", b"REMB", num, word >> 16, word & 0xFFFF, *self.ssrcs)
        return _fb_bytes(FMT_AFB, PT_PSFB, self.sender_ssrc, self.media_ssrc, fci)


@dataclass(slots=True)
class Unknown:
    """Any other RTCP packet, kept byte-exact: ``data`` is everything after the 4-byte header
    (padding included) and ``padding`` is the P bit."""

    packet_type: int
    fmt: int
    data: bytes
    padding: bool = False

    @classmethod
    def parse(cls, data: bytes) -> Unknown:
        if len(data) < 4:
            raise RtcpParseError(f"RTCP packet of {len(data)} bytes, shorter than its header")
        b0, pt, length = _COMMON.unpack_from(data)
        if b0 >> 6 != 2 or 4 * (length + 1) != len(data):
            raise RtcpParseError(f"RTCP packet type {pt}: bad version or length")
        return cls(pt, b0 & 0x1F, bytes(data[4:]), bool(b0 & 0x20))

    def __bytes__(self) -> bytes:
        return _header(self.fmt, self.packet_type, len(self.data), self.padding) + self.data


_Reports: TypeAlias = SenderReport | ReceiverReport | Sdes | Bye
_Feedback: TypeAlias = GenericNack | Pli | Fir | Remb | TransportCC
RtcpPacket: TypeAlias = _Reports | _Feedback | Unknown

# (packet type, fmt or None for "any") -> parser
_PARSERS: dict[tuple[int, int | None], Callable[[bytes], RtcpPacket]] = {
    (PT_SR, None): SenderReport.parse,
    (PT_RR, None): ReceiverReport.parse,
    (PT_SDES, None): Sdes.parse,
    (PT_BYE, None): Bye.parse,
    (PT_RTPFB, FMT_NACK): GenericNack.parse,
    (PT_RTPFB, FMT_TWCC): TransportCC.parse,
    (PT_PSFB, FMT_PLI): Pli.parse,
    (PT_PSFB, FMT_FIR): Fir.parse,
}


def _parse_one(pkt: bytes) -> RtcpPacket:
    pt, fmt = pkt[1], pkt[0] & 0x1F
    parser = _PARSERS.get((pt, None)) or _PARSERS.get((pt, fmt))
    if parser is None and pt == PT_PSFB and fmt == FMT_AFB and pkt[12:16] == b"REMB":
        parser = Remb.parse
    try:
        return (parser or Unknown.parse)(pkt)
    except (struct.error, IndexError) as exc:  # defensive: parsers check bounds themselves
        raise RtcpParseError(f"malformed RTCP packet type {pt}: {exc}") from exc


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a (compound) RTCP datagram (RFC 3550 §6.1, validity checks after §A.2).

    Every packet must have version 2 and a length that fits; the lengths must add up to the
    datagram.  Reduced-size (RFC 5506) datagrams are accepted: the first packet need not be
    SR/RR.
    """
    n = len(data)
    if n == 0:
        raise RtcpParseError("empty RTCP datagram")
    out: list[RtcpPacket] = []
    off = 0
    while off < n:
        if n - off < 4:
            raise RtcpParseError(f"{n - off} trailing bytes at offset {off}, too short for RTCP")
        b0, pt, length = _COMMON.unpack_from(data, off)
        if b0 >> 6 != 2:
            raise RtcpParseError(f"RTCP version {b0 >> 6} at offset {off}, expected 2")
        size = 4 * (length + 1)
        if off + size > n:
            raise RtcpParseError(
                f"RTCP packet type {pt} at offset {off} claims {size} bytes, only {n - off} left"
            )
        out.append(_parse_one(bytes(data[off : off + size])))
        off += size
    return out


def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound datagram."""
    return b"".join(bytes(p) for p in packets)
