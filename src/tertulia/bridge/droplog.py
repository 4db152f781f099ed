"""A rate-limited log of dropped datagrams: one line per reason per interval, with the count.

Malformed or unauthorised packets are dropped and counted per reason (Bridge.counters); this
turns the counts into at most one warning per reason every ``interval`` seconds, so a flood
of bad packets cannot flood the log too. No packet content or address is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger("tertulia.bridge")


class DropLog:
    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.last_time: float | None = None
        self.last_counts: dict[str, int] = {}

    def tick(self, counters: Mapping[str, int], now: float) -> list[tuple[str, int]]:
        """Log (and return) the drops per reason since the last report, once per interval."""
        if self.last_time is not None and now - self.last_time < self.interval:
            return []
        drops = {k: v for k, v in counters.items() if k.startswith("dropped-")}
        new = [(reason, count - self.last_counts.get(reason, 0))
               for reason, count in sorted(drops.items())
               if count > self.last_counts.get(reason, 0)]
        first = self.last_time is None
        self.last_time = now
        self.last_counts = drops
        if first:
            return []  # the baseline
        for reason, count in new:
            log.warning("dropped %d datagrams (%s) in the last %.0f s", count, reason,
                        self.interval, extra={"reason": reason})
        return new
