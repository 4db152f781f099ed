"""Repairing loss between a sender and the bridge: NACKs to the sender, RTX from it.

A packet lost on a sender's uplink would be lost for every receiver: their NACKs to the bridge
find nothing in its history. So the bridge tracks what each sender's streams miss
(rtp/nack_requester.py) and asks the sender for it with generic NACKs (RFC 4585 §6.2.1), as
Jitsi's bridge does (RetransmissionRequester); the sender answers on its RTX stream
(RFC 4588, rtp/rtx.py) or, without RTX, by sending the packet again as it was. Only for
m-lines on which the sender negotiated ``nack``.
"""

from __future__ import annotations

from tertulia.bridge.endpoint import Endpoint, SendingMedia
from tertulia.bridge.rtp.nack_requester import SsrcNacks
from tertulia.bridge.rtp.packet import payload_offset
from tertulia.bridge.rtp.rtcp import GenericNack, ReceiverReport, RtcpPacket
from tertulia.bridge.rtp.rtx import rtx_payload_size, unwrap_rtx

__all__ = ["on_media", "repair", "send_nacks"]


def on_media(sender: Endpoint, media: SendingMedia, ssrc: int, seq: int, now: float,
             bridge_ssrc: int, rtx: bool) -> bool:
    """Record an arrival on a NACK-negotiated m-line; False when it is an RTX packet that
    repairs nothing (a redundant probe, or a retransmission after the original): drop it.
    A new gap is asked for at once."""
    tracker = media.nacks.get(ssrc)
    if tracker is None:
        tracker = media.nacks[ssrc] = SsrcNacks()
    if rtx and seq not in tracker.missing:
        sender.stats.rtx_duplicates += 1
        return False
    repaired = tracker.repaired
    if tracker.on_packet(seq, now):
        send_nacks(sender, bridge_ssrc, now)
    elif tracker.repaired != repaired:
        sender.stats.uplink_repaired += 1
    return True


def repair(sender: Endpoint, plain: bytes, pt: int, ssrc: int
           ) -> tuple[bytes, SendingMedia] | None:
    """The original packet inside an RTX packet from ``sender`` on RTX SSRC ``ssrc``, and the
    media it belongs to; None (counted) for a probe or a packet that does not fit."""
    media_ssrc = sender.rtx_media[ssrc]
    media = sender.media_by_ssrc.get(media_ssrc)
    if media is None or pt != media.rtx_payload_type:
        sender.stats.drop("rtx-unknown-stream")
        return None
    payload_at = payload_offset(plain)
    size = rtx_payload_size(plain, payload_at)
    if size == 0:
        # Padding only: a bandwidth probe (Chrome sends them on the RTX SSRC once RTX is
        # negotiated). Its arrival was recorded for the uplink estimate; nothing to forward.
        sender.stats.padding_received += 1
        return None
    original = unwrap_rtx(plain, payload_at, media_ssrc, media.payload_type)
    if original is None:
        sender.stats.drop("malformed-rtx")
        return None
    return original, media


def send_nacks(sender: Endpoint, bridge_ssrc: int, now: float) -> None:
    """Send the NACKs now due to ``sender`` in one compound RTCP packet (RFC 3550 §6.1: an
    empty RR first). Retries are spaced by the sender's round-trip time when known."""
    if not sender.connected:
        return
    rtt = sender.rtt.rtt
    nacks: list[RtcpPacket] = []
    requested = 0
    for media in sender.sending.values():
        if not media.nacks:
            continue
        for ssrc, tracker in media.nacks.items():
            lost = tracker.due(now, rtt)
            if lost:
                nacks.append(GenericNack(sender_ssrc=bridge_ssrc, media_ssrc=ssrc, lost=lost))
                requested += len(lost)
    if nacks:
        sender.send_rtcp([ReceiverReport(ssrc=bridge_ssrc, reports=[]), *nacks])
        sender.stats.nacks_sent += len(nacks)
        sender.stats.nack_requested += requested
