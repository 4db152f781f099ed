"""Bandwidth estimation on both legs of a forwarded stream. Pure: times are passed in.

**Downlink (bridge → receiver).** Receivers that negotiated transport-cc on what the bridge
sends them are estimated by the bridge itself from their transport-wide feedback (send-side,
bridge/sendside.py and gcc.py, with probe clusters). For the others — aiortc, Firefox-like
clients — this module holds their own estimate, REMB (draft-alvestrand-rmcat-remb-03): they
run a delay-based estimator over the ``abs-send-time`` header extension and report the result
when ``goog-remb`` is negotiated. REMB reacts to loss only through delay, so
:class:`ReceiverEstimate` also applies the loss-based rule of draft-ietf-rmcat-gcc-02 §6 from
the receiver's RTCP receiver reports. A receiver's estimator never rises far above what it
receives (libwebrtc caps its increase near 1.5× the incoming rate), and the bridge cannot
measure what a probe found, so with REMB there is no probing padding (:func:`probe_rate`
stays, switched off in bandwidth.py; see bench/bandwidth.md): climbing back after a limit
goes is slow.

**Uplink (sender → bridge): transport-wide feedback (draft-holmer-rmcat-transport-wide-cc-
extensions-01).** The bridge only timestamps arrivals and reports them (:class:`TwccRecorder`);
the browser's own send-side estimator then decides how many simulcast layers its uplink carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tertulia.bridge.rtp.rtcp import TransportCC
from tertulia.bridge.rtp.seqnum import seq_diff

# draft-ietf-rmcat-gcc-02 §6: above 10% loss the rate drops by half the loss fraction; below
# 2% it may grow again (we let it grow back to the receiver's estimate at 8% per second).
LOSS_HIGH, LOSS_LOW, LOSS_RECOVERY_PER_S = 0.10, 0.02, 0.08
# An estimate not refreshed for this long is no longer trusted (REMB comes at least every
# second from libwebrtc, and at once when it falls).
REMB_STALE = 5.0


@dataclass(slots=True)
class ReceiverEstimate:
    """What the bridge believes it can send to one receiver, in bit/s."""

    remb_bps: float | None = None
    remb_time: float = -1e9
    loss_cap: float | None = None  # the loss-based limit while loss is high
    last_loss: float = 0.0
    last_update: float = -1e9
    updates: int = 0

    def on_remb(self, bps: float, now: float) -> None:
        self.remb_bps = float(bps)
        self.remb_time = now
        self.updates += 1

    def on_loss(self, fraction: float, now: float) -> None:
        """A receiver report's fraction lost (RFC 3550 §6.4.1) for video we send it."""
        current = self.value(now)
        self.last_loss = fraction
        elapsed = max(0.0, min(now - self.last_update, 1.0))
        self.last_update = now
        if current is None:
            return
        if fraction > LOSS_HIGH:
            self.loss_cap = current * (1 - 0.5 * fraction)
        elif fraction < LOSS_LOW and self.loss_cap is not None:
            self.loss_cap *= 1 + LOSS_RECOVERY_PER_S * elapsed
            if self.remb_bps is not None and self.loss_cap >= self.remb_bps:
                self.loss_cap = None

    def value(self, now: float) -> float | None:
        """The estimate, or None when there is none (then nothing is held back)."""
        if self.remb_bps is None or now - self.remb_time > REMB_STALE:
            return self.loss_cap
        if self.loss_cap is not None:
            return min(self.remb_bps, self.loss_cap)
        return self.remb_bps


# While layers are held back, a probe pushes past the estimate for a moment now and then: a
# receiver-side estimator only raises its estimate to about 1.5x what it sees arrive, so a
# receiver that only ever gets what its estimate allows would never climb. Short and spaced,
# so on a link that really is full the excess sits in a queue for a second, not in losses.
PROBE_GAIN, PROBE_SECONDS, PROBE_EVERY = 1.3, 1.0, 4.0


def probe_rate(estimate: float | None, sending: float, wanted: float, probing: bool = False
               ) -> float:
    """Padding rate (bit/s) that lets a receiver's estimate grow towards what it would take.

    Only while layers are held back (``wanted`` > ``sending``). Normally up to 90% of the
    estimate, so the estimator sees that rate arrive without queueing; during a probe up to
    ``PROBE_GAIN`` times the estimate. Never beyond ``wanted``.
    """
    if estimate is None or wanted <= sending:
        return 0.0
    ceiling = estimate * PROBE_GAIN if probing else estimate * 0.9
    return max(0.0, min(ceiling, wanted) - sending)


@dataclass(slots=True)
class RateMeter:
    """Bytes counted as they pass, turned into an exponentially smoothed bit rate per tick."""

    count: int = 0
    bps: float = 0.0
    last: float | None = None

    def add(self, size: int) -> None:
        self.count += size

    def tick(self, now: float, smoothing: float = 0.5) -> float:
        if self.last is None:
            self.last = now
            self.count = 0
            return self.bps
        elapsed = now - self.last
        if elapsed <= 0:
            return self.bps
        rate = self.count * 8 / elapsed
        self.bps = rate if self.bps == 0 else self.bps + smoothing * (rate - self.bps)
        self.count = 0
        self.last = now
        return self.bps


