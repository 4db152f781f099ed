"""What a synthetic receiver counts, without decoding: packets, bytes, loss, jitter (pure).

Loss follows RFC 3550 §A.3 (expected = extended highest − base + 1, lost = expected −
received, never negative), interarrival jitter RFC 3550 §6.4.1 / §A.8 (in RTP clock units,
smoothed by 1/16). The RTP header of an SRTP packet is sent in the clear (RFC 3711 §3.1), so
these fields are read without unprotecting every packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tertulia.bridge.rtp.seqnum import SeqUnwrapper


@dataclass(slots=True)
class StreamStats:
    """One received RTP stream (one SSRC)."""

    clock_rate: int
    packets: int = 0
    bytes: int = 0
    first_arrival: float | None = None
    last_arrival: float = 0.0
    jitter: float = 0.0  # RTP clock units (RFC 3550 §A.8)
    gaps: list[tuple[int, int, float]] = field(default_factory=list)  # last 5 (from, to, when)
    _base: int | None = None
    _transit: float | None = None
    _unwrap: SeqUnwrapper = field(default_factory=SeqUnwrapper)

    def add(self, seq: int, timestamp: int, size: int, arrival: float) -> None:
        highest = self._unwrap.highest
        index = self._unwrap.unwrap(seq)
        if highest is not None and index - highest > 1:
            self.gaps.append((highest & 0xFFFF, seq, round(arrival, 3)))
            del self.gaps[:-5]
        if self._base is None or index < self._base:
            self._base = index
        self.packets += 1
        self.bytes += size
        if self.first_arrival is None:
            self.first_arrival = arrival
        self.last_arrival = arrival
        # RFC 3550 §A.8: transit = arrival (in clock units) - timestamp; D = |transit - last|
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self.clock_rate * 10:  # a source switch in a slot is not jitter
                self.jitter += (d - self.jitter) / 16
        self._transit = transit

    @property
    def expected(self) -> int:
        highest = self._unwrap.highest
        if highest is None or self._base is None:
            return 0
        return highest - self._base + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)

    @property
    def jitter_ms(self) -> float:
        return 1000.0 * self.jitter / self.clock_rate


@dataclass(slots=True)
class Totals:
    """A snapshot of counters, so intervals can be told apart (rates, loss per second)."""

    packets: int = 0
    bytes: int = 0
    expected: int = 0
    lost: int = 0

    def minus(self, other: Totals) -> Totals:
        return Totals(self.packets - other.packets, self.bytes - other.bytes,
                      self.expected - other.expected, self.lost - other.lost)

    @property
    def loss_fraction(self) -> float:
        return self.lost / self.expected if self.expected > 0 else 0.0


def totals(streams: list[StreamStats]) -> Totals:
    return Totals(
        packets=sum(s.packets for s in streams),
        bytes=sum(s.bytes for s in streams),
        expected=sum(s.expected for s in streams),
        lost=sum(s.lost for s in streams),
    )


@dataclass(slots=True)
class PerSender:
    """Media one receiver got from one sender (through whichever slot carried it)."""

    audio: int = 0
    video: int = 0
