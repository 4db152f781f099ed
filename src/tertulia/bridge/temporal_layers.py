"""Glue between a sender's measured temporal layers (rtp/temporal.py), the allocation's
(spatial, temporal) options (allocation.py) and each receiver's temporal filter
(rtp/projection.py, held by its SlotStream).

Pure: reads the state it is given, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tertulia.bridge.allocation import Layer

if TYPE_CHECKING:
    from tertulia.bridge.endpoint import Endpoint, SendingMedia


def layer_options(media: SendingMedia, ssrcs: Sequence[int], now: float) -> tuple[Layer, ...]:
    """The options of a camera: each live SSRC (lowest first) at each of its temporal layers
    (cumulative rates). An SSRC whose packets carry no TID has one option: all of it. A
    simulcast layer that started or resumed less than SETTLE_TIME ago is not ``settled``."""
    out: list[Layer] = []
    for ssrc in ssrcs:
        height = media.layer_height.get(ssrc, 0)
        settled = not media.layered or media.settled(ssrc, now)
        meter = media.temporal.get(ssrc)
        if meter is None or meter.top == 0:
            rate = media.rate.get(ssrc)
            fps = meter.fps[0] if meter is not None else 0.0
            bps = rate.bps if rate is not None else 0.0
            out.append(Layer(ssrc, height, bps, 0, fps, settled))
            continue
        for tid, (bps, fps) in enumerate(meter.cumulative()):
            out.append(Layer(ssrc, height, bps, tid, fps, settled))
    return tuple(out)


def max_tid(receiver: Endpoint, media: SendingMedia, sender_id: str) -> int | None:
    """The highest TID ``receiver`` should get of ``sender_id``'s camera: the allocation's
    pick, or None (everything) when the pick is the top temporal layer, when there is no
    pick, and for anything but the camera (constraints and allocation are about cameras)."""
    if media.role != "video":
        return None
    pick = receiver.allocation.get(sender_id)
    if pick is None:
        return None
    ssrc, tid = pick
    meter = media.temporal.get(ssrc)
    return tid if meter is not None and tid < meter.top else None