# Feedback limits: a packet reports at most this many statuses (libwebrtc sends at most a few
# hundred per feedback); arrivals older than the window are forgotten unreported.
TWCC_MAX_STATUSES = 400
TWCC_WINDOW = 1.0


@dataclass(slots=True)
class TwccRecorder:
    """Arrival times of one sender's transport-wide sequence numbers, turned into feedback.

    Sequence numbers are unwrapped (16-bit, RFC 3550 style comparison); each feedback covers
    the numbers from just after the previous one's end to the highest received so far, lost
    ones marked not received (draft-holmer-01 §3.1).
    """

    arrivals: dict[int, float] = field(default_factory=dict)  # unwrapped seq -> arrival (s)
    highest: int | None = None
    next_base: int | None = None
    feedback_count: int = 0
    received: int = 0
    late: int = 0  # arrived after a feedback had reported them lost
    reported_lost: int = 0  # statuses sent as not received

    def on_packet(self, seq16: int, now: float) -> None:
        if self.highest is None:
            seq = seq16
            self.next_base = seq
        else:
            seq = self.highest + seq_diff(seq16, self.highest & 0xFFFF)
        if self.next_base is not None and seq < self.next_base:
            self.late += 1
            return  # already reported as lost: too late
        if self.highest is None or seq > self.highest:
            self.highest = seq
        self.arrivals[seq] = now
        self.received += 1

    def feedback(self, sender_ssrc: int, media_ssrc: int, now: float) -> list[TransportCC]:
        """Feedback packets for everything since the last call (empty when nothing new)."""
        out: list[TransportCC] = []
        if self.highest is None or self.next_base is None:
            return out
        base = max(self.next_base, self.highest - 4 * TWCC_MAX_STATUSES)
        while base <= self.highest and len(out) < 4:
            last = min(self.highest, base + TWCC_MAX_STATUSES - 1)
            received = [(s, self.arrivals[s]) for s in range(base, last + 1) if s in self.arrivals]
            if not received:
                base = last + 1
                continue
            first_us = int(received[0][1] * 1_000_000)
            reference = first_us // 64_000  # multiples of 64 ms (§3.1)
            previous = reference * 64_000
            packets: list[tuple[int, bool, int | None]] = []
            for seq in range(base, last + 1):
                at = self.arrivals.get(seq)
                if at is None:
                    packets.append((seq & 0xFFFF, False, None))
                    self.reported_lost += 1
                    continue
                at_us = int(at * 1_000_000)
                delta = at_us - previous
                if delta > 0x7FFF * 250 or delta < -0x8000 * 250:
                    break  # does not fit one packet: the rest goes into the next one
                packets.append((seq & 0xFFFF, True, delta))
                previous = previous + ((delta + 125) // 250) * 250
            if not packets:
                break
            out.append(
                TransportCC(
                    sender_ssrc=sender_ssrc,
                    media_ssrc=media_ssrc,
                    base_seq=base & 0xFFFF,
                    packet_status_count=len(packets),
                    reference_time=reference & 0xFFFFFF,
                    fb_pkt_count=self.feedback_count & 0xFF,
                    packets=packets,
                )
            )
            self.feedback_count += 1
            base += len(packets)
        self.next_base = base
        limit = now - TWCC_WINDOW
        for seq in [s for s, at in self.arrivals.items() if s < base or at < limit]:
            del self.arrivals[seq]
        return out


@dataclass(slots=True)
class RttMeter:
    """Round-trip time to one receiver from its reception reports (RFC 3550 §6.4.1).

    The bridge remembers when it sent each sender report, keyed by the report's LSR value (the
    middle 32 bits of its NTP timestamp, whoever's clock that is); a reception block quoting
    that LSR gives RTT = now - sent - DLSR. Smoothed like TCP's SRTT (RFC 6298 §2, alpha 1/8).
    """

    sent: dict[int, float] = field(default_factory=dict)  # LSR -> when the SR left
    rtt: float | None = None
    samples: int = 0

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        self.sent[(ntp_timestamp >> 16) & 0xFFFFFFFF] = now
        if len(self.sent) > 32:  # a few seconds of reports; the oldest go first
            del self.sent[next(iter(self.sent))]

    def on_block(self, lsr: int, dlsr: int, now: float) -> float | None:
        at = self.sent.get(lsr)
        if not lsr or at is None:
            return None  # no SR received yet (LSR 0), or one we no longer remember
        sample = now - at - dlsr / 65536
        if sample < 0:
            return None
        self.rtt = sample if self.rtt is None else self.rtt + (sample - self.rtt) / 8
        self.samples += 1
        return sample
