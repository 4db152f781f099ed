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
    ],
)
def test_bad_constraints_are_refused(message: dict[str, object]) -> None:
    with pytest.raises(ConstraintsError):
        parse_constraints(message, ReceiverConstraints())
