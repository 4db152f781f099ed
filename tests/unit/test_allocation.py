"""Per-receiver layer allocation within a bandwidth estimate (bridge/allocation.py)."""

from __future__ import annotations

from tertulia.bridge.allocation import Layer, Source, allocate, allowed_layers, total_rate


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


def test_without_an_estimate_everyone_gets_the_highest_allowed_layer() -> None:
    small_b = camera("b", 200, max_height=360)
    assert allocate([A, small_b], None) == {"a": 103, "b": 202}


def test_max_height_prunes_layers_but_keeps_the_lowest() -> None:
    assert [layer.ssrc for layer in allowed_layers(camera("a", 0, max_height=400))] == [1, 2]
    assert [layer.ssrc for layer in allowed_layers(camera("a", 0, max_height=100))] == [1]


def test_a_small_budget_gives_low_layers_in_priority_order_and_suspends_the_rest() -> None:
    assert allocate([A, B, C], 320_000) == {"a": 101, "b": 201, "c": None}


def test_the_first_source_keeps_its_lowest_layer_even_below_it() -> None:
    # a receiver that gets nothing sends no new estimate and could never recover
    assert allocate([A, B], 50_000) == {"a": 101, "b": None}


def test_lower_priority_never_takes_the_place_of_a_higher_one() -> None:
    cheap = Source("cheap", (Layer(9, 90, 10_000),))
    assert allocate([A, B, cheap], 200_000) == {"a": 101, "b": None, "cheap": None}


def test_on_stage_is_raised_first_then_others_one_layer_per_round() -> None:
    stage = camera("s", 400, on_stage=True)
    # 3 x 150k lowest = 450k; stage to 720p: +1350k = 1800k; then a to 360p: +350k = 2150k
    choice = allocate([stage, A, B], 2_200_000)
    assert choice == {"s": 403, "a": 102, "b": 201}
    assert total_rate([stage, A, B], choice) == 2_150_000


def test_round_robin_raises_every_source_before_any_goes_twice() -> None:
    # 2 x 150k + 2 x 350k = 1000k: both reach 360p; 720p for one would need 1000k more
    assert allocate([A, B], 1_100_000) == {"a": 102, "b": 202}
    assert allocate([A, B], 2_100_000) == {"a": 103, "b": 202}


def test_sources_without_live_layers_are_left_out() -> None:
    idle = Source("idle", ())
    assert allocate([idle, A], 1_000_000) == {"a": 102}


def test_unknown_rates_count_as_free() -> None:
    fresh = Source("f", (Layer(1, 180, 0.0), Layer(2, 360, 0.0)))
    assert allocate([fresh], 10_000) == {"f": 2}
