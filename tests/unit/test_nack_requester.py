"""Uplink NACK generation (bridge/rtp/nack_requester.py), with virtual time."""

from __future__ import annotations

from tertulia.bridge.rtp.nack_requester import (
    DEFAULT_RTT,
    LIFETIME,
    MAX_MISSING,
    MAX_TRIES,
    SsrcNacks,
)
from tertulia.bridge.rtp.rtcp import GenericNack


def feed(nacks: SsrcNacks, seqs: list[int], now: float = 0.0) -> list[bool]:
    return [nacks.on_packet(s, now) for s in seqs]


def test_in_order_packets_ask_for_nothing() -> None:
    nacks = SsrcNacks()
    assert feed(nacks, list(range(100, 200))) == [False] * 100
    assert nacks.due(0.0, None) == []


def test_a_gap_is_asked_for_at_once() -> None:
    nacks = SsrcNacks()
    assert feed(nacks, [10, 11, 14]) == [False, False, True]
    assert nacks.due(0.0, None) == [12, 13]
    assert nacks.due(0.0, None) == []  # not again before a round trip


def test_retry_after_rtt_then_at_most_max_tries() -> None:
    nacks = SsrcNacks()
    feed(nacks, [1, 3])
    sent = [t for t in range(0, 1000, 10) if nacks.due(t / 1000, 0.05)]
    assert len(sent) == MAX_TRIES
    assert sent[:2] == [0, 50]  # again one RTT later


def test_default_rtt_when_none_is_known() -> None:
    nacks = SsrcNacks()
    feed(nacks, [1, 3])
    assert nacks.due(0.0, None) == [2]
    assert nacks.due(DEFAULT_RTT - 0.01, None) == []
    assert nacks.due(DEFAULT_RTT, None) == [2]


def test_reordered_packet_is_no_longer_asked_for() -> None:
    nacks = SsrcNacks()
    feed(nacks, [1, 2, 5, 3])
    assert nacks.due(0.0, None) == [4]
    assert nacks.repaired == 1
    nacks.on_packet(4, 0.01)
    assert nacks.missing == {}
    assert nacks.repaired == 2


def test_duplicate_changes_nothing() -> None:
    nacks = SsrcNacks()
    feed(nacks, [1, 2, 4])
    assert feed(nacks, [4, 2, 1]) == [False, False, False]
    assert list(nacks.missing) == [3]
    assert nacks.repaired == 0


def test_wrap_around() -> None:
    nacks = SsrcNacks()
    assert feed(nacks, [65533, 65534, 1]) == [False, False, True]
    assert nacks.due(0.0, None) == [65535, 0]
    wire = GenericNack(1, 2, list(nacks.missing))
    assert GenericNack.parse(bytes(wire)).lost == [65535, 0]  # one FCI across the wrap


def test_missing_expire_after_lifetime() -> None:
    nacks = SsrcNacks()
    feed(nacks, [1, 3])
    nacks.due(0.0, 10.0)  # a long RTT: no retry before expiry
    assert nacks.due(LIFETIME + 0.01, 10.0) == []
    assert nacks.missing == {}


def test_restart_jump_is_not_a_loss() -> None:
    nacks = SsrcNacks()
    feed(nacks, [100, 101])
    assert nacks.on_packet(101 + MAX_MISSING + 2, 0.0) is False
    assert nacks.missing == {}
    assert nacks.restarts == 1
    assert nacks.on_packet(30000, 0.0) is False  # a new encoder elsewhere on the circle
    assert nacks.due(0.0, None) == []


def test_memory_is_bounded() -> None:
    nacks = SsrcNacks()
    seq = 0
    nacks.on_packet(seq, 0.0)
    for _ in range(100):  # a gap of 10 every packet: many more than MAX_MISSING losses
        seq = (seq + 11) & 0xFFFF
        nacks.on_packet(seq, 0.0)
        assert len(nacks.missing) <= MAX_MISSING
    due = nacks.due(0.0, None)
    assert 0 < len(due) <= MAX_MISSING
    assert all((seq - s) & 0xFFFF <= MAX_MISSING for s in due)  # none too old to be useful
    assert due[-1] == (seq - 1) & 0xFFFF  # the newest are kept


def test_largest_gap_that_is_still_a_loss() -> None:
    nacks = SsrcNacks()
    nacks.on_packet(0, 0.0)
    assert nacks.on_packet(MAX_MISSING + 1, 0.0) is True
    assert len(nacks.due(0.0, None)) == MAX_MISSING
