"""Send-side estimation (bridge/sendside.py, bridge/gcc.py) in virtual time.

A simulated bottleneck (a FIFO at a given capacity, with a queue limit and optional random
loss) carries what the estimator's owner sends; the receiver's side is the bridge's own
feedback generator (bwe.TwccRecorder), so the feedback is real TransportCC packets, round-
tripped through their wire format.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from tertulia.bridge import sendside
from tertulia.bridge.bwe import TwccRecorder
from tertulia.bridge.gcc import InterArrival, Trendline, Usage
from tertulia.bridge.rtp.rtcp import TransportCC
from tertulia.bridge.sendside import RING, SendHistory, SendSideEstimate

PACKET = 1200  # bytes
STEP = 0.005  # s of virtual time per simulation step
FEEDBACK_EVERY = 0.05


@dataclass
class Link:
    capacity: float  # bit/s
    delay: float = 0.02
    queue_limit: float = 0.3  # seconds of queue before tail drop
    loss: float = 0.0
    free_at: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    dropped: int = 0  # tail drops (a full queue), not random loss

    def carry(self, t: float, size: int) -> float | None:
        start = max(t, self.free_at)
        if start - t > self.queue_limit:
            self.dropped += 1
            return None
        if self.rng.random() < self.loss:
            return None
        self.free_at = start + size * 8 / self.capacity
        return self.free_at + self.delay


@dataclass
class Sim:
    link: Link
    est: SendSideEstimate = field(default_factory=SendSideEstimate)
    receiver: TwccRecorder = field(default_factory=TwccRecorder)
    t: float = 0.0
    in_flight: list[tuple[float, int]] = field(default_factory=list)
    credit: float = 0.0
    next_feedback: float = FEEDBACK_EVERY
    trace: list[tuple[float, float]] = field(default_factory=list)  # (t, estimate)

    def send(self, size: int) -> None:
        seq16 = self.est.history.add(self.t, size)
        arrival = self.link.carry(self.t, size)
        if arrival is not None:
            heapq.heappush(self.in_flight, (arrival, seq16))

    def run(self, seconds: float, media_bps: float, *, wanted: float | None = None,
            adaptive: bool = True) -> None:
        """Send media at ``media_bps`` (or the estimate when lower and ``adaptive``), with
        probing towards ``wanted``; deliver arrivals and feedback."""
        end = self.t + seconds
        while self.t < end:
            rate = min(media_bps, self.est.value()) if adaptive else media_bps
            self.credit += rate * STEP / 8
            while self.credit >= PACKET:
                self.send(PACKET)
                self.credit -= PACKET
            if wanted is not None:
                owed = self.est.probe_tick(wanted, self.t)
                while owed > 0:
                    self.send(PACKET)
                    owed -= PACKET
                self.est.probe_sent(self.t)  # as bandwidth.pad does
            while self.in_flight and self.in_flight[0][0] <= self.t:
                _at, seq16 = heapq.heappop(self.in_flight)
                self.receiver.on_packet(seq16, _at)
            if self.t >= self.next_feedback:
                self.next_feedback += FEEDBACK_EVERY
                for fb in self.receiver.feedback(1, 2, self.t):
                    self.est.on_feedback(TransportCC.parse(bytes(fb)), self.t + 0.02)
            self.trace.append((self.t, self.est.value()))
            self.t += STEP

    def estimate_at(self, t: float) -> float:
        return next(v for at, v in self.trace if at >= t)


def test_steady_link_estimate_follows_what_is_sent_without_decreases() -> None:
    sim = Sim(Link(5_000_000))
    sim.run(20, 1_000_000, adaptive=False)
    assert sim.est.rate.decreases == 0
    assert sim.est.trendline.state is not Usage.OVERUSING
    acked = sim.est.acked()
    assert acked is not None and 900_000 < acked < 1_100_000
    # app-limited: it grows up to 1.5x what gets through (gcc-02 §5.5), not beyond
    assert 1_000_000 < sim.est.value() <= 1.5 * acked + 10_000


def test_link_dropping_to_300k_pulls_the_estimate_down_within_2s_and_near_it() -> None:
    sim = Sim(Link(3_000_000))
    sim.run(10, 1_000_000, wanted=1_000_000, adaptive=False)
    before = sim.est.value()
    assert before > 900_000
    sim.link.capacity = 300_000
    drop_at = sim.t
    sim.run(15, 1_000_000)
    assert sim.est.rate.decreases >= 1
    assert sim.estimate_at(drop_at + 2.0) < 450_000, "did not fall within 2 s"
    settled = [v for t, v in sim.trace if t > drop_at + 8]
    assert min(settled) > 150_000 and max(settled) < 450_000, (min(settled), max(settled))


def test_link_coming_back_is_found_by_a_probe_within_a_few_seconds() -> None:
    sim = Sim(Link(3_000_000))
    sim.run(5, 1_000_000, wanted=1_000_000)
    sim.link.capacity = 300_000
    sim.run(15, 1_000_000, wanted=1_000_000)
    limited = sim.est.value()
    assert limited < 450_000
    sim.link.capacity = 3_000_000
    lifted = sim.t
    sim.run(8, 1_000_000, wanted=1_000_000)
    results = [r for r in sim.est.probe_results if r.bps is not None]
    assert results, "no valid probe result"
    reached = next((t for t, v in sim.trace if t > lifted and v >= 950_000), None)
    assert reached is not None and reached - lifted < 6.0, (reached, sim.est.probe_results)


def test_probes_on_a_limited_link_do_not_lift_the_estimate_past_it() -> None:
    """A probe at 2x the estimate through a 300 kbit/s bottleneck measures the bottleneck."""
    sim = Sim(Link(300_000))
    sim.run(20, 1_000_000, wanted=1_000_000)
    valid = [r.bps for r in sim.est.probe_results if r.bps is not None]
    assert valid and max(valid) < 360_000, sim.est.probe_results
    assert max(v for t, v in sim.trace if t > 10) < 450_000


def test_probes_into_a_full_link_fit_its_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Media at about the estimate of a 300 kbit/s link with a 200 ms queue (the browser
    test's `tc tbf`), probed every 4 s at twice the estimate: what a cluster sends above the
    link's rate must wait in the queue, not overflow it and take media with it."""

    def drops(duration: float) -> tuple[int, int]:
        monkeypatch.setattr(sendside, "PROBE_DURATION", duration)
        sim = Sim(Link(300_000, queue_limit=0.2))
        sim.run(10, 260_000, wanted=1_000_000)
        before = sim.link.dropped
        clusters = sim.est.next_cluster_id
        sim.run(16, 260_000, wanted=1_000_000)
        return sim.link.dropped - before, sim.est.next_cluster_id - clusters

    dropped, probes = drops(sendside.PROBE_DURATION)
    assert probes >= 3 and dropped == 0
    # what the shorter clusters are for: 0.5 s ones overflow the queue at every probe
    longer, probes = drops(0.5)
    assert longer >= probes >= 3


