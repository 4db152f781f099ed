"""Bandwidth glue between a conference and the pure pieces in bwe.py and allocation.py.

Per receiver, every tick: build the prioritised sources it wants (last-N order, max heights),
allocate layers within its estimate, suspend what does not fit, and set a padding rate that
lets the estimate grow while layers are held back. Per sender, every few tens of
milliseconds: transport-wide feedback about what arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tertulia.bridge.allocation import Layer, Source, allocate, total_rate
from tertulia.bridge.bwe import probe_rate
from tertulia.bridge.rtp.rtcp import ReceiverReport, RtcpPacket

if TYPE_CHECKING:
    from tertulia.bridge.conference import Conference
    from tertulia.bridge.endpoint import Endpoint

# An upgrade must fit the estimate with this margin; a choice already made is kept while it
# fits the estimate itself. The gap is the hysteresis that stops layers flapping.
UPGRADE_HEADROOM = 1.15


def sources_for(conference: Conference, receiver: Endpoint) -> list[Source]:
    """The camera sources ``receiver`` wants, highest priority first, with live layers."""
    out: list[Source] = []
    on_stage = set(receiver.constraints.on_stage)
    for sender_id in receiver.wanted_videos:
        sender = conference.endpoints.get(sender_id)
        media = sender.sending.get("video") if sender else None
        if media is None:
            continue
        if media.layered:
            ssrcs = media.layers(conference.now)
        else:
            ssrcs = [media.current_ssrc] if media.current_ssrc is not None else []
        layers = tuple(
            Layer(
                ssrc,
                media.layer_height.get(ssrc, 0),
                media.rate[ssrc].bps if ssrc in media.rate else 0.0,
            )
            for ssrc in ssrcs
        )
        out.append(
            Source(sender_id, layers, receiver.constraints.max_height(sender_id),
                   sender_id in on_stage)
        )
    return out


def allocate_receiver(conference: Conference, receiver: Endpoint, now: float) -> bool:
    """Re-run the allocation for one receiver; returns whether its suspended set changed."""
    sources = sources_for(conference, receiver)
    estimate = receiver.estimate.value(now)
    previous = receiver.allocation
    choice = allocate(sources, estimate / UPGRADE_HEADROOM if estimate is not None else None)
    if (
        estimate is not None
        and previous
        and set(previous) == set(choice)
        and _live(sources, previous)
        and total_rate(sources, previous) <= estimate
        and total_rate(sources, previous) >= total_rate(sources, choice)
    ):
        choice = previous  # still fits: keep it rather than step down inside the margin
    receiver.allocation = choice
    ideal = total_rate(sources, allocate(sources, None))
    receiver.padding_bps = probe_rate(estimate, total_rate(sources, choice), ideal)
    suspended = {sender_id for sender_id, ssrc in choice.items() if ssrc is None}
    if suspended != receiver.bwe_suspended:
        receiver.bwe_suspended = suspended
        return True
    return False


def _live(sources: list[Source], choice: dict[str, int | None]) -> bool:
    layers = {s.sender_id: {layer.ssrc for layer in s.layers} for s in sources}
    return all(ssrc is None or ssrc in layers.get(sid, ()) for sid, ssrc in choice.items())


def pad(receiver: Endpoint, elapsed: float, now: float) -> None:
    """Send the padding owed for ``elapsed`` seconds at the receiver's probing rate."""
    if receiver.padding_bps <= 0 or not receiver.connected:
        receiver.padding_credit = 0.0
        return
    receiver.padding_credit = min(
        receiver.padding_credit + receiver.padding_bps * elapsed / 8, 20_000.0
    )
    streams = [pair[1] for pair in receiver.slots if pair[1].started]
    for stream in streams:
        if receiver.padding_credit < 200:
            break
        receiver.padding_credit -= receiver.send_padding(
            stream, int(receiver.padding_credit), now
        )


def transport_feedback(sender: Endpoint, bridge_ssrc: int, now: float) -> None:
    """Report what arrived from ``sender`` since the last feedback (uplink estimation)."""
    if sender.twcc_ext_id is None or not sender.connected:
        return
    media_ssrc = next(
        (m.current_ssrc for m in sender.sending.values() if m.current_ssrc is not None), 0
    )
    feedback = sender.twcc.feedback(bridge_ssrc, media_ssrc, now)
    if feedback:
        packets: list[RtcpPacket] = [ReceiverReport(ssrc=bridge_ssrc, reports=[])]
        packets.extend(feedback)
        sender.send_rtcp(packets)
        sender.stats.twcc_sent += len(feedback)
