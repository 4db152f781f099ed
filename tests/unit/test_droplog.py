"""Dropped datagrams are logged at most once per reason per interval, with their count."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from tertulia.bridge.droplog import DropLog


def test_one_line_per_reason_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    counters: Counter[str] = Counter({"dropped-malformed-rtp": 5, "datagrams": 100})
    drops = DropLog(interval=10)
    assert drops.tick(counters, 0.0) == []  # baseline: what came before is not news
    counters["dropped-malformed-rtp"] += 1000  # a flood
    counters["dropped-srtp-auth"] += 3
    with caplog.at_level(logging.WARNING, logger="tertulia.bridge"):
        assert drops.tick(counters, 5.0) == []  # within the interval: silent
        assert drops.tick(counters, 10.0) == [("dropped-malformed-rtp", 1000),
                                             ("dropped-srtp-auth", 3)]
        assert drops.tick(counters, 20.0) == []  # nothing new: nothing logged
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "dropped 1000 datagrams (dropped-malformed-rtp) in the last 10 s",
        "dropped 3 datagrams (dropped-srtp-auth) in the last 10 s",
    ]