def test_a_cluster_ends_with_its_last_padding_at_its_target() -> None:
    """probe_sent ends the cluster right after the padding of its last tick: the cluster
    holds what was sent at its target rate, not the media that followed."""
    est = SendSideEstimate()
    now, sent = 1.0, []
    est.start_probe(600_000, now)
    while est.probe is not None and now < 2.0:
        now += 0.05
        owed = est.probe_tick(None, now)
        while owed > 0:
            est.history.add(now, PACKET)
            sent.append(PACKET)
            owed -= PACKET
        est.probe_sent(now)
    cluster = est.clusters[-1]
    assert cluster.end == est.history.seq and cluster.ended == pytest.approx(
        1.0 + sendside.PROBE_DURATION)
    assert sum(sent) == pytest.approx(600_000 * sendside.PROBE_DURATION / 8, abs=PACKET)
    # sent as owed, so it measures as its target: from its start, all its bytes
    assert sendside.send_rate(cluster, est.history) == pytest.approx(600_000, rel=0.1)
    est.history.add(now + 0.01, PACKET)  # media after it is not the cluster's
    assert cluster.end == est.history.seq - 1


def burst_cluster(link_bps: float | None) -> tuple[sendside.ProbeCluster, SendHistory]:
    """A cluster as the bridge sends one: three bursts of four 1200-byte packets at its 50 ms
    ticks after the start (768 kbit/s), arriving 20 ms later through a free link or one
    that carries ``link_bps`` (a FIFO, no burst allowance)."""
    history = SendHistory()
    cluster = sendside.ProbeCluster(1, 768_000, 10.0, history.seq, history.bytes)
    free_at = 0.0
    for tick in (1, 2, 3):
        for _ in range(4):
            sent = 10.0 + 0.05 * tick
            seq = history.seq
            history.add(sent, PACKET)
            if link_bps is None:
                arrival = sent + 0.02
            else:
                free_at = max(sent, free_at) + PACKET * 8 / link_bps
                arrival = free_at + 0.02
            cluster.arrivals[seq] = arrival
    cluster.end = history.seq
    return cluster, history


def test_a_cluster_of_three_bursts_measures_a_free_link_at_its_rate() -> None:
    cluster, history = burst_cluster(None)
    assert sendside.send_rate(cluster, history) == pytest.approx(768_000)
    assert sendside.probe_rate(cluster, history) == pytest.approx(768_000)


