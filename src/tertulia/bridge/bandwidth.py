"""Bandwidth glue between a conference and the pure pieces in bwe.py, sendside.py and
allocation.py.

Per receiver, every tick: build the prioritised sources it wants (last-N order, max heights),
allocate layers within its estimate, suspend what does not fit, and say what rate it would
take to do better. Its estimate is the bridge's own send-side one (sendside.py) once the
receiver's transport-wide feedback arrives, else the receiver's REMB (bwe.py). Every few tens
of milliseconds: probe clusters of padding towards receivers whose layers are held back
(send-side only), and transport-wide feedback to senders about what arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tertulia.bridge.allocation import Pick, Source, allocate, total_rate
from tertulia.bridge.bwe import PROBE_EVERY, PROBE_SECONDS, probe_rate
from tertulia.bridge.rtp.rtcp import ReceiverReport, RtcpPacket
from tertulia.bridge.temporal_layers import layer_options

if TYPE_CHECKING:
    from tertulia.bridge.conference import Conference
    from tertulia.bridge.endpoint import Endpoint

# An upgrade must fit the estimate with this margin; a choice already made is kept while it
# fits the estimate itself. The gap is the hysteresis that stops layers flapping.
UPGRADE_HEADROOM = 1.15
# Layer rates are measured on the plain RTP the sender sends; on the receiver's link each
# packet also carries the SRTP tag and IP/UDP headers (~4% at video packet sizes).
VIDEO_OVERHEAD = 1.05
# With REMB (receivers without transport-cc), probes above the estimate (bwe.PROBE_GAIN) are
# off: on the throttled-link test they pushed a full link into a standing queue and the
# receiver's estimate collapsed, and the bridge cannot tell what a probe found.
PROBE_ABOVE_ESTIMATE = False
# Padding below the estimate is off too with REMB: on the throttled-link test it kept a 300
# kbit/s link full (the receiver's estimate covers its video, not the audio beside it) and
# video stalled for seconds; without it, the receiver's own estimator recovers more slowly
# but cleanly.
PADDING = False
# With send-side estimation probing is on, as clusters only (SendSideEstimate.probe_tick):
# each one's result is measured from the feedback, so a probe into a full link just confirms
# the estimate, and one into a free link lifts it at once. No padding between clusters: the
# delay-based estimate sees everything sent (audio included) and needs no filler to grow.
# A probe aims this much above the estimate an upgrade to the ideal layers needs (it is capped
# at twice the estimate anyway: sendside.PROBE_GAIN): a result a little under its target (the
# 95% rule) still allows the upgrade, and the estimate it leaves covers the swings of a
# 720p layer's rate around its mean (key frames: +30-50% for a second) so that a receiver on
# a good link does not drop a layer at each one. With 1.1 the estimate stayed at about the
# layer's mean and the receiver alternated between 720p and 360p (tests/browser/
# test_bandwidth.py's steady receiver).
PROBE_MARGIN = 1.5


def estimate_of(receiver: Endpoint, now: float) -> tuple[float | None, str]:
    """The receiver's downlink estimate (bit/s) and its source: "twcc" once its transport-
    wide feedback arrives and the estimate has found its level (SendSideEstimate.ready; until
    then none), else "remb" (None, "none" when there is no estimate at all)."""
    sendside = receiver.sendside
    if sendside is not None and sendside.feedbacks:
        return (sendside.value(), "twcc") if sendside.ready(now) else (None, "none")
    value = receiver.estimate.value(now)
    return value, "remb" if value is not None else "none"


def pace(receiver: Endpoint, now: float) -> None:
    """Set the receiver's pacing rate from its send-side estimate once that has found its
    level (bridge/pacer.py), and never below what its allocation commits the bridge to send
    (its audio and the layers it gets; libwebrtc paces at the larger of its target and its
    minimum allocated rate too): a pacer slower than that would only build a queue. REMB
    estimates cover only the video a receiver gets, so those receivers are not paced."""
    sendside = receiver.sendside
    if sendside is not None and sendside.feedbacks and sendside.ready(now):
        receiver.pacer.set_estimate(max(sendside.value(), receiver.committed_bps))
    else:
        receiver.pacer.set_estimate(None)


def sources_for(conference: Conference, receiver: Endpoint) -> list[Source]:
    """The camera sources ``receiver`` wants, highest priority first, with their live
    (spatial, temporal) options."""
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
        constraints = receiver.constraints
        out.append(
            Source(sender_id, layer_options(media, ssrcs, conference.now),
                   constraints.max_height(sender_id), sender_id in on_stage,
                   constraints.max_frame_rate(sender_id))
        )
    return out


def allocate_receiver(conference: Conference, receiver: Endpoint, now: float) -> bool:
    """Re-run the allocation for one receiver; returns whether its suspended set changed."""
    sources = sources_for(conference, receiver)
    estimate, source = estimate_of(receiver, now)
    audio = receiver.audio_rate.bps
    if estimate is None:
        video_budget = None
    elif source == "twcc":  # covers all the bridge sends it: audio comes off first
        video_budget = max(estimate - audio, 0.0) / VIDEO_OVERHEAD
    else:
        # Receivers estimate over the video they get (abs-send-time is on video only), so
        # the estimate is a budget for video; audio is not taken off it (it would count twice).
        video_budget = estimate / VIDEO_OVERHEAD
    previous = receiver.allocation
    choice = allocate(
        sources, video_budget / UPGRADE_HEADROOM if video_budget is not None else None
    )
    if (
        video_budget is not None
        and previous
        and set(previous) == set(choice)
        and _live(sources, previous)
        and total_rate(sources, previous) <= video_budget
        and total_rate(sources, previous) >= total_rate(sources, choice)
    ):
        choice = previous  # still fits: keep it rather than step down inside the margin
    receiver.allocation = choice
    # Padding shares the link with audio too: count it in what is being sent.
    ideal_video = total_rate(sources, allocate(sources, None)) * VIDEO_OVERHEAD
    ideal = ideal_video + audio
    sending = total_rate(sources, choice) * VIDEO_OVERHEAD + audio
    receiver.committed_bps = sending
    sendside = receiver.sendside
    if sendside is not None and sendside.feedbacks:  # probing (pad()): send-side only
        starting = not sendside.ready(now)  # the first probes find the level
        # Also probe while the receiver gets all it wants but with less than the upgrade
        # headroom under its estimate: past a measured level the estimate rises only through
        # probes (gcc.py), and a layer's rate swings with key frames, so an estimate left at
        # the layer's mean drops the layer at each swing (a receiver on a free link went
        # from 360p to 180p for 0.6 s when its estimate had stayed at 590 kbit/s).
        thin = estimate is not None and sending * UPGRADE_HEADROOM > estimate
        receiver.probe_wanted = (
            (ideal_video * UPGRADE_HEADROOM + audio) * PROBE_MARGIN
            if ideal > sending or starting or thin else None
        )
    else:
        receiver.probe_wanted = None
    if sendside is not None and sendside.feedbacks:
        pass  # probe clusters, from pad()
    elif PROBE_ABOVE_ESTIMATE and ideal > sending and now >= receiver.next_probe:
        receiver.probe_until = now + PROBE_SECONDS
        receiver.next_probe = now + PROBE_EVERY
    if sendside is None or not sendside.feedbacks:
        receiver.padding_bps = (
            probe_rate(estimate, sending, ideal, now < receiver.probe_until) if PADDING else 0.0
        )
    pace(receiver, now)
    suspended = {sender_id for sender_id, pick in choice.items() if pick is None}
    if suspended != receiver.bwe_suspended:
        receiver.bwe_suspended = suspended
        return True
    return False


def _live(sources: list[Source], choice: dict[str, Pick | None]) -> bool:
    """Whether every pick of ``choice`` is a live option whose rate is measured (a choice
    made without an estimate may hold a layer that has just started)."""
    layers = {s.sender_id: {layer.pick for layer in s.layers if layer.settled}
              for s in sources}
    return all(pick is None or pick in layers.get(sid, ()) for sid, pick in choice.items())


def pad(receiver: Endpoint, elapsed: float, now: float) -> None:
    """Send the padding owed for ``elapsed`` seconds at the receiver's probing rate; with
    send-side estimation, what the current probe cluster still owes."""
    sendside = receiver.sendside
    if sendside is not None and sendside.feedbacks:
        owed = sendside.probe_tick(receiver.probe_wanted if receiver.connected else None, now)
        probe = sendside.probe
        receiver.padding_bps = probe.target if probe is not None else 0.0
        _send_padding(receiver, owed, now)
        sendside.probe_sent(now)
        return
    if receiver.padding_bps <= 0 or not receiver.connected:
        receiver.padding_credit = 0.0
        return
    receiver.padding_credit = min(
        receiver.padding_credit + receiver.padding_bps * elapsed / 8, 20_000.0
    )
    receiver.padding_credit -= _send_padding(receiver, int(receiver.padding_credit), now)


def _send_padding(receiver: Endpoint, budget: int, now: float) -> int:
    """Up to ``budget`` bytes of RTX padding over the receiver's started video slots."""
    streams = [pair[1] for pair in receiver.slots if pair[1].started]
    sent = 0
    for _round in range(16):  # each call resends at most the newest 8 packets of a stream
        before = sent
        for stream in streams:
            if budget - sent < 200:
                return sent
            sent += receiver.send_padding(stream, budget - sent, now)
        if sent == before:
            break
    return sent


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
