"""Delay-based bandwidth estimation (Google congestion control). Pure: times are passed in.

draft-ietf-rmcat-gcc-02 §5, with the constants libwebrtc uses (modules/congestion_controller/
goog_cc: inter_arrival_delta.cc, trendline_estimator.cc, aimd_rate_control.cc,
link_capacity_estimator.cc), which is also what Jitsi's bridge ports. Written out here rather
than taken from a library because no maintained Python package implements it; aiortc only has
the older receive-side estimator.

The pieces, in the order a feedback report's packets go through them:

- :class:`InterArrival` groups packets sent within 5 ms (a burst, §5.2) and gives the send and
  arrival time differences between consecutive groups;
- :class:`Trendline` turns the delay variations into a slope (libwebrtc's trendline filter,
  which replaced the Kalman filter of §5.3) and :class:`OveruseDetector` compares it with the
  adaptive threshold of §5.4;
- :class:`AimdRateControl` moves the estimate (§5.5): multiplicatively (8%/s) far from the
  last known link capacity, additively near it, down to 0.85 x the acknowledged rate on
  over-use.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

# -- inter-arrival grouping (§5.2; inter_arrival_delta.cc) ------------------------------------

GROUP_LENGTH = 0.005  # packets sent within 5 ms form one group
BURST_DELTA = 0.005  # arriving within 5 ms of the previous one, earlier than sent: same burst
MAX_BURST = 0.1  # a burst lasts at most 100 ms
REORDERED_RESET = 3  # this many groups arriving out of order in a row: start again


@dataclass(slots=True)
class _Group:
    first_send: float
    send: float  # latest send time in the group
    first_arrival: float
    arrival: float  # latest arrival (the group's completion)
    size: int = 0


@dataclass(slots=True)
class InterArrival:
    """(send delta, arrival delta) between consecutive groups of packets, in seconds."""

    current: _Group | None = None
    previous: _Group | None = None
    reordered: int = 0
    resets: int = 0

    def add(self, send: float, arrival: float, size: int) -> tuple[float, float] | None:
        deltas = None
        cur = self.current
        if cur is None:
            self.current = _Group(send, send, arrival, arrival, size)
            return None
        if send < cur.first_send:
            return None  # sent before the current group started: reordered, skipped
        if self._new_group(cur, send, arrival):
            prev = self.previous
            if prev is not None:
                send_delta = cur.send - prev.send
                arrival_delta = cur.arrival - prev.arrival
                if arrival_delta < 0:
                    # arrival clock went backwards (reordering on the path): tolerate a few
                    self.reordered += 1
                    if self.reordered >= REORDERED_RESET:
                        self.reset()
                        self.resets += 1
                        return None
                else:
                    self.reordered = 0
                    deltas = (send_delta, arrival_delta)
            self.previous = cur
            self.current = _Group(send, send, arrival, arrival, size)
            return deltas
        cur.send = max(cur.send, send)
        cur.arrival = max(cur.arrival, arrival)
        cur.size += size
        return None

    def _new_group(self, cur: _Group, send: float, arrival: float) -> bool:
        arrival_delta = arrival - cur.arrival
        send_delta = send - cur.send
        if send_delta == 0:
            return False
        if (arrival_delta - send_delta < 0 and arrival_delta <= BURST_DELTA
                and arrival - cur.first_arrival < MAX_BURST):
            return False  # BelongsToBurst: it caught up in a queue, same burst
        return send - cur.first_send > GROUP_LENGTH

    def reset(self) -> None:
        self.current = self.previous = None
        self.reordered = 0


# -- trendline filter and over-use detector (§5.3-5.4; trendline_estimator.cc) ----------------

WINDOW = 20  # delay samples in the linear fit
SMOOTHING = 0.9  # exponential smoothing of the accumulated delay
THRESHOLD_GAIN = 4.0
MIN_DELTAS = 60  # the slope is scaled by min(deltas seen, 60)
OVERUSE_TIME = 0.010  # over the threshold this long (and twice) before it counts
THRESHOLD_INITIAL, THRESHOLD_MIN, THRESHOLD_MAX = 12.5, 6.0, 600.0  # ms
K_UP, K_DOWN = 0.0087, 0.039  # §5.4 adaptation gains (per ms)
MAX_ADAPT_OFFSET = 15.0  # ms: outliers beyond threshold + this do not move the threshold


class Usage(Enum):
    NORMAL = "normal"
    OVERUSING = "overusing"
    UNDERUSING = "underusing"


@dataclass(slots=True)
class Trendline:
    """Slope of the smoothed accumulated delay over arrival time, and the detector on it."""

    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    deltas: int = 0
    first_arrival: float | None = None
    accumulated: float = 0.0  # ms
    smoothed: float = 0.0  # ms
    trend: float = 0.0
    threshold: float = THRESHOLD_INITIAL
    modified_trend: float = 0.0
    last_threshold_update: float | None = None
    overuse_time: float = -1.0  # seconds over the threshold, -1 when not over it
    overuse_count: int = 0
    state: Usage = Usage.NORMAL

    def update(self, send_delta: float, arrival_delta: float, arrival: float) -> Usage:
        """One group delta (seconds); returns the detector's state after it."""
        self.deltas = min(self.deltas + 1, 1000)
        if self.first_arrival is None:
            self.first_arrival = arrival
        self.accumulated += (arrival_delta - send_delta) * 1000
        self.smoothed = SMOOTHING * self.smoothed + (1 - SMOOTHING) * self.accumulated
        self.history.append(((arrival - self.first_arrival) * 1000, self.smoothed))
        previous_trend = self.trend
        if len(self.history) == WINDOW:
            slope = _slope(self.history)
            if slope is not None:
                self.trend = slope
        self._detect(previous_trend, send_delta, arrival)
        return self.state

    def _detect(self, previous_trend: float, send_delta: float, now: float) -> None:
        if self.deltas < 2:
            self.state = Usage.NORMAL
            return
        modified = min(self.deltas, MIN_DELTAS) * self.trend * THRESHOLD_GAIN
        self.modified_trend = modified
        if modified > self.threshold:
            if self.overuse_time < 0:
                self.overuse_time = send_delta / 2
            else:
                self.overuse_time += send_delta
            self.overuse_count += 1
            if (self.overuse_time > OVERUSE_TIME and self.overuse_count > 1
                    and self.trend >= previous_trend):
                self.overuse_time = 0.0
                self.overuse_count = 0
                self.state = Usage.OVERUSING
        elif modified < -self.threshold:
            self.overuse_time, self.overuse_count = -1.0, 0
            self.state = Usage.UNDERUSING
        else:
            self.overuse_time, self.overuse_count = -1.0, 0
            self.state = Usage.NORMAL
        self._adapt_threshold(modified, now)

    def _adapt_threshold(self, modified: float, now: float) -> None:
        """§5.4: the threshold follows |trend| slowly upwards, faster downwards."""
        if self.last_threshold_update is None:
            self.last_threshold_update = now
        if abs(modified) > self.threshold + MAX_ADAPT_OFFSET:
            self.last_threshold_update = now
            return
        k = K_DOWN if abs(modified) < self.threshold else K_UP
        elapsed_ms = min((now - self.last_threshold_update) * 1000, 100.0)
        self.threshold += k * (abs(modified) - self.threshold) * elapsed_ms
        self.threshold = min(max(self.threshold, THRESHOLD_MIN), THRESHOLD_MAX)
        self.last_threshold_update = now