def test_a_cluster_of_three_bursts_measures_a_bottleneck_at_95_percent() -> None:
    cluster, history = burst_cluster(300_000)
    assert sendside.probe_rate(cluster, history) == pytest.approx(0.95 * 300_000, rel=0.02)


def test_probe_on_a_free_link_lifts_the_estimate_at_once() -> None:
    sim = Sim(Link(10_000_000))
    sim.run(3, 200_000, adaptive=False)
    start = sim.est.value()
    sim.est.next_probe = sim.t
    sim.run(1.5, 200_000, wanted=2 * start, adaptive=False)
    result = next(r for r in sim.est.probe_results if r.bps is not None)
    assert result.bps is not None and result.bps > 0.9 * result.target
    assert sim.est.value() >= 0.9 * result.target


def test_loss_without_delay_lowers_the_estimate_and_low_loss_does_not() -> None:
    lossy = Sim(Link(50_000_000, loss=0.2))
    lossy.run(10, 1_000_000, adaptive=False)
    clean = Sim(Link(50_000_000, loss=0.01))
    clean.run(10, 1_000_000, adaptive=False)
    assert lossy.est.loss.cap is not None
    assert lossy.est.value() < 0.7 * clean.est.value()
    assert clean.est.loss.cap is None
    assert 0.1 < lossy.est.loss.last_fraction < 0.35  # judged over ~20 packets: noisy


def test_wraparound_of_the_16bit_numbers() -> None:
    sim = Sim(Link(5_000_000))
    sim.est.history.seq = 0xFFFF - 50  # wraps within the first second
    sim.receiver = TwccRecorder()
    sim.run(6, 1_000_000, adaptive=False)
    assert sim.est.history.seq > 0x10000
    assert not sim.est.counters.get("twcc-feedback-unknown-seq")
    acked = sim.est.acked()
    assert acked is not None and acked > 900_000


def test_history_unwrap_rejects_numbers_not_sent_recently() -> None:
    history = SendHistory()
    assert history.unwrap(0) is None  # nothing sent yet
    for _ in range(RING + 10):
        history.add(0.0, 100)
    last = history.seq - 1
    assert history.unwrap(last & 0xFFFF) == last
    assert history.unwrap((last - RING + 1) & 0xFFFF) == last - RING + 1
    assert history.unwrap((last - RING) & 0xFFFF) is None  # overwritten in the ring
    assert history.unwrap((last + 1) & 0xFFFF) is None  # not sent yet


def test_duplicate_reordered_and_garbage_feedback_is_counted_not_fatal() -> None:
    sim = Sim(Link(5_000_000))
    sim.run(3, 500_000, adaptive=False)
    est = sim.est
    value = est.value()
    last = (est.history.seq - 1) & 0xFFFF
    # the same report twice: the second adds nothing
    fb = TransportCC(1, 2, (last - 3) & 0xFFFF, 4, 100, 0,
                     [((last - 3 + k) & 0xFFFF, True, 1000) for k in range(4)])
    before = est.counters.get("twcc-feedback-duplicate", 0)
    est.on_feedback(fb, sim.t)
    est.on_feedback(fb, sim.t)
    assert est.counters["twcc-feedback-duplicate"] >= before + 4
    # numbers never sent, a reference time far in the past, huge deltas
    rng = random.Random(3)
    for _ in range(300):
        base = rng.randrange(0, 1 << 16)
        count = rng.randrange(1, 40)
        packets = [((base + k) & 0xFFFF, rng.random() < 0.7, rng.randrange(-8_000_000, 8_000_000))
                   for k in range(count)]
        packets = [(s, got, d if got else None) for s, got, d in packets]
        est.on_feedback(TransportCC(1, 2, base, count, rng.randrange(-(1 << 23), 1 << 23),
                                    rng.randrange(256), packets), sim.t)
    assert est.counters["twcc-feedback-unknown-seq"] > 0
    assert est.value() > 0
    # and it keeps working afterwards on a sane link
    sim.run(10, 500_000, adaptive=False)
    assert est.value() >= min(value, 500_000)


def test_inter_arrival_groups_5ms_bursts() -> None:
    ia = InterArrival()
    out = []
    for k in range(30):  # packets every 2 ms: groups of three
        d = ia.add(k * 0.002, 1.0 + k * 0.002, 100)
        if d is not None:
            out.append(d)
    assert out and all(abs(s - 0.006) < 1e-9 and abs(a - 0.006) < 1e-9 for s, a in out)


def test_trendline_detects_growing_delay_and_not_a_flat_one() -> None:
    flat, rising = Trendline(), Trendline()
    for k in range(100):
        flat.update(0.02, 0.02, k * 0.02)
        rising.update(0.02, 0.024, k * 0.024)
    assert flat.state is Usage.NORMAL
    assert rising.state is Usage.OVERUSING
