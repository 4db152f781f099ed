"""Discrete-event simulation of a bridge cluster: how the bridge selection strategies spread load.

No media and no network: a day of conference arrivals is replayed against a pool of bridges
whose load is computed from the endpoints and relay streams they carry; the focus chooses a
bridge for every join with the real :class:`tertulia.focus.selection.BridgeSelector`, seeing
each bridge's stress only as its last heartbeat reported it.

    .venv/bin/python -m bench.cluster_sim --markdown bench/CLUSTER_SIM.md \
        --plot bench/cluster_sim.png          # full size: 1,000 bridges, 100,000 conferences
    .venv/bin/python -m bench.cluster_sim --quick   # 20 bridges, 2,000 conferences; prints

The model (all numbers are assumptions, chosen to be plausible; change them with flags or in
:class:`SimConfig`):

* **Regions** (:data:`REGIONS`): five, with skewed shares of participants and of bridges
  (eu-central has the most participants and is the most under-provisioned, as meet.jit.si's
  Central Europe was in 2020), each with its own time zone. Region groups are neighbours:
  europe = eu-central + eu-west, americas = us-east + us-west; ap-south stands alone.
* **Arrivals**: a Poisson process conditioned on the total count, with a rate per region that
  follows an office-hours bump around 13:00 local time (Gaussian, 3 h wide, on a 10 % floor).
* **Conference size**: a truncated power law P(n) ~ n^-2.2 for 2 <= n <= 100: mean 5.3,
  72 % of meetings have 2-4 people (trade press: "73 % of meetings involve two to four
  people"), 0.9 % have 50 or more.
* **Participants**: 80 % are in the conference's home region, the rest drawn from the global
  region shares. The first joins at the start, the others after an exponential delay (mean
  90 s, at most 15 min). 25 % leave early (uniformly between their join and the end).
* **Duration**: log-normal, median 40 min, sigma 0.6 (mean 48 min; meetings of 31-60 min are
  the usual figure), between 5 min and 4 h, and at least one minute after the last join.
* **Load** in packets per second, the measure of Jitsi's packet-rate load and of our bridge's
  ``stress_level``: stress = pps / 50,000. Layer suspension as in Jitsi: only the last-N = 20
  most recent speakers of a conference send video (200 pps: their active simulcast layers),
  everyone sends audio (50 pps). Each receiver gets audio from up to 3 speakers, one video
  large (150 pps) and up to last-N - 1 thumbnails (20 pps each). A conference on k > 1
  bridges also costs each bridge, for each local sender, what it sends once per other bridge
  (relay out) and, for each remote sender, what it sends once (relay in). With these numbers
  a 4-person meeting costs its bridge 2,360 pps (stress 0.05), a 50-person one 40,500 pps
  (0.81) and a 100-person one 77,000 pps (1.54): the largest meetings need two bridges.
* **Heartbeats**: every bridge reports its stress every 10 s, phases spread over the period;
  the selector sees only reported stress, corrected for its own recent choices
  (``endpoint_cost``).

The selector gets a shortlist instead of all bridges, for speed, chosen so that the answer is
the same (``--full-list`` checks it): every bridge of the conference, every bridge it placed
an endpoint on within the recent window whose reported stress is not above its region's best
other bridge, and, per region, that best other bridge (lowest reported stress, then id). Any
other bridge of a region has corrected stress >= that best one's, so no rule picks it.
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.cluster_report import markers as markers  # re-exported: tests import it from here
from bench.cluster_report import results_block, table, write_markdown, write_plot
from tertulia.focus.selection import BridgeInfo, BridgeSelector


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    participant_share: float
    bridge_share: float
    utc_offset: float  # hours


REGIONS = (
    Region("eu-central", 0.35, 0.30, 1.0),
    Region("eu-west", 0.15, 0.15, 0.0),
    Region("us-east", 0.25, 0.25, -5.0),
    Region("us-west", 0.10, 0.10, -8.0),
    Region("ap-south", 0.15, 0.20, 5.5),
)
REGION_GROUPS = {"europe": ["eu-central", "eu-west"], "americas": ["us-east", "us-west"]}


@dataclass(frozen=True, slots=True)
class SimConfig:
    bridges: int = 1000
    conferences: int = 100_000
    hours: float = 24.0
    seed: int = 1
    heartbeat_s: int = 10
    sample_s: int = 60
    size_exponent: float = 2.2
    max_size: int = 100
    duration_median_min: float = 40.0
    duration_sigma: float = 0.6
    join_spread_s: float = 90.0
    home_share: float = 0.8
    early_leave: float = 0.25
    capacity_pps: float = 50_000.0
    audio_pps: float = 50.0
    video_pps: float = 200.0  # what a video sender sends (its active simulcast layers)
    stage_pps: float = 150.0  # the one video a receiver sees large
    thumbnail_pps: float = 20.0
    speakers: int = 3  # audio streams forwarded to a receiver at a time
    last_n: int = 20
    overload: float = 0.8
    max_per_bridge: int = 80
    recent_window: float = 10.0


QUICK = SimConfig(bridges=20, conferences=2_000)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    strategy: str
    endpoint_cost: float = 0.01


VARIANTS = (
    Variant("single", "single"),
    Variant("single, no correction", "single", 0.0),
    Variant("region", "region"),
    Variant("region, no correction", "region", 0.0),
    Variant("split", "split"),
)


@dataclass(slots=True)
class Workload:
    """Participants as arrays (index = participant), sorted by join time."""

    conference: np.ndarray  # conference index
    region: np.ndarray  # region index
    join: np.ndarray  # seconds
    leave: np.ndarray  # seconds
    conferences: int


def office_hours(local_hour: np.ndarray) -> np.ndarray:
    distance = (local_hour - 13.0 + 12.0) % 24.0 - 12.0
    return 0.1 + 0.9 * np.exp(-0.5 * (distance / 3.0) ** 2)


def make_workload(cfg: SimConfig) -> Workload:
    rng = np.random.default_rng(cfg.seed)
    n_conf = cfg.conferences
    minutes = int(cfg.hours * 60)
    t_hours = np.arange(minutes) / 60.0
    rate = np.stack(
        [r.participant_share * office_hours(t_hours + r.utc_offset) for r in REGIONS]
    ).ravel()
    cell = rng.choice(rate.size, size=n_conf, p=rate / rate.sum())
    home = cell // minutes
    start = (cell % minutes + rng.random(n_conf)) * 60.0

    sizes_all = np.arange(2, cfg.max_size + 1)
    weights = sizes_all.astype(float) ** -cfg.size_exponent
    sizes = rng.choice(sizes_all, size=n_conf, p=weights / weights.sum())
    duration = np.clip(
        rng.lognormal(math.log(cfg.duration_median_min * 60.0), cfg.duration_sigma, n_conf),
        300.0,
        4 * 3600.0,
    )

    conference = np.repeat(np.arange(n_conf), sizes)
    first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    delay = np.minimum(rng.exponential(cfg.join_spread_s, conference.size), 900.0)
    delay[first] = 0.0
    end = np.maximum(start + duration, start + np.maximum.reduceat(delay, first) + 60.0)
    join = start[conference] + delay
    leave = end[conference]
    early = rng.random(conference.size) < cfg.early_leave
    leave[early] = join[early] + rng.uniform(0.2, 1.0, early.sum()) * (leave - join)[early]

    shares = np.array([r.participant_share for r in REGIONS])
    region = home[conference]
    away = rng.random(conference.size) >= cfg.home_share
    region[away] = rng.choice(len(REGIONS), size=int(away.sum()), p=shares / shares.sum())

    order = np.argsort(join, kind="stable")
    return Workload(conference[order], region[order], join[order], leave[order], n_conf)


def bridge_regions(cfg: SimConfig) -> np.ndarray:
    """Region index of each bridge; bridges of a region are contiguous, ids in region order."""
    shares = np.array([r.bridge_share for r in REGIONS])
    counts = np.maximum(1, np.floor(shares / shares.sum() * cfg.bridges).astype(int))
    counts[0] += cfg.bridges - counts.sum()
    return np.repeat(np.arange(len(REGIONS)), counts)


@dataclass(slots=True)
class Result:
    variant: Variant
    participants: int = 0
    placed: int = 0
    in_region: int = 0
    in_group: int = 0
    multi_bridge_conferences: int = 0
    conferences: int = 0
    participant_seconds: float = 0.0
    relay_stream_seconds: float = 0.0
    leaked_pps: float = 0.0  # load left on bridges after everyone left (must be 0)
    wall_s: float = 0.0
    # one row per sample: hour, max, mean, p99 stress, relay streams, online, overloaded bridges
    series: list[tuple[float, float, float, float, int, int, int]] = field(default_factory=list)
    sample_s: int = 60

    def summary(self) -> dict[str, float]:
        s = np.array(self.series, dtype=float)
        busy = s[s[:, 2] >= 0.5 * s[:, 2].max()] if len(s) else s
        p99 = float(np.mean(busy[:, 3])) if len(busy) else 0.0
        ratio = float(np.mean(busy[:, 1] / np.maximum(busy[:, 2], 1e-9))) if len(busy) else 0.0
        return {
            "in_region": self.in_region / max(1, self.placed),
            "in_group": self.in_group / max(1, self.placed),
            "relay_per_participant": self.relay_stream_seconds
            / max(1e-9, self.participant_seconds),
            "peak_relay": float(s[:, 4].max()) if len(s) else 0.0,
            "multi_bridge": self.multi_bridge_conferences / max(1, self.conferences),
            "peak_mean": float(s[:, 2].max()) if len(s) else 0.0,
            "peak_max": float(s[:, 1].max()) if len(s) else 0.0,
            "busy_p99": p99,
            "busy_max_over_mean": ratio,
            "overloaded_bridge_hours": float(s[:, 6].sum()) * self.sample_s / 3600
            if len(s)
            else 0.0,
        }


class ClusterSim:
    """One run of one variant over a workload."""

    def __init__(self, cfg: SimConfig, work: Workload, variant: Variant, full_list: bool) -> None:
        self.cfg, self.work, self.variant, self.full_list = cfg, work, variant, full_list
        self.now = 0.0
        self.selector = BridgeSelector(
            variant.strategy,
            region_groups=REGION_GROUPS,
            overload=cfg.overload,
            max_per_bridge=cfg.max_per_bridge,
            endpoint_cost=variant.endpoint_cost,
            recent_window=cfg.recent_window,
            clock=lambda: self.now,
        )
        self.breg = bridge_regions(cfg)
        n = len(self.breg)
        self.ids = [f"b{i:05d}" for i in range(n)]
        self.index = {bid: i for i, bid in enumerate(self.ids)}
        self.names = [r.name for r in REGIONS]
        bounds = np.searchsorted(self.breg, np.arange(len(REGIONS) + 1))
        self.slices = [(int(bounds[r]), int(bounds[r + 1])) for r in range(len(REGIONS))]
        groups = [set(g) for g in REGION_GROUPS.values()]
        self.neighbour = [
            {
                j
                for j, other in enumerate(self.names)
                if other == name or any({name, other} <= g for g in groups)
            }
            for name in self.names
        ]
        self.pps = np.zeros(n)
        self.reported = np.zeros(n)  # stress as of each bridge's last heartbeat
        self.on: list[dict[int, int]] = [{} for _ in range(work.conferences)]
        self.size = [0] * work.conferences
        self.spread = [False] * work.conferences
        self.relay_streams = 0
        self.online = 0

    # -- load model ------------------------------------------------------------------------

    def _load(self, conf: int, sign: float) -> None:
        """Add (sign=1) or remove (sign=-1) the conference's load and relay streams."""
        cfg, on, n = self.cfg, self.on[conf], self.size[conf]
        if n == 0:
            return
        k = len(on)
        # Layer suspension: only the last-N most recent speakers send video at all.
        send = cfg.audio_pps + cfg.video_pps * min(n, cfg.last_n) / n
        receive = cfg.audio_pps * min(n - 1, cfg.speakers)
        if n > 1:
            receive += cfg.stage_pps + cfg.thumbnail_pps * (min(n - 1, cfg.last_n) - 1)
        for b, m in on.items():
            pps = m * (send + receive)
            if k > 1:  # relay: each local sender out to each other bridge, each remote one in
                pps += send * (m * (k - 1) + (n - m))
            self.pps[b] += sign * pps
        self.relay_streams += int(sign) * n * (k - 1)

    def _move(self, conf: int, bridge: int, delta: int) -> None:
        self._load(conf, -1.0)
        on = self.on[conf]
        left = on.get(bridge, 0) + delta
        if left:
            on[bridge] = left
        else:
            del on[bridge]
        self.size[conf] += delta
        self.online += delta
        self._load(conf, 1.0)
        if len(on) > 1:
            self.spread[conf] = True

    # -- selection -------------------------------------------------------------------------

    def _info(self, b: int) -> BridgeInfo:
        return BridgeInfo(self.ids[b], self.names[self.breg[b]], float(self.reported[b]))

    def _candidates(self, on: dict[int, int]) -> list[BridgeInfo]:
        if self.full_list:
            return [self._info(b) for b in range(len(self.ids))]
        recent = [self.index[bid] for bid in self.selector.recent_by_bridge()]
        masked = self.reported.copy()
        masked[recent] = np.inf
        masked[list(on)] = np.inf
        chosen = set(on)
        best = [math.inf] * len(self.slices)
        for r, (lo, hi) in enumerate(self.slices):
            b = lo + int(np.argmin(masked[lo:hi]))
            if masked[b] != np.inf:
                chosen.add(b)
                best[r] = float(masked[b])
        chosen.update(b for b in recent if self.reported[b] <= best[self.breg[b]])
        return [self._info(b) for b in chosen]

    def _join(self, p: int, result: Result) -> None:
        conf, region = int(self.work.conference[p]), int(self.work.region[p])
        on = self.on[conf]
        conference = {self.ids[b]: m for b, m in on.items()}
        choice = self.selector.select(self._candidates(on), conference, self.names[region])
        result.participants += 1
        if choice is None:
            return
        b = self.index[choice]
        result.placed += 1
        result.in_region += self.breg[b] == region
        result.in_group += self.breg[b] in self.neighbour[region]
        self._move(conf, b, 1)
        heapq.heappush(self.leaves, (float(self.work.leave[p]), p, b))

    # -- event loop ------------------------------------------------------------------------

    def run(self) -> Result:
        cfg, work = self.cfg, self.work
        result = Result(self.variant, conferences=work.conferences, sample_s=cfg.sample_s)
        started = time.perf_counter()
        self.leaves: list[tuple[float, int, int]] = []
        joins = work.join.tolist()
        next_join, tick, horizon = 0, 0, cfg.hours * 3600.0
        last_time = 0.0
        while next_join < len(joins) or self.leaves:
            t_join = joins[next_join] if next_join < len(joins) else math.inf
            t_leave = self.leaves[0][0] if self.leaves else math.inf
            t = min(t_join, t_leave)
            tick = self._ticks(tick, t, horizon, result)
            result.participant_seconds += self.online * (t - last_time)
            result.relay_stream_seconds += self.relay_streams * (t - last_time)
            self.now = last_time = t
            if t_join <= t_leave:
                self._join(next_join, result)
                next_join += 1
            else:
                _, p, b = heapq.heappop(self.leaves)
                self._move(int(work.conference[p]), b, -1)
        result.multi_bridge_conferences = sum(self.spread)
        result.leaked_pps = float(np.abs(self.pps).max()) + self.relay_streams + self.online
        result.wall_s = time.perf_counter() - started
        return result

    def _ticks(self, tick: int, t: float, horizon: float, result: Result) -> int:
        """Heartbeats and samples of the whole seconds from `tick` to `t`; the next tick.

        Bridge b heartbeats at the seconds s with s % heartbeat_s == b % heartbeat_s. Nothing
        changes between events, so a gap of a whole heartbeat period is one update of all.
        """
        cfg, period, every = self.cfg, self.cfg.heartbeat_s, self.cfg.sample_s
        last = math.floor(t)
        if last - tick >= period:
            self.reported[:] = np.maximum(self.pps, 0.0) / cfg.capacity_pps
            first = -(-tick // every) * every
            for sample in range(first, min(last, int(horizon)) + 1, every):
                self._sample(sample, result)
            return last + 1
        while tick <= last:
            phase = tick % period
            # max(): a load sum can end a hair below zero after float cancellation
            self.reported[phase::period] = (
                np.maximum(self.pps[phase::period], 0.0) / cfg.capacity_pps
            )
            if tick % every == 0 and tick <= horizon:
                self._sample(tick, result)
            tick += 1
        return tick

    def _sample(self, tick: int, result: Result) -> None:
        stress = self.pps / self.cfg.capacity_pps
        row = (
            tick / 3600.0,
            float(stress.max()),
            float(stress.mean()),
            float(np.percentile(stress, 99)),
            self.relay_streams,
            self.online,
            int(np.count_nonzero(stress >= self.cfg.overload)),
        )
        result.series.append(row)


def run_variants(
    cfg: SimConfig, variants: tuple[Variant, ...] = VARIANTS, *, full_list: bool = False
) -> list[Result]:
    work = make_workload(cfg)
    return [ClusterSim(cfg, work, v, full_list).run() for v in variants]


def main(argv: list[str] | None = None) -> None:
    full = SimConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bridges", type=int, default=full.bridges)
    parser.add_argument("--conferences", type=int, default=full.conferences)
    parser.add_argument("--hours", type=float, default=full.hours)
    parser.add_argument("--seed", type=int, default=full.seed)
    parser.add_argument("--capacity-pps", type=float, default=full.capacity_pps)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK.bridges} bridges, {QUICK.conferences} conferences (sizes given are ignored)",
    )
    parser.add_argument("--full-list", action="store_true", help="pass every bridge (slow)")
    parser.add_argument("--markdown", type=Path, help="update the results block of this file")
    parser.add_argument("--label", default="nominal", help="which results block to update")
    parser.add_argument("--plot", type=Path, help="write a PNG plot here (needs matplotlib)")
    args = parser.parse_args(argv)
    names = ("bridges", "conferences", "hours", "seed", "capacity_pps")
    sizes = {k: getattr(args, k) for k in names}
    if args.quick:
        sizes.update(bridges=QUICK.bridges, conferences=QUICK.conferences)
    cfg = replace(full, **sizes)
    results = run_variants(cfg, full_list=args.full_list)
    print(table(results))
    for r in results:
        if r.placed != r.participants or r.leaked_pps > 1e-6:
            raise SystemExit(f"{r.variant.name}: lost participants or leaked load")
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python -m bench.cluster_sim", *given])
    if args.markdown is not None:
        block = results_block(cfg, results, command, args.label)
        write_markdown(args.markdown, block, args.label)
    if args.plot is not None:
        title = (
            f"{cfg.bridges:,} bridges of {cfg.capacity_pps:,.0f} pps, "
            f"{cfg.conferences:,} conferences in {cfg.hours:g} h"
        )
        write_plot(results, args.plot, title, cfg.overload)


if __name__ == "__main__":
    main()
