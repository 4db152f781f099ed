"""Per-receiver pacer: spread what the bridge sends one receiver over time. Pure: no I/O, no
clocks (times are passed in).

Why: a video key frame arrives from the sender as a burst of tens of packets within a few
milliseconds, and a bridge that forwards it as it comes hands the receiver's link that whole
burst at once. A link's queue is sized in time (a home router's buffer, a shaper's latency), so
on a thin link the tail of every key frame is dropped, the receiver asks for another key frame,
and that one is lost too. Measured before this module: the lowest 720p-simulcast layer plus two
Opus streams lost 4-30% behind a 300-350 kbit/s link, each time at key frames
(bench/bandwidth.md). libwebrtc paces its own sends for the same reason (its PacingController);
a selective forwarding unit sits where the sender's pacer no longer helps, so it paces again.

The rule follows libwebrtc's pacing controller in its "media debt" form:

- the pacing rate is a multiple (2.5, libwebrtc's ``kDefaultPaceMultiplier``) of the
  receiver's send-side estimate, so the pacer only smooths bursts and never becomes the
  bottleneck itself;
- every byte sent adds to a debt that drains at the pacing rate; a packet may go when the debt
  is within a small burst allowance (20 ms at the pacing rate), else it waits in the queue;
- queued packets leave in order, retransmissions first (libwebrtc's priority order: audio,
  retransmissions, video, padding); audio is never queued but its bytes count in the debt;
- a queue that would take longer than :data:`QUEUE_TARGET` to drain raises the rate to drain
  it in time (libwebrtc's ``drain_large_queues``, with a target in keeping with a meeting's
  latency rather than its 2 s), and the queue's length is bounded in packets.

Without an estimate (before the first transport-wide feedback, or for REMB-only receivers whose
estimate covers only part of what they get) the pacer is off and costs one attribute test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

PACING_FACTOR = 2.5  # libwebrtc's kDefaultPaceMultiplier
MIN_PACING_BPS = 100_000.0  # never pace slower than this, whatever the estimate says
BURST_SECONDS = 0.02  # what may go at once: 20 ms at the pacing rate
MIN_BURST_BYTES = 1_300  # at least one full packet
# Seconds: a longer queue drains faster than the pacing rate. Waiting is better than loss for
# a key frame that is large for the link (the receiver's jitter buffer absorbs it, a lost tail
# costs another key frame), but a meeting cannot afford libwebrtc's 2 s.
QUEUE_TARGET = 0.5
MAX_QUEUE_PACKETS = 2_048  # a bound whatever happens; the oldest go first beyond it
MIN_WAIT = 0.002  # seconds: the shortest timer the pacer asks for

T = TypeVar("T")


class Pacer(Generic[T]):
    """A debt-based pacer over items of type ``T`` (whatever the caller needs to send one
    packet later), each with its size in bytes on the wire."""

    __slots__ = (
        "burst",
        "byte_rate",
        "debt",
        "debt_at",
        "dropped",
        "priority",
        "queue",
        "queued_bytes",
        "rate",
        "sent_paced",
    )

    def __init__(self) -> None:
        self.rate = 0.0  # pacing rate in bit/s; 0: off, everything goes at once
        self.byte_rate = 0.0  # the same in bytes per second
        self.burst = 0.0  # bytes of debt below which a packet may go at once
        self.debt = 0.0  # bytes sent and not yet drained at the pacing rate
        self.debt_at = 0.0
        self.queue: deque[tuple[float, int, T]] = deque()  # (queued at, size, item)
        self.priority: deque[tuple[float, int, T]] = deque()  # retransmissions
        self.queued_bytes = 0
        self.dropped = 0  # items dropped because the queue was full
        self.sent_paced = 0  # items that waited in the queue before leaving

    def set_estimate(self, estimate_bps: float | None) -> None:
        """Pace at :data:`PACING_FACTOR` times the receiver's estimate; None turns pacing off
        (what is queued still leaves, at the last rate, through :meth:`due`)."""
        if estimate_bps is None or estimate_bps <= 0:
            if not self.queue and not self.priority:
                self.rate = 0.0
            return
        self.rate = max(estimate_bps * PACING_FACTOR, MIN_PACING_BPS)
        self.byte_rate = self.rate / 8
        self.burst = self._burst(self.rate)

    @property
    def waiting(self) -> bool:
        return bool(self.queue or self.priority)

    def _burst(self, rate: float) -> float:
        return max(rate / 8 * BURST_SECONDS, MIN_BURST_BYTES)

    def _rate_now(self, now: float) -> float:
        """The pacing rate, raised when the queue would not drain within QUEUE_TARGET."""
        rate = self.rate
        if not self.queued_bytes:
            return rate
        oldest = min(q[0][0] for q in (self.queue, self.priority) if q)
        left = max(QUEUE_TARGET - (now - oldest), 0.01)
        return max(rate, self.queued_bytes * 8 / left)

    def _drain(self, now: float, rate: float) -> float:
        elapsed = now - self.debt_at
        if elapsed > 0:
            self.debt = max(self.debt - rate / 8 * elapsed, 0.0)
            self.debt_at = now
        return self.debt

    def admit(self, size: int, now: float) -> bool:
        """Whether a packet of ``size`` bytes may go now (then its bytes count in the debt);
        False: the caller queues it with :meth:`push`. (Once per packet sent: written out
        rather than through _drain.)"""
        if self.rate <= 0.0:
            return True
        if self.queue or self.priority:
            return False  # keep the order: behind what is already waiting
        debt = self.debt
        if debt:
            debt -= self.byte_rate * (now - self.debt_at)
            if debt < 0.0:
                debt = 0.0
        self.debt_at = now
        if debt > self.burst:
            self.debt = debt
            return False
        self.debt = debt + size
        return True

    def count(self, size: int, now: float) -> None:
        """Bytes sent around the queue (audio): they use the link too."""
        if self.rate > 0.0:
            self._drain(now, self._rate_now(now))
            self.debt += size

    def push(self, item: T, size: int, now: float, *, priority: bool = False) -> T | None:
        """Queue an item; returns the item dropped to make room (the oldest video first),
        or None."""
        (self.priority if priority else self.queue).append((now, size, item))
        self.queued_bytes += size
        if len(self.queue) + len(self.priority) <= MAX_QUEUE_PACKETS:
            return None
        victim = self.queue if self.queue else self.priority
        _at, dropped_size, dropped = victim.popleft()
        self.queued_bytes -= dropped_size
        self.dropped += 1
        return dropped

    def discard(self, match: Callable[[T], bool]) -> int:
        """Drop the waiting (non-priority) items ``match`` picks; returns how many."""
        kept = [entry for entry in self.queue if not match(entry[2])]
        dropped = len(self.queue) - len(kept)
        if dropped:
            self.queue = deque(kept)
            self.queued_bytes = sum(size for _at, size, _item in (*self.queue, *self.priority))
        return dropped

    def due(self, now: float) -> list[T]:
        """The queued items that may leave now, in sending order."""
        if not self.queue and not self.priority:
            return []
        rate = self._rate_now(now)
        burst = self._burst(rate)
        self._drain(now, rate)
        out: list[T] = []
        for _ in range(MAX_QUEUE_PACKETS):
            if self.debt > burst:
                break
            source = self.priority if self.priority else self.queue
            if not source:
                break
            _at, size, item = source.popleft()
            self.queued_bytes -= size
            self.debt += size
            out.append(item)
        self.sent_paced += len(out)
        return out

    def next_wait(self, now: float) -> float | None:
        """Seconds until :meth:`due` has something to give; None when nothing waits."""
        if not self.queue and not self.priority:
            return None
        rate = self._rate_now(now)
        excess = self._drain(now, rate) - self._burst(rate)
        return max(excess * 8 / rate, MIN_WAIT) if rate > 0 else MIN_WAIT

    def clear(self) -> list[T]:
        """Empty the queue (the receiver left); returns what was in it."""
        items = [item for _at, _size, item in (*self.priority, *self.queue)]
        self.queue.clear()
        self.priority.clear()
        self.queued_bytes = 0
        return items

    def delay(self, now: float) -> float:
        """How long the oldest queued item has waited (seconds), 0 when none."""
        heads = [q[0][0] for q in (self.queue, self.priority) if q]
        return now - min(heads) if heads else 0.0
