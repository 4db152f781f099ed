"""Bridge selection rules (tertulia.focus.selection) on fixed bridge tables and a fake clock."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tertulia.focus.selection import BridgeInfo, BridgeSelector, region_neighbours


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(strategy: str = "single", clock: FakeClock | None = None, **kw: object) -> BridgeSelector:
    return BridgeSelector(strategy, clock=clock or FakeClock(), **kw)  # type: ignore[arg-type]


def B(bid: str, region: str = "eu", stress: float = 0.0, draining: bool = False) -> BridgeInfo:
    return BridgeInfo(bid, region, stress, draining)


NONE: Mapping[str, int] = {}

# -- corrected stress ---------------------------------------------------------------------------


def test_burst_of_new_conferences_spreads_before_heartbeats_catch_up() -> None:
    # binary-exact numbers so that ties are real ties
    sel = make("single", endpoint_cost=0.125)
    bridges = [B("a", stress=0.25), B("b", stress=0.375), B("c", stress=0.5)]
    # reported stress never changes (no heartbeat in between): the corrected stress spreads
    # a: .25 -> .375 (tie with b, id order) -> .5; b -> .5; all at .5: a, b, c in id order
    picks = [sel.select(bridges, NONE, "eu") for _ in range(6)]
    assert picks == ["a", "a", "b", "a", "b", "c"]


def test_without_endpoint_cost_a_burst_lands_on_one_bridge() -> None:
    sel = make("single", endpoint_cost=0.0)
    bridges = [B("a", stress=0.10), B("b", stress=0.12)]
    assert {sel.select(bridges, NONE, "eu") for _ in range(20)} == {"a"}


def test_corrected_stress_counts_recent_endpoints() -> None:
    clock = FakeClock()
    sel = make("single", clock=clock, endpoint_cost=0.05, recent_window=10.0)
    a = B("a", stress=0.2)
    for _ in range(3):
        assert sel.select([a], NONE, None) == "a"
    assert sel.recent_endpoints("a") == 3
    assert sel.corrected_stress(a) == pytest.approx(0.35)
    assert sel.recent_by_bridge() == {"a": 3}


def test_recent_window_expires() -> None:
    clock = FakeClock()
    sel = make("single", clock=clock, endpoint_cost=0.05, recent_window=10.0)
    a, b = B("a", stress=0.10), B("b", stress=0.12)
    assert sel.select([a, b], NONE, None) == "a"  # a corrected 0.15 now
    clock.now += 5.0
    assert sel.select([a, b], NONE, None) == "b"  # still inside the window
    assert sel.corrected_stress(a) == pytest.approx(0.15)
    clock.now += 5.0  # 10 s after the first choice: it no longer counts
    assert sel.recent_endpoints("a") == 0
    assert sel.recent_endpoints("b") == 1
    assert sel.select([a, b], NONE, None) == "a"
    clock.now += 20.0
    assert sel.recent_by_bridge() == {}


def test_forget_drops_the_history_of_a_bridge() -> None:
    sel = make("single", endpoint_cost=0.05)
    a, b = B("a", stress=0.10), B("b", stress=0.12)
    assert sel.select([a, b], NONE, None) == "a"
    sel.forget("a")
    assert sel.recent_endpoints("a") == 0
    assert sel.select([a, b], NONE, None) == "a"  # a is back at 0.10 < 0.12
    sel.forget("unknown")  # no error


# -- draining and overload ----------------------------------------------------------------------


def test_never_chooses_a_draining_bridge() -> None:
    for strategy in ("single", "region", "split"):
        sel = make(strategy)
        bridges = [B("a", stress=0.0, draining=True), B("b", stress=0.95)]
        assert sel.select(bridges, {"a": 3}, "eu") == "b", strategy
        assert sel.select([B("a", draining=True)], NONE, "eu") is None, strategy


def test_no_bridges_gives_none() -> None:
    assert make("region").select([], NONE, "eu") is None


def test_overloaded_used_only_when_nothing_else_and_then_least_stressed() -> None:
    sel = make("single", overload=0.8, endpoint_cost=0.0)
    # the idlest is fine
    assert sel.select([B("a", stress=0.81), B("b", stress=0.79)], NONE, None) == "b"
    # all overloaded: least stressed of them
    bridges = [B("a", stress=0.95), B("b", stress=0.85), B("c", stress=0.90)]
    assert sel.select(bridges, NONE, None) == "b"
    # ... but a conference already there stays on its own bridge (no new relay)
    assert sel.select(bridges, {"c": 3}, None) == "c"
    # exactly at the threshold counts as overloaded
    assert sel.select([B("a", stress=0.80), B("z", stress=0.99)], NONE, None) == "a"
    assert sel.select([B("a", stress=0.80), B("b", stress=0.5)], {"a": 2}, None) == "b"


def test_corrected_stress_can_push_a_bridge_into_overload() -> None:
    sel = make("single", overload=0.8, endpoint_cost=0.1)
    a, b = B("a", stress=0.65), B("b", stress=0.70)
    conf: dict[str, int] = {}
    picks = []
    for _ in range(3):
        pick = sel.select([a, b], conf, None)
        assert pick is not None
        picks.append(pick)
        conf[pick] = conf.get(pick, 0) + 1
    # a: 0.65 (ok) -> 0.75 (ok, keep) -> 0.85 overloaded: move to b (0.70)
    assert picks == ["a", "a", "b"]


# -- single ---------------------------------------------------------------------------------------


def test_single_keeps_the_conference_on_its_bridge() -> None:
    sel = make("single")
    bridges = [B("a", stress=0.1), B("b", stress=0.6, region="us")]
    assert sel.select(bridges, {"b": 5}, "eu") == "b"


def test_single_new_conference_goes_to_least_stressed() -> None:
    sel = make("single")
    bridges = [B("a", stress=0.3), B("b", stress=0.2), B("c", stress=0.25)]
    assert sel.select(bridges, NONE, "eu") == "b"


def test_single_moves_when_its_bridge_is_overloaded_draining_gone_or_full() -> None:
    bridges = [B("a", stress=0.5), B("b", stress=0.2), B("c", stress=0.3)]
    over = [B("a", stress=0.9), *bridges[1:]]
    drain = [B("a", stress=0.5, draining=True), *bridges[1:]]
    gone = bridges[1:]
    assert make("single").select(over, {"a": 4}, None) == "b"
    assert make("single").select(drain, {"a": 4}, None) == "b"
    assert make("single").select(gone, {"a": 4}, None) == "b"
    assert make("single", max_per_bridge=4).select(bridges, {"a": 4}, None) == "b"
    assert make("single", max_per_bridge=5).select(bridges, {"a": 4}, None) == "a"


def test_single_with_two_bridges_keeps_to_the_bigger_share() -> None:
    sel = make("single")
    bridges = [B("a", stress=0.1), B("b", stress=0.5)]
    assert sel.select(bridges, {"a": 1, "b": 6}, None) == "b"


# -- region ---------------------------------------------------------------------------------------

TABLE = [
    B("eu1", "eu-central", 0.30),
    B("eu2", "eu-central", 0.20),
    B("eu3", "eu-west", 0.10),
    B("us1", "us-east", 0.05),
    B("us2", "us-west", 0.40),
    B("ap1", "ap-south", 0.15),
]
GROUPS = {"europe": ["eu-central", "eu-west"], "americas": ["us-east", "us-west"]}


def region_sel(**kw: object) -> BridgeSelector:
    return make("region", region_groups=GROUPS, **kw)


def test_region_prefers_a_conference_bridge_in_the_participant_region() -> None:
    # eu1 is busier than eu2, but the conference is already on it
    assert region_sel().select(TABLE, {"eu1": 3, "us1": 2}, "eu-central") == "eu1"


def test_region_prefers_a_conference_bridge_in_the_region_group() -> None:
    # conference on eu3 (eu-west): a eu-central participant joins it rather than open eu2
    assert region_sel().select(TABLE, {"eu3": 2, "us1": 1}, "eu-central") == "eu3"


def test_region_otherwise_least_loaded_in_region() -> None:
    # conference only in the US; a eu-central participant gets the idlest eu-central bridge
    assert region_sel().select(TABLE, {"us1": 2}, "eu-central") == "eu2"
    assert region_sel().select(TABLE, NONE, "us-west") == "us2"


def test_region_otherwise_region_group() -> None:
    table = [B("eu1", "eu-central", 0.85), *TABLE[2:]]  # the only eu-central bridge overloaded
    assert region_sel().select(table, NONE, "eu-central") == "eu3"
    # us-west bridge overloaded -> us-east (same group), not the idler ap1
    table = [b for b in TABLE if b.bridge_id != "us1"]
    table += [B("us1", "us-east", 0.35), B("us9", "us-west", 0.9)]
    table = [b for b in table if b.bridge_id != "us2"]
    assert region_sel().select(table, NONE, "us-west") == "us1"


def test_region_otherwise_a_bridge_of_the_conference() -> None:
    table = [b for b in TABLE if b.region != "ap-south"]
    # no bridge in ap-south and no group for it: stay with the conference (us2, not idler us1)
    assert region_sel().select(table, {"us2": 3}, "ap-south") == "us2"


def test_region_otherwise_least_loaded_anywhere() -> None:
    table = [b for b in TABLE if b.region != "ap-south"]
    assert region_sel().select(table, NONE, "ap-south") == "us1"


def test_region_none_keeps_conference_together_then_least_loaded() -> None:
    assert region_sel().select(TABLE, {"us2": 2}, None) == "us2"
    assert region_sel().select(TABLE, NONE, None) == "us1"
    # unknown region behaves like None
    assert region_sel().select(TABLE, {"us2": 2}, "mars") == "us2"
    assert region_sel().select(TABLE, NONE, "mars") == "us1"


def test_region_skips_overloaded_conference_bridge_in_region() -> None:
    table = [B("eu1", "eu-central", 0.9), *TABLE[1:]]
    assert region_sel().select(table, {"eu1": 3}, "eu-central") == "eu2"


def test_region_all_overloaded_stays_with_the_conference_else_least_stressed() -> None:
    table = [B("eu1", "eu-central", 0.95), B("eu2", "eu-central", 0.9), B("us1", "us-east", 0.85)]
    # stay on the conference's bridge rather than add relay load to another overloaded one
    assert region_sel().select(table, {"eu1": 4}, "eu-central") == "eu1"
    assert region_sel().select(table, {"eu1": 4, "eu2": 1}, "eu-central") == "eu2"
    # new conference: least stressed anywhere, even out of region
    assert region_sel().select(table, NONE, "eu-central") == "us1"
    # conference bridge at the cap: least stressed under the cap
    assert region_sel(max_per_bridge=4).select(table, {"eu1": 4}, "eu-central") == "us1"


def test_region_cap_moves_to_another_bridge_of_the_region() -> None:
    sel = region_sel(max_per_bridge=3)
    assert sel.select(TABLE, {"eu1": 3}, "eu-central") == "eu2"


def test_region_groups_accept_group_names_or_region_keys() -> None:
    named = region_neighbours({"europe": ["eu-central", "eu-west"]})
    assert named["eu-central"] >= {"eu-central", "eu-west"}
    keyed = region_neighbours({"eu-central": ["eu-west"], "eu-west": ["eu-north"]})
    assert {"eu-central", "eu-west", "eu-north"} <= keyed["eu-west"]
    assert "eu-north" not in keyed["eu-central"]
    with pytest.raises(ValueError, match="list of regions"):
        region_neighbours({"europe": "eu-central"})


# -- split ----------------------------------------------------------------------------------------


def test_split_spreads_over_as_many_bridges_as_possible() -> None:
    sel = make("split", endpoint_cost=0.0)
    bridges = [B("a", stress=0.3), B("b", stress=0.1), B("c", stress=0.2)]
    conf: dict[str, int] = {}
    picks = []
    for _ in range(6):
        pick = sel.select(bridges, conf, None)
        assert pick is not None
        picks.append(pick)
        conf[pick] = conf.get(pick, 0) + 1
    assert picks[:3] == ["b", "c", "a"]  # a new bridge each time, idlest first
    assert conf == {"a": 2, "b": 2, "c": 2}  # then the one with fewest of the conference


def test_split_skips_overloaded_and_capped() -> None:
    sel = make("split", max_per_bridge=1)
    bridges = [B("a", stress=0.1), B("b", stress=0.9), B("c", stress=0.3)]
    assert sel.select(bridges, {"a": 1}, None) == "c"
    assert sel.select(bridges, {"a": 1, "c": 1}, None) == "b"  # only b is under the cap


# -- per-conference cap ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["single", "region", "split"])
def test_cap_respected_when_possible(strategy: str) -> None:
    sel = make(strategy, max_per_bridge=2, endpoint_cost=0.0)
    bridges = [B("a", stress=0.1), B("b", stress=0.2), B("c", stress=0.3)]
    conf: dict[str, int] = {}
    for _ in range(6):
        pick = sel.select(bridges, conf, "eu")
        assert pick is not None
        conf[pick] = conf.get(pick, 0) + 1
    assert conf == {"a": 2, "b": 2, "c": 2}
    # every bridge full: still placed (least stressed), never refused
    assert sel.select(bridges, conf, "eu") == "a"


@pytest.mark.parametrize("strategy", ["single", "region", "split"])
def test_cap_beats_overload_order_in_the_fallback(strategy: str) -> None:
    # a is at the cap, b is overloaded: b (under the cap) is chosen before exceeding the cap
    sel = make(strategy, max_per_bridge=2)
    assert sel.select([B("a", stress=0.1), B("b", stress=0.9)], {"a": 2}, "eu") == "b"


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"strategy": "random"}, "unknown bridge selection strategy"),
        ({"overload": 0.0}, "overload"),
        ({"overload": float("nan")}, "overload"),
        ({"max_per_bridge": -1}, "max_per_bridge"),
        ({"endpoint_cost": -0.1}, "endpoint_cost"),
        ({"recent_window": float("inf")}, "recent_window"),
    ],
)
def test_bad_settings_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BridgeSelector(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("stress", [float("nan"), float("inf"), -0.1])
def test_bad_stress_is_refused(stress: float) -> None:
    with pytest.raises(ValueError, match="stress"):
        BridgeInfo("a", "eu", stress)
    with pytest.raises(ValueError, match="bridge_id"):
        BridgeInfo("", "eu", 0.1)


def test_duplicate_bridge_ids_use_the_first_entry() -> None:
    sel = make("single")
    assert sel.select([B("a", stress=0.9), B("a", stress=0.0), B("b", stress=0.5)], NONE, None) == (
        "b"
    )
