"""Invariants of the cluster simulation (bench/cluster_sim.py) at its --quick size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bench.cluster_sim import (
    QUICK,
    VARIANTS,
    Result,
    make_workload,
    markers,
    run_variants,
    write_markdown,
)

BY_NAME = {v.name: v for v in VARIANTS}


@pytest.fixture(scope="module")
def quick() -> dict[str, Result]:
    variants = (BY_NAME["single"], BY_NAME["region"], BY_NAME["split"])
    return {r.variant.name: r for r in run_variants(QUICK, variants)}


def test_no_participant_lost_and_no_load_left(quick: dict[str, Result]) -> None:
    expected = len(make_workload(QUICK).join)
    for name, r in quick.items():
        assert r.participants == expected, name
        assert r.placed == r.participants, name
        assert r.leaked_pps < 1e-6, name  # every leave undid its join's load and relays
        assert len(r.series) == int(QUICK.hours * 3600 / QUICK.sample_s) + 1, name


def test_region_strategy_keeps_more_participants_in_region(quick: dict[str, Result]) -> None:
    single, region = quick["single"].summary(), quick["region"].summary()
    assert region["in_region"] > single["in_region"] + 0.1
    assert region["in_group"] > single["in_group"]


def test_split_spreads_conferences_and_costs_relay_streams(quick: dict[str, Result]) -> None:
    single, split = quick["single"].summary(), quick["split"].summary()
    assert split["multi_bridge"] > 2 * single["multi_bridge"]
    assert split["relay_per_participant"] > single["relay_per_participant"]


def test_stress_series_is_consistent(quick: dict[str, Result]) -> None:
    for r in quick.values():
        s = np.array(r.series)
        assert np.all(s[:, 1] >= s[:, 3]) and np.all(s[:, 3] >= 0)  # max >= p99 >= 0
        assert np.all(s[:, 1] >= s[:, 2])  # max >= mean
        assert s[:, 5].max() > 0 and s[-1, 5] >= 0


def test_shortlist_gives_the_same_choices_as_every_bridge() -> None:
    cfg = replace(QUICK, conferences=600)
    for variant in (BY_NAME["region"], BY_NAME["single, no correction"]):
        short = run_variants(cfg, (variant,))[0]
        full = run_variants(cfg, (variant,), full_list=True)[0]
        assert (short.in_region, short.in_group) == (full.in_region, full.in_group)
        assert short.relay_stream_seconds == full.relay_stream_seconds
        assert short.series == full.series


def test_workload_shape() -> None:
    work = make_workload(QUICK)
    assert np.all(work.leave > work.join)
    assert np.all(np.diff(work.join) >= 0)
    sizes = np.bincount(work.conference, minlength=work.conferences)
    assert sizes.min() >= 2 and sizes.max() <= QUICK.max_size
    small = np.mean((sizes >= 2) & (sizes <= 4))
    assert 0.6 < small < 0.85  # most meetings are small
    assert np.mean(sizes >= 20) > 0.01  # and the tail is heavy


def test_markdown_results_block_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "SIM.md"
    (a0, a1), (b0, b1) = markers("a"), markers("b")
    path.write_text(f"# Title\n\n{a0}\nold a\n{a1}\n\nmiddle\n\n{b0}\nold b\n{b1}\nend\n")
    write_markdown(path, f"{b0}\nnew b\n{b1}", "b")
    assert path.read_text() == f"# Title\n\n{a0}\nold a\n{a1}\n\nmiddle\n\n{b0}\nnew b\n{b1}\nend\n"
    path.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers missing"):
        write_markdown(path, f"{a0}\nnew\n{a1}", "a")
    assert path.read_text() == "no markers\n"
