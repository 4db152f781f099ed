"""The per-receiver pacer (bridge/pacer.py) in virtual time, and an endpoint pacing what a
conference forwards it, with real SRTP (bridge/endpoint.py)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from tertulia.bridge import bandwidth
from tertulia.bridge.conference import Conference
from tertulia.bridge.pacer import (
    BURST_SECONDS,
    MAX_QUEUE_PACKETS,
    MIN_PACING_BPS,
    PACING_FACTOR,
    QUEUE_TARGET,
    Pacer,
)
from tertulia.bridge.rtp.packet import RtpPacket
from tertulia.bridge.rtp.rtcp import GenericNack
from tertulia.bridge.sendside import RING
from tests.unit.golden import AUDIO, load
from tests.unit.test_conference import Client, as_sender_pt, video_packets
from tests.unit.test_downlink_twcc import CHROME_RECEIVER


def drain(pacer: Pacer[int], now: float, limit: int = 10_000) -> list[tuple[float, int]]:
    """Run the pacer's timer until its queue is empty: (time sent, item) in order."""
    out: list[tuple[float, int]] = []
    for _ in range(limit):
        wait = pacer.next_wait(now)
        if wait is None:
            return out
        now += wait
        out.extend((now, item) for item in pacer.due(now))
    raise AssertionError("the queue never drained")


def test_off_without_an_estimate() -> None:
    pacer: Pacer[int] = Pacer()
    assert all(pacer.admit(1200, 1.0) for _ in range(1000))
    assert not pacer.waiting and pacer.next_wait(1.0) is None
    pacer.set_estimate(None)
    assert pacer.rate == 0.0 and pacer.admit(1200, 1.0)


def test_a_key_frame_burst_leaves_at_the_pacing_rate_in_order() -> None:
    pacer: Pacer[int] = Pacer()
    pacer.set_estimate(250_000)
    rate = 250_000 * PACING_FACTOR
    assert pacer.rate == rate
    now, size = 10.0, 1200
    sent_at_once = []
    for i in range(24):  # a 29 kB key frame arriving at once (under QUEUE_TARGET to drain)
        if pacer.admit(size, now):
            sent_at_once.append(i)
        else:
            assert pacer.push(i, size, now) is None
    # what fits the 20 ms burst allowance goes at once, the rest waits
    assert sent_at_once == list(range(len(sent_at_once)))
    assert 1 <= len(sent_at_once) <= rate / 8 * BURST_SECONDS / size + 1
    paced = drain(pacer, now)
    assert [item for _t, item in paced] == list(range(len(sent_at_once), 24))
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(paced))
    # any 100 ms window carries no more than the pacing rate allows, plus one burst
    for t0, _ in paced:
        in_window = sum(size for t, _ in paced if t0 <= t < t0 + 0.1)
        assert in_window <= rate / 8 * 0.1 + rate / 8 * BURST_SECONDS + size
    # and the whole frame takes about its size over the pacing rate
    duration = paced[-1][0] - now
    ideal = (24 - len(sent_at_once)) * size * 8 / rate
    assert ideal * 0.8 <= duration <= ideal * 1.2, (duration, ideal)


def test_retransmissions_leave_before_queued_video_and_audio_counts() -> None:
    pacer: Pacer[int] = Pacer()
    pacer.set_estimate(200_000)
    now = 5.0
    while pacer.admit(1000, now):
        pass
    for i in range(10):
        pacer.push(i, 1000, now)
    pacer.push(100, 1000, now, priority=True)
    pacer.push(101, 1000, now, priority=True)
    order = [item for _t, item in drain(pacer, now)]
    assert order == [100, 101, *range(10)]
    # audio goes around the queue, but its bytes delay the video behind it
    fresh: Pacer[int] = Pacer()
    fresh.set_estimate(200_000)
    assert fresh.admit(1000, now)
    for _ in range(20):
        fresh.count(200, now)
    assert not fresh.admit(1000, now)


def test_a_long_queue_drains_within_the_queue_target() -> None:
    pacer: Pacer[int] = Pacer()
    pacer.set_estimate(100_000)  # 250 kbit/s pacing: 200 kB would take 6.4 s
    now = 1.0
    for i in range(200):
        if not pacer.admit(1000, now):
            pacer.push(i, 1000, now)
    paced = drain(pacer, now)
    assert len(paced) >= 195
    assert paced[-1][0] - now <= QUEUE_TARGET + 0.05
    assert pacer.queued_bytes == 0 and pacer.delay(paced[-1][0]) == 0.0


def test_the_queue_is_bounded_and_drops_the_oldest_video() -> None:
    pacer: Pacer[int] = Pacer()
    pacer.set_estimate(MIN_PACING_BPS)
    now = 1.0
    pacer.debt = 1e9  # nothing may go
    pacer.push(-1, 100, now, priority=True)
    dropped = [d for i in range(MAX_QUEUE_PACKETS + 5)
               if (d := pacer.push(i, 100, now)) is not None]
    assert dropped == [0, 1, 2, 3, 4, 5] and pacer.dropped == 6
    assert len(pacer.queue) + len(pacer.priority) == MAX_QUEUE_PACKETS
    assert pacer.clear()[0] == -1 and not pacer.waiting and pacer.queued_bytes == 0


