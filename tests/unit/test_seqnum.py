"""16-bit sequence / 32-bit timestamp arithmetic (RFC 3550 §5.1, §A.1)."""

from __future__ import annotations

import random

import pytest

from tertulia.bridge.rtp.seqnum import (
    SeqUnwrapper,
    seq_add,
    seq_diff,
    seq_newer,
    ts_add,
    ts_diff,
    ts_newer,
)


def test_seq_add_wraps() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(65535, 2) == 1
    assert seq_add(0, -1) == 65535
    assert seq_add(100, 65536) == 100
    assert seq_add(1, -3) == 65534


def test_seq_diff_across_wrap() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(5, 65530) == 11
    assert seq_diff(65530, 5) == -11
    assert seq_diff(1000, 1000) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768  # exactly half: reported as negative
    assert seq_diff(0, 32768) == -32768
    assert seq_diff(32769, 0) == -32767


def test_seq_diff_range_and_inverse() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        a, b = rng.randrange(65536), rng.randrange(65536)
        d = seq_diff(a, b)
        assert -32768 <= d <= 32767
        assert seq_add(b, d) == a


def test_seq_newer() -> None:
    assert seq_newer(0, 65535)
    assert not seq_newer(65535, 0)
    assert seq_newer(10, 9)
    assert not seq_newer(9, 9)
    assert seq_newer(32767, 0)
    # exactly half the circle apart: neither is newer
    assert not seq_newer(32768, 0)
    assert not seq_newer(0, 32768)


def test_timestamps() -> None:
    assert ts_add(0xFFFFFFFF, 1) == 0
    assert ts_add(0xFFFFFF00, 960) == 960 - 256
    assert ts_add(5, -10) == 0xFFFFFFFB
    assert ts_diff(0, 0xFFFFFFFF) == 1
    assert ts_diff(0xFFFFFFFF, 0) == -1
    assert ts_diff(960, 0xFFFFFE00) == 960 + 512
    assert ts_diff(2**31, 0) == -(2**31)
    assert ts_newer(100, 0xFFFFFF00)
    assert not ts_newer(0xFFFFFF00, 100)


def test_unwrapper_forward_across_several_wraps() -> None:
    u = SeqUnwrapper()
    seq = 65000
    expected = 65000
    assert u.unwrap(seq) == expected
    for _ in range(5 * 65536 // 700):
        seq = seq_add(seq, 700)
        expected += 700
        assert u.unwrap(seq) == expected
    assert expected > 4 * 65536
    assert u.highest == expected


def test_unwrapper_65535_to_0() -> None:
    u = SeqUnwrapper()
    assert u.unwrap(65534) == 65534
    assert u.unwrap(65535) == 65535
    assert u.unwrap(0) == 65536
    assert u.unwrap(1) == 65537


def test_unwrapper_reordering_around_wrap() -> None:
    u = SeqUnwrapper()
    assert u.unwrap(65533) == 65533
    assert u.unwrap(1) == 65537  # jumped over the wrap (65534, 65535, 0 missing)
    assert u.unwrap(65535) == 65535  # late packet from before the wrap
    assert u.unwrap(0) == 65536
    assert u.unwrap(65534) == 65534
    assert u.unwrap(2) == 65538
    assert u.highest == 65538


def test_unwrapper_reordered_stream_is_exact() -> None:
    rng = random.Random(7)
    order = list(range(3 * 65536 + 123))
    # local reordering: swap neighbours within a small window
    for i in range(0, len(order) - 8, 5):
        j = i + rng.randrange(1, 8)
        order[i], order[j] = order[j], order[i]
    u = SeqUnwrapper()
    start = 40000
    got = [u.unwrap((start + ext) & 0xFFFF) for ext in order]
    assert got == [start + ext for ext in order]


def test_unwrapper_before_first_and_start_cycle() -> None:
    u = SeqUnwrapper()
    assert u.unwrap(0) == 0
    assert u.unwrap(65535) == -1  # reordered before the first packet, across the wrap
    assert u.highest == 0
    v = SeqUnwrapper(start_cycle=1)
    assert v.unwrap(40000) == 65536 + 40000
    assert v.unwrap(39999) == 65536 + 39999
    assert v.peek(0) == 2 * 65536
    assert v.highest == 65536 + 40000


def test_unwrapper_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        SeqUnwrapper().unwrap(65536)
    with pytest.raises(ValueError):
        SeqUnwrapper(start_cycle=-1)