def _slope(points: deque[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x, None when every x is the same."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return None if den == 0 else num / den


# -- AIMD rate control (§5.5; aimd_rate_control.cc, link_capacity_estimator.cc) ---------------

BETA = 0.85  # decrease to this fraction of the acknowledged rate
MULTIPLICATIVE_PER_S = 1.08  # 8% per second far from convergence
MIN_BITRATE, MAX_BITRATE = 30_000.0, 50_000_000.0
DEFAULT_RTT = 0.2
FRAME_RATE, MTU_BITS = 30.0, 1200 * 8  # for the additive step: about one packet per RTT


class RateState(Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


@dataclass(slots=True)
class LinkCapacity:
    """The acknowledged rate at recent over-uses (kbit/s) and how much it varies."""

    estimate: float | None = None
    deviation: float = 0.4

    def upper(self) -> float:
        assert self.estimate is not None
        return (self.estimate + 3 * math.sqrt(self.estimate * self.deviation)) * 1000

    def lower(self) -> float:
        assert self.estimate is not None
        return max(0.0, self.estimate - 3 * math.sqrt(self.estimate * self.deviation)) * 1000

    def on_overuse(self, acked_bps: float) -> None:
        sample = acked_bps / 1000
        alpha = 0.05
        if self.estimate is None:
            self.estimate = sample
        else:
            self.estimate = (1 - alpha) * self.estimate + alpha * sample
        error = self.estimate - sample
        self.deviation = (1 - alpha) * self.deviation + alpha * error * error / max(
            self.estimate, 1.0)
        self.deviation = min(max(self.deviation, 0.4), 2.5)


@dataclass(slots=True)
class AimdRateControl:
    """The delay-based estimate (bit/s) driven by the detector's state."""

    bitrate: float
    state: RateState = RateState.HOLD
    capacity: LinkCapacity = field(default_factory=LinkCapacity)
    last_change: float | None = None
    rtt: float = DEFAULT_RTT
    decreases: int = 0

    def update(self, usage: Usage, acked: float | None, now: float, probing: bool = False
               ) -> float:
        """``probing``: the acknowledged rate includes a probe cluster's padding, so it says
        nothing about the capacity having changed."""
        if usage is Usage.OVERUSING:
            self.state = RateState.DECREASE
        elif usage is Usage.UNDERUSING:
            self.state = RateState.HOLD  # queues are draining: wait
        elif self.state is RateState.HOLD:
            self.state = RateState.INCREASE
        if self.last_change is None:
            self.last_change = now
        if self.state is RateState.INCREASE:
            self._increase(acked, now, probing)
        elif self.state is RateState.DECREASE:
            self._decrease(acked, now)
        return self.bitrate

    def _increase(self, acked: float | None, now: float, probing: bool) -> None:
        assert self.last_change is not None
        elapsed = min(max(now - self.last_change, 0.0), 1.0)
        self.last_change = now
        cap = self.capacity
        if (acked is not None and cap.estimate is not None and acked > cap.upper()
                and not probing):
            cap.estimate = None  # the link changed: far from convergence again
        if acked is None:
            return  # nothing acknowledged yet: no basis to grow
        limit = 1.5 * acked + 10_000  # never far above what actually got through
        if cap.estimate is not None:
            # Departure from libwebrtc: near a known capacity the increase stops at it. The
            # bridge sends less than the estimate most of the time (it forwards what senders
            # send), so creeping past the capacity would only show up as a layer upgrade
            # that congests the link; probe clusters (set_estimate) and an acknowledged rate
            # above the capacity's upper bound (which forgets it) still lift the estimate.
            limit = min(limit, cap.estimate * 1000)
        if self.bitrate >= limit:
            return
        if cap.estimate is not None:
            step = self.near_max_increase() * elapsed  # additive near the known capacity
        else:
            step = max(self.bitrate * (MULTIPLICATIVE_PER_S ** elapsed - 1), 1000.0 * elapsed)
        self.bitrate = min(max(self.bitrate + step, MIN_BITRATE), limit, MAX_BITRATE)

    def near_max_increase(self) -> float:
        """bit/s per second: about one average packet per response time (rtt + 100 ms)."""
        frame_bits = self.bitrate / FRAME_RATE
        packets = math.ceil(frame_bits / MTU_BITS)
        packet_bits = frame_bits / max(packets, 1)
        return max(4000.0, packet_bits / (self.rtt + 0.1))

    def _decrease(self, acked: float | None, now: float) -> None:
        throughput = acked if acked is not None else self.bitrate
        target = BETA * throughput
        if target > self.bitrate and self.capacity.estimate is not None:
            target = BETA * self.capacity.estimate * 1000
        if target < self.bitrate:
            self.bitrate = max(target, MIN_BITRATE)
            self.decreases += 1
        cap = self.capacity
        if cap.estimate is not None and throughput < cap.lower():
            cap.estimate = None
        cap.on_overuse(throughput)
        self.state = RateState.HOLD
        self.last_change = now

    def set_estimate(self, bps: float, now: float) -> None:
        """A measured rate (a probe's result) replaces the estimate at once, and is taken as
        the link's capacity (what a probe measures is what the link carried)."""
        self.bitrate = min(max(bps, MIN_BITRATE), MAX_BITRATE)
        self.capacity.estimate = self.bitrate / 1000
        self.last_change = now
