"""Per-receiver bandwidth allocation over simulcast and temporal layers. Pure: no I/O, no clocks.

A source's *options* are its (spatial, temporal) layer pairs: each simulcast layer (SSRC) at
each of its temporal layers (VP8 TIDs, cumulative: T0 is a quarter of the frame rate with
Chromium's L1T3, T0+T1 half, all of them the full rate). The options a receiver may get
(:func:`allowed_layers`) are, in upgrade order, lowest first:

- every spatial layer within the receiver's max height for the source (unknown heights count
  as fitting; at least the lowest spatial layer), and within it every temporal layer whose
  frame rate is within the receiver's max frame rate (at least the spatial layer's lowest);
- ordered by spatial layer, then temporal layer: a source first gains frame rate at a
  resolution, then resolution;
- at or above ``PREFERRED_HEIGHT`` (360 px, Jitsi's on-stage preferred height) only the
  highest allowed frame rate of each spatial layer is an option, except for the source's
  lowest spatial layer. So a thin link gets 180p at 7.5 fps rather than nothing, and no
  upgrade ever trades frame rate for a picture of 360p or more. Jitsi's bridge applies this
  rule to the on-stage source only; here it holds for every source, because a large tile
  in a grid shows the same trade-off (a 360p picture at 7.5 fps looks worse than 180p at 30).

Then, in the order of Jitsi's bitrate controller (see REFERENCE.md, "Receiver constraints"):
sources arrive already in priority order — on-stage, then selected, then by recent speech, cut
at last-N. Within the receiver's bandwidth estimate:

1. every source, in order, gets its lowest option while the budget allows; a source that does
   not fit is suspended (the receiver shows its avatar), and so is everything after it: a lower
   priority source never displaces a higher one. The first source always keeps its lowest
   option: a receiver that gets no video at all sends no new estimate, so it could never
   climb back;
2. on-stage sources are raised as high as they allow and the budget covers;
3. the others are raised one option at a time, in priority order, round after round, until no
   raise fits.

Within an estimate, a spatial layer that has just started or resumed sending (its rate not
measured yet: ``Layer.settled``) is no option beyond a source's lowest one. Without an
estimate every source gets its preferred (highest allowed) option.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PREFERRED_HEIGHT = 360  # see the module docstring
# A measured frame rate this much above a receiver's max frame rate still fits it: rates are
# measured (the fake camera's "30 fps" reads 29-31) and the limits are the nominal ones.
FPS_TOLERANCE = 1.1

Pick = tuple[int, int]  # (SSRC, highest TID forwarded): what a receiver gets of a source


@dataclass(frozen=True, slots=True)
class Layer:
    """One option: a spatial layer (SSRC) up to a temporal layer (TID)."""

    ssrc: int
    height: int  # pixels (from its last keyframe); 0 when not known yet
    bps: float  # measured rate of this option (TIDs 0..tid of the SSRC) as sent now
    tid: int = 0  # highest temporal layer id included
    fps: float = 0.0  # measured frame rate of TIDs 0..tid; 0 when not known yet
    # False while the layer has just started or resumed sending: its rate is still being
    # measured (it reads from ~0 upwards), so it is no upgrade target yet (see allocate)
    settled: bool = True

    @property
    def pick(self) -> Pick:
        return self.ssrc, self.tid


@dataclass(frozen=True, slots=True)
class Source:
    sender_id: str
    layers: tuple[Layer, ...]  # live options: spatial layers lowest first, TIDs ascending
    max_height: int = -1  # the receiver's limit for this source, -1 = none
    on_stage: bool = False
    max_fps: float = -1.0  # the receiver's frame-rate limit for this source, -1 = none


def _fits_fps(layer: Layer, limit: float) -> bool:
    if limit < 0:
        return True
    if layer.fps <= 0:  # not measured yet: only the lowest temporal layer is safe
        return layer.tid == 0
    return layer.fps <= limit * FPS_TOLERANCE


def allowed_layers(source: Source) -> tuple[Layer, ...]:
    """The options a receiver may get of ``source``, in upgrade order (module docstring)."""
    if not source.layers:
        return ()
    spatial: dict[int, list[Layer]] = {}  # by SSRC, in the order given
    for layer in source.layers:
        spatial.setdefault(layer.ssrc, []).append(layer)
    groups = [sorted(g, key=lambda layer: layer.tid) for g in spatial.values()]
    if source.max_height >= 0:
        groups = [g for g in groups if g[0].height <= source.max_height] or groups[:1]
    out: list[Layer] = []
    for index, group in enumerate(groups):
        fitting = [layer for layer in group if _fits_fps(layer, source.max_fps)] or group[:1]
        if index > 0 and fitting[-1].height >= PREFERRED_HEIGHT:
            fitting = fitting[-1:]
        out.extend(fitting)
    return tuple(out)


def allocate(sources: Sequence[Source], budget: float | None) -> dict[str, Pick | None]:
    """The option (SSRC, TID) each source gets, None for a suspended source. Sources with no
    live layer are left out: there is nothing to allocate (and nothing to suspend) yet."""
    sources = [s for s in sources if s.layers]
    allowed = {s.sender_id: allowed_layers(s) for s in sources}
    if budget is None:
        return {sid: layers[-1].pick for sid, layers in allowed.items()}
    # Within a budget, an option whose rate is still being measured would look nearly free:
    # a 720p layer that resumed 0.1 s ago reads a few kbit/s, and a receiver on a 300 kbit/s
    # link was switched to it (tests/browser/test_bandwidth.py lost 5 packets of 390 that
    # way). Such options wait until they settle; the lowest stays, so a new source still
    # shows at once.
    allowed = {sid: layers[:1] + tuple(layer for layer in layers[1:] if layer.settled)
               for sid, layers in allowed.items()}
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
    rounds = max((len(layers) for layers in allowed.values()), default=0)
    for _round in range(rounds):  # each round raises every source by at most one option
        raised = False
        for sender_id in others:
            nxt = level[sender_id] + 1
            if nxt < len(allowed[sender_id]) and raise_to(sender_id, nxt):
                raised = True
        if not raised:
            break
    return {
        s.sender_id: (allowed[s.sender_id][level[s.sender_id]].pick
                      if s.sender_id in level else None)
        for s in sources
    }


def total_rate(sources: Sequence[Source], choice: dict[str, Pick | None]) -> float:
    """Bit rate of a choice (what it would cost to send)."""
    rate = 0.0
    for source in sources:
        pick = choice.get(source.sender_id)
        for layer in source.layers:
            if layer.pick == pick:
                rate += layer.bps
    return rate
