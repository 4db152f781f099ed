"""Per-receiver bandwidth allocation over simulcast layers. Pure: no I/O, no clocks.

Follows the order of Jitsi's bitrate controller (see REFERENCE.md, "Receiver constraints"):
sources arrive already in priority order — on-stage, then selected, then by recent speech, cut
at last-N — and every layer above a source's max height has been pruned. Then, within the
receiver's bandwidth estimate:

1. every source, in order, gets its lowest layer while the budget allows; a source that does not
   fit is suspended (the receiver shows its avatar), and so is everything after it: a lower
   priority source never displaces a higher one. The first source always keeps its lowest
   layer: a receiver that gets no video at all sends no new estimate, so it could never
   climb back;
2. on-stage sources are raised as high as they allow and the budget covers;
3. the others are raised one layer at a time, in priority order, round after round, until no
   raise fits.

Without an estimate every source gets its preferred (highest allowed) layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Layer:
    ssrc: int
    height: int  # pixels (from its last keyframe); 0 when not known yet
    bps: float  # measured rate of this layer as the sender sends it now


@dataclass(frozen=True, slots=True)
class Source:
    sender_id: str
    layers: tuple[Layer, ...]  # live layers, lowest first
    max_height: int = -1  # the receiver's limit for this source, -1 = none
    on_stage: bool = False


def allowed_layers(source: Source) -> tuple[Layer, ...]:
    """Layers within the max height (unknown heights count as fitting); at least the lowest."""
    if not source.layers:
        return ()
    if source.max_height < 0:
        return source.layers
    fitting = tuple(
        layer for layer in source.layers if layer.height <= source.max_height
    )
    return fitting or source.layers[:1]


def allocate(sources: Sequence[Source], budget: float | None) -> dict[str, int | None]:
    """The layer (SSRC) each source gets, None for a suspended source. Sources with no live
    layer are left out: there is nothing to allocate (and nothing to suspend) yet."""
    sources = [s for s in sources if s.layers]
    allowed = {s.sender_id: allowed_layers(s) for s in sources}
    if budget is None:
        return {sid: layers[-1].ssrc for sid, layers in allowed.items()}
    level: dict[str, int] = {}  # sender id -> index into its allowed layers
    spent = 0.0
    blocked = False
    for source in sources:
        layers = allowed[source.sender_id]
        if blocked:
            continue
        cost = layers[0].bps
        if spent + cost > budget and level:
            blocked = True  # lower priorities do not take the place of this one
            continue
        level[source.sender_id] = 0
        spent += cost

    def raise_to(sender_id: str, index: int) -> bool:
        nonlocal spent
        layers = allowed[sender_id]
        extra = layers[index].bps - layers[level[sender_id]].bps
        if spent + extra > budget:
            return False
        spent += extra
        level[sender_id] = index
        return True

    for source in sources:
        if source.on_stage and source.sender_id in level:
            top = len(allowed[source.sender_id]) - 1
            for index in range(top, level[source.sender_id], -1):
                if raise_to(source.sender_id, index):
                    break
    others = [s.sender_id for s in sources if not s.on_stage and s.sender_id in level]
    for _round in range(8):  # a source has at most a handful of layers
        raised = False
        for sender_id in others:
            nxt = level[sender_id] + 1
            if nxt < len(allowed[sender_id]) and raise_to(sender_id, nxt):
                raised = True
        if not raised:
            break
    return {
        s.sender_id: (allowed[s.sender_id][level[s.sender_id]].ssrc
                      if s.sender_id in level else None)
        for s in sources
    }


def total_rate(sources: Sequence[Source], choice: dict[str, int | None]) -> float:
    """Bit rate of a choice (what it would cost to send)."""
    rate = 0.0
    for source in sources:
        ssrc = choice.get(source.sender_id)
        for layer in source.layers:
            if layer.ssrc == ssrc:
                rate += layer.bps
    return rate
