"""Per-receiver layer allocation within a bandwidth estimate (bridge/allocation.py).

Sources made of spatial layers only (one temporal layer each, TID 0) behave as simulcast
without temporal layers; the temporal tests at the end use Chromium's L1T3 structure."""

from __future__ import annotations

from tertulia.bridge.allocation import (
    Layer,
    Pick,
    Source,
    allocate,
    allowed_layers,
    total_rate,
)


def camera(sender: str, base: int, *, max_height: int = -1, on_stage: bool = False) -> Source:
    """Three layers like a 720p simulcast camera: 180p/360p/720p at 150/500/1500 kbit/s."""
    return Source(
        sender,
        (Layer(base + 1, 180, 150_000), Layer(base + 2, 360, 500_000),
         Layer(base + 3, 720, 1_500_000)),
        max_height,
        on_stage,
    )


A, B, C = camera("a", 100), camera("b", 200), camera("c", 300)


def ssrcs(choice: dict[str, Pick | None]) -> dict[str, int | None]:
    """The spatial layer of each pick (these sources have one temporal layer: TID 0)."""
    assert all(pick is None or pick[1] == 0 for pick in choice.values())
    return {sid: None if pick is None else pick[0] for sid, pick in choice.items()}


def test_without_an_estimate_everyone_gets_the_highest_allowed_layer() -> None:
    small_b = camera("b", 200, max_height=360)
    assert ssrcs(allocate([A, small_b], None)) == {"a": 103, "b": 202}


def test_max_height_prunes_layers_but_keeps_the_lowest() -> None:
    assert [layer.ssrc for layer in allowed_layers(camera("a", 0, max_height=400))] == [1, 2]
    assert [layer.ssrc for layer in allowed_layers(camera("a", 0, max_height=100))] == [1]


def test_a_small_budget_gives_low_layers_in_priority_order_and_suspends_the_rest() -> None:
    assert ssrcs(allocate([A, B, C], 320_000)) == {"a": 101, "b": 201, "c": None}


def test_the_first_source_keeps_its_lowest_layer_even_below_it() -> None:
    # a receiver that gets nothing sends no new estimate and could never recover
    assert ssrcs(allocate([A, B], 50_000)) == {"a": 101, "b": None}


def test_lower_priority_never_takes_the_place_of_a_higher_one() -> None:
    cheap = Source("cheap", (Layer(9, 90, 10_000),))
    assert ssrcs(allocate([A, B, cheap], 200_000)) == {"a": 101, "b": None, "cheap": None}


def test_on_stage_is_raised_first_then_others_one_layer_per_round() -> None:
    stage = camera("s", 400, on_stage=True)
    # 3 x 150k lowest = 450k; stage to 720p: +1350k = 1800k; then a to 360p: +350k = 2150k
    choice = allocate([stage, A, B], 2_200_000)
    assert ssrcs(choice) == {"s": 403, "a": 102, "b": 201}
    assert total_rate([stage, A, B], choice) == 2_150_000


def test_round_robin_raises_every_source_before_any_goes_twice() -> None:
    # 2 x 150k + 2 x 350k = 1000k: both reach 360p; 720p for one would need 1000k more
    assert ssrcs(allocate([A, B], 1_100_000)) == {"a": 102, "b": 202}
    assert ssrcs(allocate([A, B], 2_100_000)) == {"a": 103, "b": 202}


def test_sources_without_live_layers_are_left_out() -> None:
    idle = Source("idle", ())
    assert ssrcs(allocate([idle, A], 1_000_000)) == {"a": 102}


def test_unknown_rates_count_as_free() -> None:
    fresh = Source("f", (Layer(1, 180, 0.0), Layer(2, 360, 0.0)))
    assert ssrcs(allocate([fresh], 10_000)) == {"f": 2}


def test_a_layer_still_being_measured_is_no_upgrade_within_a_budget() -> None:
    """A 720p layer that has just resumed reads only a few kbit/s while its rate meter
    climbs; on a 300 kbit/s link it must not look like the cheapest way up."""
    resumed = Source("a", (Layer(1, 180, 150_000), Layer(2, 360, 500_000),
                           Layer(3, 720, 20_000, settled=False)), on_stage=True)
    assert ssrcs(allocate([resumed], 250_000)) == {"a": 1}
    assert ssrcs(allocate([resumed], 600_000)) == {"a": 2}
    # once measured it is an option like any other
    measured = Source("a", (*resumed.layers[:2], Layer(3, 720, 1_500_000)), on_stage=True)
    assert ssrcs(allocate([measured], 2_000_000)) == {"a": 3}
    # without an estimate there is no budget to protect: the preferred layer
    assert ssrcs(allocate([resumed], None)) == {"a": 3}


