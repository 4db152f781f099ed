"""Receiver constraints: what each client wants to receive, and which videos that allows.

A client tells its bridge, over the bridge channel, how many videos it wants (last-N), which
participants are on stage or selected, and the largest height it will show per participant
(0 for a hidden or off-screen tile; -1 for no limit), and the highest frame rate it wants
per participant (-1 for no limit; e.g. 15 for small tiles in a large grid). Without simulcast
the bridge can only forward a video or not; with layers the same constraints cap the spatial
layer, and a max frame rate caps the VP8 temporal layer (issue: media quality).

Pure: validation and the selection rule, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_IDS = 256
MAX_FRAME_RATE = 240.0  # the largest frame rate a client may ask for (fps)


class ConstraintsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ReceiverConstraints:
    last_n: int = -1  # -1: no limit
    on_stage: tuple[str, ...] = ()
    selected: tuple[str, ...] = ()
    default_max_height: int = -1
    max_heights: dict[str, int] = field(default_factory=dict, hash=False)
    default_max_frame_rate: float = -1.0  # -1: no limit
    max_frame_rates: dict[str, float] = field(default_factory=dict, hash=False)

    def max_height(self, participant: str) -> int:
        return self.max_heights.get(participant, self.default_max_height)

    def max_frame_rate(self, participant: str) -> float:
        return self.max_frame_rates.get(participant, self.default_max_frame_rate)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConstraintsError(f"field {name!r} must be an integer from {low} to {high}")
    return value


def _frame_rate(value: Any, name: str) -> float:
    """-1 (no limit) or a frame rate from 1 to MAX_FRAME_RATE; fractions allowed (7.5)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not (value == -1 or 1 <= value <= MAX_FRAME_RATE)):
        raise ConstraintsError(
            f"field {name!r} must be -1 or a number from 1 to {MAX_FRAME_RATE:g}")
    return float(value)


def _ids(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_IDS:
        raise ConstraintsError(f"field {name!r} must be a list of at most {MAX_IDS} ids")
    if not all(isinstance(v, str) and len(v) <= 64 for v in value):
        raise ConstraintsError(f"field {name!r} must hold participant ids (strings)")
    return tuple(value)


def parse_constraints(message: dict[str, Any], previous: ReceiverConstraints
                      ) -> ReceiverConstraints:
    """Apply one incremental `constraints` message: fields it leaves out keep their value."""
    last_n = previous.last_n
    if "lastN" in message:
        last_n = _int(message["lastN"], "lastN", -1, 1000)
    on_stage = _ids(message["onStage"], "onStage") if "onStage" in message else previous.on_stage
    selected = (
        _ids(message["selected"], "selected") if "selected" in message else previous.selected
    )
    default = previous.default_max_height
    if "defaultMaxHeight" in message:
        default = _int(message["defaultMaxHeight"], "defaultMaxHeight", -1, 4320)
    heights = dict(previous.max_heights)
    if "maxHeights" in message:
        raw = message["maxHeights"]
        if not isinstance(raw, dict) or len(raw) > MAX_IDS:
            raise ConstraintsError(f"field 'maxHeights' must map at most {MAX_IDS} ids to heights")
        heights = {
            str(k)[:64]: _int(v, f"maxHeights.{str(k)[:20]}", -1, 4320) for k, v in raw.items()
        }
    default_fps = previous.default_max_frame_rate
    if "defaultMaxFrameRate" in message:
        default_fps = _frame_rate(message["defaultMaxFrameRate"], "defaultMaxFrameRate")
    rates = dict(previous.max_frame_rates)
    if "maxFrameRates" in message:
        raw = message["maxFrameRates"]
        if not isinstance(raw, dict) or len(raw) > MAX_IDS:
            raise ConstraintsError(
                f"field 'maxFrameRates' must map at most {MAX_IDS} ids to frame rates")
        rates = {
            str(k)[:64]: _frame_rate(v, f"maxFrameRates.{str(k)[:20]}") for k, v in raw.items()
        }
    return ReceiverConstraints(last_n, on_stage, selected, default, heights, default_fps, rates)


def videos_to_forward(
    constraints: ReceiverConstraints, senders: Iterable[str]
) -> set[str]:
    """Which senders' camera video a receiver gets (see :func:`videos_in_order`)."""
    return set(videos_in_order(constraints, senders))


def videos_in_order(constraints: ReceiverConstraints, senders: Iterable[str]) -> list[str]:
    """Senders whose camera video a receiver wants, highest priority first.

    ``senders`` come in speaking order (most recent speaker first). On-stage and selected
    participants go first, then the speaking order; a sender whose max height is 0 is never
    forwarded; at most last-N are (JVB's allocation order; the bandwidth step comes after,
    in bridge/allocation.py).
    """
    senders = list(senders)
    ordered = list(dict.fromkeys([*constraints.on_stage, *constraints.selected, *senders]))
    present = set(senders)
    chosen: list[str] = []
    for sender in ordered:
        if sender not in present or constraints.max_height(sender) == 0:
            continue
        if 0 <= constraints.last_n <= len(chosen):
            break
        chosen.append(sender)
    return chosen
