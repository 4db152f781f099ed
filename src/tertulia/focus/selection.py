"""Bridge selection: which bridge gets one more participant of a conference.

Pure policy: no I/O and no asyncio; the clock is injected. The focus passes the bridges the
registry knows (with the stress of each bridge's last heartbeat) and how many participants of
the conference each bridge already holds; :meth:`BridgeSelector.select` answers a bridge id.

The rules follow Jicofo's ``BridgeSelector`` and its ``BridgeSelectionStrategy`` classes:

* **Corrected stress.** A heartbeat arrives every few seconds, so during a join burst every
  reported stress is stale and every join would land on the bridge that looked idlest. The
  selector remembers the endpoints it placed and adds ``endpoint_cost`` to a bridge's reported
  stress for each one placed there within the last ``recent_window`` seconds (Jicofo: 0.01 per
  endpoint over 20 s).
* **Draining** bridges are never chosen, not even for a conference already there (they take no
  new participants and finish with the ones they have).
* **Overloaded**: corrected stress >= ``overload`` (Jicofo: 0.8), or this conference already
  has ``max_per_bridge`` participants there (Jicofo: 80). Every strategy first looks only at
  bridges that are neither. When its rules find none (every usable bridge is overloaded or
  full), the least stressed bridge of the conference under the cap is used (moving the
  participant elsewhere would add relay load to two overloaded bridges), else the least
  stressed bridge under the cap, else the least stressed of all.
* Ties are broken by bridge id, so the same inputs always give the same answer.

Strategies:

``single``
    The conference stays on the bridge it already uses (of its bridges that are usable and
    neither overloaded nor at the cap, the one holding most of its participants); when it has
    none such, and for a new conference, the least stressed bridge.
``region``
    First match wins, looking only at non-overloaded bridges: a bridge of the conference in
    the participant's region; one of the conference in the region's group; the least stressed
    in the region; the least stressed in the region's group; the least stressed bridge of the
    conference; the least stressed anywhere. A participant with no region (``None``) or a
    region no bridge serves skips the region steps, so the conference is kept together and
    otherwise placed by load alone.
``split``
    Spreads a conference over as many bridges as possible (to exercise cascading): the least
    stressed bridge not yet in the conference, else the conference's bridge with the fewest of
    its participants.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

STRATEGIES = ("single", "region", "split")


@dataclass(frozen=True, slots=True)
class BridgeInfo:
    bridge_id: str
    region: str
    stress: float  # reported by the bridge's last heartbeat (0 = idle, 1 = at capacity)
    draining: bool = False

    def __post_init__(self) -> None:
        if not self.bridge_id:
            raise ValueError("bridge_id must not be empty")
        if not math.isfinite(self.stress) or self.stress < 0:
            raise ValueError(
                f"bridge {self.bridge_id!r}: stress must be a finite number >= 0, "
                f"got {self.stress!r}"
            )


def region_neighbours(region_groups: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """Map each region to every region sharing a group with it (itself included).

    Each entry of ``region_groups`` is one group: its key (a group name, or a region) and its
    value (member regions) are all in the group. A region in several groups gets their union.
    """
    neighbours: dict[str, set[str]] = {}
    for key, members in region_groups.items():
        if isinstance(members, str):
            raise ValueError(f"region group {key!r}: members must be a list of regions")
        group = {key, *members}
        for region in group:
            neighbours.setdefault(region, set()).update(group)
    return {region: frozenset(group) for region, group in neighbours.items()}


class BridgeSelector:
    """Chooses bridges for participants and remembers its recent choices."""

    def __init__(
        self,
        strategy: str = "single",
        *,
        region_groups: Mapping[str, Sequence[str]] | None = None,
        overload: float = 0.8,
        max_per_bridge: int = 0,  # 0 = no per-conference cap
        endpoint_cost: float = 0.01,
        recent_window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(
                f"unknown bridge selection strategy {strategy!r}; "
                f"use one of {', '.join(STRATEGIES)}"
            )
        if not (math.isfinite(overload) and overload > 0):
            raise ValueError(f"overload must be a number > 0, got {overload!r}")
        if max_per_bridge < 0:
            raise ValueError(f"max_per_bridge must be >= 0 (0 = no cap), got {max_per_bridge!r}")
        if not (math.isfinite(endpoint_cost) and endpoint_cost >= 0):
            raise ValueError(f"endpoint_cost must be a number >= 0, got {endpoint_cost!r}")
        if not (math.isfinite(recent_window) and recent_window >= 0):
            raise ValueError(
                f"recent_window must be a number of seconds >= 0, got {recent_window!r}"
            )
        self.strategy = strategy
        self.overload = overload
        self.max_per_bridge = max_per_bridge
        self.endpoint_cost = endpoint_cost
        self.recent_window = recent_window
        self.clock = clock
        self._neighbours = region_neighbours(region_groups or {})
        # Endpoints placed within the recent window: (time, bridge id) oldest first, and the
        # count per bridge, so expiring is O(entries expired) per selection.
        self._log: deque[tuple[float, str]] = deque()
        self._recent: dict[str, int] = {}

    # -- corrected stress -------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        horizon = now - self.recent_window
        log, recent = self._log, self._recent
        while log and log[0][0] <= horizon:
            _, bridge_id = log.popleft()
            left = recent.get(bridge_id, 0) - 1
            if left > 0:
                recent[bridge_id] = left
            else:
                recent.pop(bridge_id, None)

    def recent_endpoints(self, bridge_id: str) -> int:
        """Endpoints this selector placed on the bridge within the recent window."""
        self._expire(self.clock())
        return self._recent.get(bridge_id, 0)

    def recent_by_bridge(self) -> dict[str, int]:
        """Endpoints placed within the recent window, per bridge (bridges with none left out)."""
        self._expire(self.clock())
        return dict(self._recent)

    def corrected_stress(self, bridge: BridgeInfo) -> float:
        """Reported stress plus ``endpoint_cost`` per endpoint placed there recently."""
        return bridge.stress + self.recent_endpoints(bridge.bridge_id) * self.endpoint_cost

    def forget(self, bridge_id: str) -> None:
        """A bridge left the registry: drop what was remembered about it."""
        if self._recent.pop(bridge_id, None) is not None:
            self._log = deque(entry for entry in self._log if entry[1] != bridge_id)

    # -- selection --------------------------------------------------------------------------

    def select(
        self,
        bridges: Sequence[BridgeInfo],
        conference: Mapping[str, int],
        region: str | None,
    ) -> str | None:
        """Choose the bridge for one more participant of a conference.

        ``conference`` maps bridge id -> participants of this conference already on it.
        Records the choice (for corrected stress). Returns None when no bridge is usable.
        """
        now = self.clock()
        self._expire(now)
        recent = self._recent
        usable: dict[str, _Candidate] = {}
        for bridge in bridges:
            if bridge.draining or bridge.bridge_id in usable:
                continue
            stress = bridge.stress + recent.get(bridge.bridge_id, 0) * self.endpoint_cost
            here = max(0, conference.get(bridge.bridge_id, 0))
            usable[bridge.bridge_id] = _Candidate(bridge.bridge_id, bridge.region, stress, here)
        if not usable:
            return None
        ordered = sorted(usable.values(), key=_load_order)
        chosen = self._choose(ordered, region)
        self._log.append((now, chosen.bridge_id))
        recent[chosen.bridge_id] = recent.get(chosen.bridge_id, 0) + 1
        return chosen.bridge_id

    def _maxed(self, c: _Candidate) -> bool:
        return self.max_per_bridge > 0 and c.here >= self.max_per_bridge

    def _choose(self, ordered: list[_Candidate], region: str | None) -> _Candidate:
        good = [c for c in ordered if c.stress < self.overload and not self._maxed(c)]
        pick: _Candidate | None
        if self.strategy == "single":
            pick = _single(good)
        elif self.strategy == "region":
            pick = _region(good, region, self._neighbours.get(region or "", frozenset()))
        else:
            pick = _split(good)
        if pick is not None:
            return pick
        # Every usable bridge is overloaded or full (Jicofo's last steps): stay on the least
        # stressed bridge of the conference under the cap, since moving would add relay load
        # to two overloaded bridges; else the least stressed under the cap; else of all.
        under_cap = [c for c in ordered if not self._maxed(c)]
        return _first(c for c in under_cap if c.here > 0) or _first(under_cap) or ordered[0]


@dataclass(frozen=True, slots=True)
class _Candidate:
    bridge_id: str
    region: str
    stress: float  # corrected
    here: int  # participants of this conference on the bridge


def _load_order(c: _Candidate) -> tuple[float, str]:
    return (c.stress, c.bridge_id)


def _first(candidates: Iterable[_Candidate]) -> _Candidate | None:
    return next(iter(candidates), None)


def _single(good: list[_Candidate]) -> _Candidate | None:
    # The bridge the conference uses is the one holding most of it; the conference moves
    # (to the least stressed bridge) only when that bridge is not among the good ones.
    in_conference = [c for c in good if c.here > 0]
    if in_conference:
        return max(in_conference, key=lambda c: (c.here, -c.stress))
    return _first(good)


def _region(good: list[_Candidate], region: str | None, group: frozenset[str]) -> _Candidate | None:
    in_conference = [c for c in good if c.here > 0]
    if region is not None:
        for pool in (in_conference, good):
            found = _first(c for c in pool if c.region == region) or _first(
                c for c in pool if c.region in group
            )
            if found is not None:
                return found
    return _first(in_conference) or _first(good)


def _split(good: list[_Candidate]) -> _Candidate | None:
    fresh = _first(c for c in good if c.here == 0)
    if fresh is not None:
        return fresh
    if not good:
        return None
    return min(good, key=lambda c: (c.here, c.stress, c.bridge_id))