def test_a_new_source_still_gets_its_lowest_layer_while_it_is_measured() -> None:
    fresh = Source("f", (Layer(1, 180, 0.0, settled=False), Layer(2, 360, 0.0, settled=False)))
    assert ssrcs(allocate([A, fresh], 1_000_000)) == {"a": 102, "f": 1}


# -- temporal layers ----------------------------------------------------------------------

# Chromium's L1T3 per spatial layer: T0 is 60% of the rate at 7.5 fps, T0+T1 80% at 15 fps.
SHARES = ((0.6, 7.5), (0.8, 15.0), (1.0, 30.0))


def l1t3(sender: str, base: int, *, max_height: int = -1, on_stage: bool = False,
         max_fps: float = -1.0) -> Source:
    """A 720p simulcast camera whose layers each have three temporal layers."""
    layers = tuple(
        Layer(base + index, height, rate * share, tid, fps)
        for index, (height, rate) in enumerate(((180, 150_000), (360, 500_000),
                                                (720, 1_500_000)), start=1)
        for tid, (share, fps) in enumerate(SHARES)
    )
    return Source(sender, layers, max_height, on_stage, max_fps)


def test_options_gain_frame_rate_first_and_resolution_at_full_rate_from_360p() -> None:
    options = [(layer.height, layer.fps) for layer in allowed_layers(l1t3("a", 0))]
    assert options == [(180, 7.5), (180, 15.0), (180, 30.0), (360, 30.0), (720, 30.0)]
    rates = [layer.bps for layer in allowed_layers(l1t3("a", 0))]
    assert rates == sorted(rates)


def test_a_thin_link_gets_low_frame_rates_rather_than_nothing() -> None:
    # 2 x 90k at 7.5 fps fit 200k; whole 180p layers (2 x 150k) would leave b suspended
    assert allocate([l1t3("a", 100), l1t3("b", 200)], 200_000) == {
        "a": (101, 0), "b": (201, 0)}
    assert ssrcs(allocate([A, B], 200_000)) == {"a": 101, "b": None}


def test_upgrades_go_one_option_at_a_time_round_robin() -> None:
    a, b = l1t3("a", 100), l1t3("b", 200)
    # 180k for both at 7.5 fps; round 1: +30k each to 15 fps; round 2: a to 30 fps (+30k)
    assert allocate([a, b], 270_000) == {"a": (101, 2), "b": (201, 1)}
    # 300k: both 180p at 30 fps; 360p needs +350k
    assert allocate([a, b], 300_000) == {"a": (101, 2), "b": (201, 2)}
    assert allocate([a, b], 700_000) == {"a": (102, 2), "b": (201, 2)}


def test_on_stage_goes_straight_to_the_best_option_that_fits() -> None:
    stage = l1t3("s", 400, on_stage=True)
    # lowest 90k each (180k), then the stage: 720p30 needs +1410k, 360p30 +410k fits
    assert allocate([stage, l1t3("a", 100)], 700_000) == {"s": (402, 2), "a": (101, 2)}


def test_max_frame_rate_prunes_temporal_layers_but_keeps_each_resolution() -> None:
    half = l1t3("a", 0, max_fps=15)
    assert [(layer.height, layer.fps) for layer in allowed_layers(half)] == [
        (180, 7.5), (180, 15.0), (360, 15.0), (720, 15.0)]
    assert allocate([half], None) == {"a": (3, 1)}
    # below the lowest frame rate: the lowest temporal layer of each resolution stays
    slow = l1t3("a", 0, max_fps=5)
    assert allocate([slow], None) == {"a": (3, 0)}
    # combined with a max height
    assert allocate([l1t3("a", 0, max_height=180, max_fps=15)], None) == {"a": (1, 1)}


def test_measured_frame_rates_a_little_above_the_limit_still_fit() -> None:
    layers = (Layer(1, 180, 90_000, 0, 7.6), Layer(1, 180, 120_000, 1, 15.8),
              Layer(1, 180, 150_000, 2, 31.0))
    assert allocate([Source("a", layers, max_fps=15)], None) == {"a": (1, 1)}


def test_unmeasured_frame_rates_only_fit_a_limit_at_the_lowest_temporal_layer() -> None:
    layers = (Layer(1, 180, 0.0, 0, 0.0), Layer(1, 180, 0.0, 1, 0.0),
              Layer(1, 180, 0.0, 2, 0.0))
    assert allocate([Source("a", layers, max_fps=15)], None) == {"a": (1, 0)}
    assert allocate([Source("a", layers)], None) == {"a": (1, 2)}


def test_total_rate_counts_the_temporal_option() -> None:
    a = l1t3("a", 100)
    assert total_rate([a], {"a": (101, 0)}) == 90_000
    assert total_rate([a], {"a": (103, 1)}) == 1_200_000