def test_losing_the_estimate_drains_the_queue_then_turns_pacing_off() -> None:
    pacer: Pacer[int] = Pacer()
    pacer.set_estimate(300_000)
    now = 1.0
    items = [i for i in range(30) if not pacer.admit(1200, now)]
    for i in items:
        pacer.push(i, 1200, now)
    pacer.set_estimate(None)
    assert pacer.rate > 0  # what waits still leaves at the pacing rate
    assert [i for _t, i in drain(pacer, now)] == items
    pacer.set_estimate(None)
    assert pacer.rate == 0.0


# -- an endpoint pacing what a conference forwards it -----------------------------------------

class Timers:
    """The event loop's call_later, in virtual time."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Callable[[float], None]]] = []
        self.now = 0.0
        self._n = itertools.count()

    def schedule(self, delay: float, callback: Callable[[float], None]) -> None:
        heapq.heappush(self.heap, (self.now + delay, next(self._n), callback))

    def run_until(self, end: float) -> None:
        for _ in range(100_000):
            if not self.heap or self.heap[0][0] > end:
                break
            self.now, _n, callback = heapq.heappop(self.heap)
            callback(self.now)
        self.now = max(self.now, end)


def paced_pair() -> tuple[Conference, Timers, Client, Client]:
    """Alice (aiortc-like, REMB) and Bob (Chrome-like, transport-cc, with a pacer timer)."""
    conference = Conference("c1", bridge_ssrc=1)
    timers = Timers()
    alice = Client("alice", conference, 0.0)
    bob = Client("bob", conference, 0.0, offer=CHROME_RECEIVER, schedule=timers.schedule)
    return conference, timers, alice, bob


def test_an_endpoint_paces_video_numbers_it_as_it_leaves_and_lets_audio_through() -> None:
    conference, timers, alice, bob = paced_pair()
    sendside = bob.endpoint.sendside
    assert sendside is not None
    video = [as_sender_pt(p, alice.endpoint.sending["video"].payload_type)
             for p in video_packets()]
    audio = [as_sender_pt(r.data, alice.endpoint.sending["audio"].payload_type)
             for r in load(AUDIO)]
    # before an estimate nothing is paced
    now = timers.now = 1.0
    for data in video[:5]:
        conference.on_rtp(alice.endpoint, data, now)
    assert len(bob.received_rtp()) == 5 and bob.endpoint.pacer.rate == 0.0
    # a 300 kbit/s estimate: pacing at 750 kbit/s
    bob.endpoint.pacer.set_estimate(300_000)
    burst = [data + bytes(1000) for data in video[5:45]]  # the capture's packets are small
    for data in burst:  # forty packets arriving at once
        conference.on_rtp(alice.endpoint, data, now)
    conference.on_rtp(alice.endpoint, audio[0], now)
    received = list(bob.received_rtp())
    assert len(received) < 5 + 10
    assert received[-1].payload_type == bob.endpoint.slots[0][0].payload_type  # the audio
    assert bob.endpoint.pacer.waiting and timers.heap
    # a NACK for a packet already sent goes ahead of the waiting video
    slot_video = bob.endpoint.slots[0][1]
    conference.on_rtcp(bob.endpoint, [GenericNack(99, slot_video.ssrc, [received[1]
                                                                        .sequence_number])],
                       now)
    timers.run_until(now + 2.0)
    assert not bob.endpoint.pacer.waiting
    after = bob.received_rtp()[len(received):]
    assert after[0].ssrc == slot_video.rtx_ssrc
    video_out = [p for p in bob.received_rtp() if p.ssrc == slot_video.ssrc]
    assert len(video_out) == 45
    seqs = [p.sequence_number for p in video_out]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    # transport-wide numbers in the order packets left, and their send times spread out
    ext = bob.endpoint.twcc_send_id
    assert ext is not None
    numbers = [int.from_bytes(p.get_extension(ext) or b"", "big")
               for p in bob.received_rtp() if p.get_extension(ext) is not None]
    assert numbers == sorted(numbers)
    times = [sendside.history.times[n % RING] for n in numbers[-20:]]
    assert times[-1] - times[0] > 0.05
    burst_bytes = sum(len(p) + 38 for p in burst)
    assert times[-1] - now >= burst_bytes * 8 / (300_000 * PACING_FACTOR) * 0.7
    assert bob.endpoint.pacer.sent_paced > 0
    # the REMB receiver beside it is never paced
    assert len([p for p in alice.received_rtp() if isinstance(p, RtpPacket)]) == 0
    assert bob.endpoint.pacer.dropped == 0


def test_pacing_follows_the_send_side_estimate_once_it_has_found_its_level() -> None:
    conference = Conference("c1", bridge_ssrc=1)
    bob = Client("bob", conference, 0.0, offer=CHROME_RECEIVER)
    bandwidth.pace(bob.endpoint, 1.0)
    assert bob.endpoint.pacer.rate == 0.0  # no feedback yet
    sendside = bob.endpoint.sendside
    assert sendside is not None
    sendside.feedbacks = 1
    sendside.first_feedback = 1.0
    bandwidth.pace(bob.endpoint, 1.5)
    assert bob.endpoint.pacer.rate == 0.0  # the start rate is not a measurement
    bandwidth.pace(bob.endpoint, 10.0)
    assert bob.endpoint.pacer.rate == max(sendside.value() * PACING_FACTOR, MIN_PACING_BPS)
