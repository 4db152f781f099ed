"""Send-side bandwidth estimation towards one receiver from its transport-wide feedback.

Pure: times are passed in. The bridge numbers every packet it sends a receiver that
negotiated transport-cc (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2) and keeps
(number -> send time, size) in :class:`SendHistory`, a fixed ring: one slot written per packet.
The receiver's feedback (§3.1, parsed by rtp.rtcp.TransportCC) gives arrival times; from
them :class:`SendSideEstimate` derives

- the acknowledged rate (what got through, over the last 500 ms of arrivals);
- the delay-based estimate (bridge/gcc.py: draft-ietf-rmcat-gcc-02 §5);
- the loss-based limit (gcc-02 §6: above 10% loss down by half the loss, below 2% back up);
- probe results: a probe cluster is the run of packets sent while the bridge pads up to a
  target rate (:meth:`SendSideEstimate.start_probe`); once feedback covers it, its rate is
  min(send rate, receive rate) by libwebrtc's ProbeBitrateEstimator rules, and a valid result
  replaces the estimate at once. That is what makes recovery fast: the delay-based estimate
  on its own only grows to 1.5x what is being sent.

Feedback that makes no sense (numbers never sent or too old, packets reported twice, arrival
times going backwards) is skipped and counted in ``counters``, never raised.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tertulia.bridge.gcc import MIN_BITRATE, AimdRateControl, InterArrival, Trendline, Usage
from tertulia.bridge.rtp.rtcp import TransportCC

RING = 1 << 13  # send records kept: ~8 s at 1000 packets/s, far more than feedback lags
START_BITRATE = 300_000.0  # libwebrtc's default start rate
START_PERIOD = 3.0  # s of feedback before the start rate counts without a probe result
ACKED_WINDOW = 0.5  # seconds of arrivals in the acknowledged rate
# gcc-02 §6 loss thresholds; loss is judged over at least this many reported packets, and a
# decrease waits this long (plus the RTT) after the previous one (libwebrtc's
# kBweDecreaseInterval) so one burst of loss is not counted twice.
LOSS_HIGH, LOSS_LOW, LOSS_RECOVERY_PER_S = 0.10, 0.02, 0.08
LOSS_MIN_PACKETS = 20
LOSS_DECREASE_INTERVAL = 0.3
# ProbeBitrateEstimator (libwebrtc probe_bitrate_estimator.cc): a cluster counts when at least
# 80% of its packets (and 5 of them) arrived; a receive rate above 2x the send rate is a
# measuring error; a receive rate below 90% of the send rate means the link is saturated and
# the result is 95% of what was received.
PROBE_MIN_PACKETS = 5
PROBE_MIN_RECEIVED = 0.8
PROBE_MAX_RATIO = 2.0
PROBE_SATURATED, PROBE_UTILIZATION = 0.9, 0.95
PROBE_MAX_INTERVAL = 1.0  # a cluster's packets span at most this long, sent or received
PROBE_FEEDBACK_TIMEOUT = 2.0  # give up on a cluster's feedback after this long
# Probing policy (libwebrtc's ProbeController in application-limited periods probes at 2x the
# estimate): a 0.15 s cluster at twice the estimate, capped at what the receiver's layers
# would take, at most every 4 s; after one that reached 90% of its target the next follows
# 0.5 s later, so the estimate doubles its way up instead of waiting. Short, because on a
# full link all a cluster sends above the link's rate waits in the bottleneck's queue: a 0.5
# s cluster at 2x a 300 kbit/s link is ~11 KB more than the link carries, beyond a 200 ms
# queue (7.5 KB), and cost the receiver 1-2 media packets at every probe (tests/browser/
# test_bandwidth.py; test_sendside.py's simulated link drops at 0.2 s and longer, not at
# 0.15). libwebrtc's clusters are shorter still (15 ms, 5 packets), but its pacer spaces
# their packets; here the padding goes out once per fast tick (50 ms), so a cluster is
# three bursts, which measure as well as ten (the same simulation).
PROBE_GAIN, PROBE_DURATION, PROBE_EVERY, PROBE_AGAIN = 2.0, 0.15, 4.0, 0.5
PROBE_INITIAL_GAIN = 3.0  # the first probe (libwebrtc starts with 3x the start rate)


@dataclass(slots=True)
class SendHistory:
    """Transport-wide numbers of sent packets: send time and size, in a fixed ring.

    ``seq`` counts packets without wrapping; the 16-bit value on the wire is ``seq & 0xFFFF``.
    ``bytes`` is the running total sent (probe clusters measure their share from it).
    """

    seq: int = 0
    bytes: int = 0
    times: list[float] = field(default_factory=lambda: [0.0] * RING)
    sizes: list[int] = field(default_factory=lambda: [0] * RING)
    acked: bytearray = field(default_factory=lambda: bytearray(RING))

    def add(self, now: float, size: int) -> int:
        """Record one packet; returns the 16-bit number to stamp on it."""
        seq = self.seq
        i = seq & (RING - 1)
        self.times[i] = now
        self.sizes[i] = size
        self.acked[i] = 0
        self.seq = seq + 1
        self.bytes += size
        return seq & 0xFFFF

    def unwrap(self, seq16: int) -> int | None:
        """The full number of a 16-bit one from feedback, None when it was not sent recently."""
        last = self.seq - 1
        behind = (last - seq16) & 0xFFFF
        if behind >= RING or last - behind < 0:
            return None
        return last - behind


@dataclass(slots=True)
class ProbeCluster:
    """Packets ``first`` .. ``end - 1`` (transport-wide numbers), sent while padding up to
    ``target`` bit/s; their arrivals as feedback reports them."""

    cluster_id: int
    target: float
    started: float
    first: int
    first_bytes: int
    end: int | None = None  # set when the cluster stops
    closing: bool = False  # its time is up: it ends once its last padding has gone
    ended: float = 0.0
    arrivals: dict[int, float] = field(default_factory=dict)  # seq -> arrival
    reported: set[int] = field(default_factory=set)  # seqs feedback covered (either way)


@dataclass(slots=True)
class ProbeResult:
    cluster_id: int
    target: float
    bps: float | None  # None: the cluster did not give a valid measurement


def probe_rate(cluster: ProbeCluster, history: SendHistory) -> float | None:
    """min(send rate, receive rate) of a cluster (ProbeBitrateEstimator::HandleProbeAndEstimate
    Bitrate), or None when too few packets arrived or the times make no sense.

    A cluster is a dozen packets sent in three bursts (PROBE_DURATION), so the receive rate
    is measured the way the send rate is (:func:`send_rate`): all its bytes over the time
    from the arrival-side equivalent of its start (the first packet's arrival, less how long
    after the start it was sent) to its last arrival; on a free link the two agree. The link
    counts as saturated when the later half of what arrived came in more slowly than it was
    sent: a bottleneck with a burst allowance (a token bucket) passes the first packets at
    line rate, and only the later ones show what it carries when that allowance is used up.
    Then the result is 95% of the later half's receive rate.
    """
    assert cluster.end is not None
    sent = cluster.end - cluster.first
    got = sorted((cluster.arrivals[s], s) for s in cluster.arrivals)
    if sent < PROBE_MIN_PACKETS or len(got) < max(PROBE_MIN_PACKETS, PROBE_MIN_RECEIVED * sent):
        return None
    send_bps = send_rate(cluster, history)
    if send_bps is None:
        return None
    mask = RING - 1
    first_at, first = got[0]
    lead = history.times[first & mask] - cluster.started
    interval = got[-1][0] - first_at + max(lead, 0.0)
    if interval <= 0 or interval > PROBE_MAX_INTERVAL:
        return None
    receive_bps = sum(history.sizes[s & mask] for _, s in got) * 8 / interval
    if receive_bps > PROBE_MAX_RATIO * send_bps:
        return None
    later = got[max(len(got) // 2 - 1, 0):]
    arrived = later[-1][0] - later[0][0]
    went = history.times[later[-1][1] & mask] - history.times[later[0][1] & mask]
    if arrived > 0 and went < PROBE_SATURATED * arrived:  # queued on the way
        size = sum(history.sizes[s & mask] for _, s in later[1:])
        return PROBE_UTILIZATION * size * 8 / arrived
    return min(send_bps, receive_bps)


def send_rate(cluster: ProbeCluster, history: SendHistory) -> float | None:
    """The rate an ended cluster was sent at: from its start to its last packet, all its
    bytes. libwebrtc measures from its first packet and leaves the last one's bytes out, as
    its pacer sends a cluster's packets evenly from the start and each begins an interval.
    Here padding goes out in bursts, each owed for the time since the cluster started
    (probe_owed), so what went out up to the last burst is the target rate times the time
    since the start: from the first packet (if media had a gap at the start) a short cluster
    read up to a tick's worth too fast, and without the last packet, with a dozen packets
    to a cluster, 10% too slow."""
    assert cluster.end is not None
    mask = RING - 1
    send_first = min(cluster.started, history.times[cluster.first & mask])
    interval = history.times[(cluster.end - 1) & mask] - send_first
    if interval <= 0 or interval > PROBE_MAX_INTERVAL:
        return None
    return sum(history.sizes[s & mask] for s in range(cluster.first, cluster.end)) * 8 / interval


@dataclass(slots=True)
class LossBased:
    """gcc-02 §6 on the loss the feedback shows: a limit while loss is high, lifted again
    (8% per second) while it is low."""

    cap: float | None = None
    received: int = 0
    lost: int = 0
    last_fraction: float = 0.0
    last_update: float | None = None
    last_decrease: float = -1e9

    def add(self, received: int, lost: int, estimate: float, now: float, rtt: float) -> None:
        self.received += received
        self.lost += lost
        total = self.received + self.lost
        if total < LOSS_MIN_PACKETS:
            return
        fraction = self.lost / total
        self.received = self.lost = 0
        self.last_fraction = fraction
        elapsed = 0.0 if self.last_update is None else min(max(now - self.last_update, 0), 1)
        self.last_update = now
        current = estimate if self.cap is None else min(self.cap, estimate)
        if fraction > LOSS_HIGH:
            if now - self.last_decrease >= LOSS_DECREASE_INTERVAL + rtt:
                self.cap = max(current * (1 - 0.5 * fraction), MIN_BITRATE)
                self.last_decrease = now
        elif fraction < LOSS_LOW and self.cap is not None:
            self.cap *= 1 + LOSS_RECOVERY_PER_S * elapsed
            if self.cap >= estimate:
                self.cap = None


@dataclass(slots=True)
class SendSideEstimate:
    """What the bridge may send one receiver (bit/s), from that receiver's feedback."""

    history: SendHistory = field(default_factory=SendHistory)
    inter_arrival: InterArrival = field(default_factory=InterArrival)
    trendline: Trendline = field(default_factory=Trendline)
    rate: AimdRateControl = field(default_factory=lambda: AimdRateControl(START_BITRATE))
    loss: LossBased = field(default_factory=LossBased)
    acked_window: deque[tuple[float, int]] = field(default_factory=deque)
    acked_bytes: int = 0
    first_arrival: float | None = None
    last_arrival: float | None = None
    clusters: list[ProbeCluster] = field(default_factory=list)
    probe: ProbeCluster | None = None  # the cluster being sent now
    probe_results: list[ProbeResult] = field(default_factory=list)  # the last few
    next_cluster_id: int = 1
    next_probe: float = 0.0
    rtt: float = 0.2
    feedbacks: int = 0
    first_feedback: float | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def _count(self, what: str, n: int = 1) -> None:
        self.counters[what] = self.counters.get(what, 0) + n

    # -- feedback -------------------------------------------------------------------------

    def on_feedback(self, feedback: TransportCC, now: float) -> None:
        """One TransportCC packet from the receiver (draft-holmer-01 §3.1)."""
        self.feedbacks += 1
        if self.first_feedback is None:
            self.first_feedback = now
        history = self.history
        mask = RING - 1
        at = feedback.reference_time * 0.064  # receiver clock, seconds (§3.1: 64 ms units)
        received: list[tuple[float, float, int, int]] = []  # arrival, send, size, seq
        lost = 0
        for seq16, got, delta_us in feedback.packets:
            seq = history.unwrap(seq16)
            if seq is None:
                self._count("twcc-feedback-unknown-seq")
                if got and delta_us is not None:
                    at += delta_us / 1e6
                continue
            i = seq & mask
            for cluster in self.clusters:
                if cluster.first <= seq and (cluster.end is None or seq < cluster.end):
                    cluster.reported.add(seq)
            if not got or delta_us is None:
                if not history.acked[i]:
                    lost += 1
                continue
            at += delta_us / 1e6
            if history.acked[i]:
                self._count("twcc-feedback-duplicate")
                continue
            history.acked[i] = 1
            received.append((at, history.times[i], history.sizes[i], seq))
        received.sort()
        if received:  # feedback round trip, the latest packet's (libwebrtc's feedback RTT)
            sample = min(max(now - max(r[1] for r in received), 0.0), 2.0)
            self.rtt += 0.125 * (sample - self.rtt)
            self.rate.rtt = self.rtt
        for arrival, send, size, seq in received:
            self._on_arrival(arrival, send, size, seq, now)
        if received or lost:
            self.loss.add(len(received), lost, self.rate.bitrate, now, self.rtt)
        self._finish_clusters(now)

    def _on_arrival(self, arrival: float, send: float, size: int, seq: int, now: float
                    ) -> None:
        if self.last_arrival is not None and arrival < self.last_arrival - 1.0:
            # the receiver's clock jumped back (or garbage): start the delay filter again
            self._count("twcc-feedback-time-jump")
            self.inter_arrival.reset()
            self.acked_window.clear()
            self.acked_bytes = 0
            self.first_arrival = None
        self.last_arrival = arrival if self.last_arrival is None else max(
            arrival, self.last_arrival)
        if self.first_arrival is None:
            self.first_arrival = arrival
        window = self.acked_window
        window.append((arrival, size))
        self.acked_bytes += size
        while window and (window[0][0] < arrival - ACKED_WINDOW or len(window) > RING):
            self.acked_bytes -= window.popleft()[1]
        for cluster in self.clusters:
            if cluster.first <= seq and (cluster.end is None or seq < cluster.end):
                cluster.arrivals[seq] = arrival
        deltas = self.inter_arrival.add(send, arrival, size)
        if deltas is not None:
            usage = self.trendline.update(deltas[0], deltas[1], arrival)
            probing = self.probe is not None or any(c.end is not None for c in self.clusters)
            self.rate.update(usage, self.acked(), now, probing)

    def acked(self) -> float | None:
        """What got through over the last 500 ms of arrivals (bit/s), once that long."""
        if self.first_arrival is None or self.last_arrival is None:
            return None
        if self.last_arrival - self.first_arrival < ACKED_WINDOW:
            return None
        return self.acked_bytes * 8 / ACKED_WINDOW

    # -- probes ---------------------------------------------------------------------------

    def probe_tick(self, wanted: float | None, now: float) -> int:
        """The probing policy, run every few tens of ms: start or end a cluster while
        ``wanted`` (bit/s the receiver's layers would take) is above the estimate. Returns
        the bytes of padding owed now."""
        cluster = self.probe
        if cluster is not None and cluster.closing:  # probe_sent was not called
            self.end_probe(now)
        elif cluster is not None:
            # the last share, sent now; probe_sent() then ends the cluster, before any media
            # that follows dilutes it
            cluster.closing = now - cluster.started >= PROBE_DURATION
        elif (wanted is not None and wanted > self.value()
              and now >= self.next_probe):
            gain = PROBE_INITIAL_GAIN if self.next_cluster_id == 1 else PROBE_GAIN
            self.start_probe(min(gain * self.value(), wanted), now)
            self.next_probe = now + PROBE_EVERY
        return self.probe_owed(now)

    def start_probe(self, target: float, now: float) -> ProbeCluster:
        """Packets sent from now until :meth:`end_probe` form a cluster aimed at ``target``."""
        if self.probe is not None:
            self.end_probe(now)
        cluster = ProbeCluster(self.next_cluster_id, target, now, self.history.seq,
                               self.history.bytes)
        self.next_cluster_id += 1
        self.probe = cluster
        self.clusters.append(cluster)
        del self.clusters[:-4]  # a few at most are waiting for feedback
        return cluster

    def probe_owed(self, now: float) -> int:
        """Bytes to pad now so that the cluster so far averages its target rate."""
        cluster = self.probe
        if cluster is None:
            return 0
        due = cluster.target * (now - cluster.started) / 8
        return max(0, int(due - (self.history.bytes - cluster.first_bytes)))

    def probe_sent(self, now: float) -> None:
        """The padding :meth:`probe_tick` asked for has gone: a cluster whose time is up
        ends here."""
        if self.probe is not None and self.probe.closing:
            self.end_probe(now)

    def end_probe(self, now: float) -> None:
        if self.probe is not None:
            self.probe.end = self.history.seq
            self.probe.ended = now
            self.probe = None

    def _finish_clusters(self, now: float) -> None:
        for cluster in list(self.clusters):
            if cluster.end is None:
                continue
            covered = len(cluster.reported) >= cluster.end - cluster.first
            if not covered and now - cluster.ended < PROBE_FEEDBACK_TIMEOUT:
                continue
            self.clusters.remove(cluster)
            bps = probe_rate(cluster, self.history)
            self.probe_results.append(ProbeResult(cluster.cluster_id, cluster.target, bps))
            del self.probe_results[:-8]
            if bps is None:
                self._count("probe-invalid")
                continue
            self._count("probe-valid")
            if bps >= 0.9 * cluster.target:  # the link took it all: try higher soon
                self.next_probe = min(self.next_probe, now + PROBE_AGAIN)
            if self.trendline.state is not Usage.OVERUSING:
                self.rate.set_estimate(bps, now)
            if self.loss.cap is not None and self.loss.cap < bps:
                self.loss.cap = None if self.loss.last_fraction < LOSS_HIGH else bps

    # -- result ---------------------------------------------------------------------------

    def ready(self, now: float) -> bool:
        """Whether the estimate has found its level: a probe has been measured, an over-use
        seen, or feedback has come in for a while. Before that it is only the start rate,
        which would hold back layers that the first probes are about to allow."""
        return (self.first_feedback is not None and (
            bool(self.probe_results) or self.rate.decreases > 0
            or now - self.first_feedback > START_PERIOD))

    def value(self) -> float:
        bitrate = self.rate.bitrate
        cap = self.loss.cap
        return bitrate if cap is None else min(bitrate, cap)
