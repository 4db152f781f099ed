import pytest

from tertulia.bridge.constraints import (
    ConstraintsError,
    ReceiverConstraints,
    parse_constraints,
    videos_to_forward,
)

ORDER = ["a", "b", "c", "d"]


def test_default_forwards_everyone() -> None:
    assert videos_to_forward(ReceiverConstraints(), ORDER) == set(ORDER)


def test_last_n_takes_stage_and_selected_first_then_speaking_order() -> None:
    c = parse_constraints({"lastN": 2, "onStage": ["d"]}, ReceiverConstraints())
    assert videos_to_forward(c, ORDER) == {"d", "a"}
    c = parse_constraints({"selected": ["c"]}, c)  # incremental: lastN and onStage kept
    assert c.last_n == 2 and c.on_stage == ("d",)
    assert videos_to_forward(c, ORDER) == {"d", "c"}
    assert videos_to_forward(parse_constraints({"lastN": 0}, c), ORDER) == set()


def test_hidden_tiles_get_no_video() -> None:
    c = parse_constraints({"maxHeights": {"b": 0, "c": 180}}, ReceiverConstraints())
    assert videos_to_forward(c, ORDER) == {"a", "c", "d"}
    c = parse_constraints({"defaultMaxHeight": 0, "maxHeights": {"c": 360}}, c)
    assert videos_to_forward(c, ORDER) == {"c"}
    # senders not present are ignored even if on stage
    assert videos_to_forward(parse_constraints({"onStage": ["zz"]}, c), ORDER) == {"c"}


@pytest.mark.parametrize(
    "message",
    [
        {"lastN": "3"},
        {"lastN": True},
        {"lastN": -5},
        {"onStage": "a"},
        {"onStage": [1]},
        {"maxHeights": []},
        {"maxHeights": {"a": 1.5}},
        {"defaultMaxHeight": 99999},
        {"selected": ["x"] * 1000},
        {"defaultMaxFrameRate": "15"},
        {"defaultMaxFrameRate": True},
        {"defaultMaxFrameRate": 0},
        {"defaultMaxFrameRate": -2},
        {"defaultMaxFrameRate": 1000},
        {"defaultMaxFrameRate": float("nan")},
        {"maxFrameRates": [15]},
        {"maxFrameRates": {"a": 0.5}},
        {"maxFrameRates": {"a": None}},
        {"maxFrameRates": {str(i): 15 for i in range(300)}},
    ],
)
def test_bad_constraints_are_refused(message: dict[str, object]) -> None:
    with pytest.raises(ConstraintsError):
        parse_constraints(message, ReceiverConstraints())


def test_max_frame_rates_are_incremental_with_a_default() -> None:
    c = ReceiverConstraints()
    assert c.max_frame_rate("a") == -1  # no limit
    c = parse_constraints({"defaultMaxFrameRate": 15, "maxFrameRates": {"b": 7.5}}, c)
    assert (c.max_frame_rate("a"), c.max_frame_rate("b")) == (15.0, 7.5)
    c = parse_constraints({"maxHeights": {"a": 180}}, c)  # left out: kept
    assert (c.max_frame_rate("a"), c.max_frame_rate("b")) == (15.0, 7.5)
    c = parse_constraints({"maxFrameRates": {"a": 30}}, c)  # a new map replaces the old
    assert (c.max_frame_rate("a"), c.max_frame_rate("b")) == (30.0, 15.0)
    c = parse_constraints({"defaultMaxFrameRate": -1, "maxFrameRates": {}}, c)
    assert c.max_frame_rate("b") == -1


def test_a_refused_message_leaves_the_previous_constraints() -> None:
    before = parse_constraints({"defaultMaxFrameRate": 15}, ReceiverConstraints())
    with pytest.raises(ConstraintsError, match="maxFrameRates"):
        parse_constraints({"lastN": 2, "maxFrameRates": {"a": 0}}, before)
    assert before.last_n == -1 and before.default_max_frame_rate == 15
