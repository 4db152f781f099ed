"""A conference's RTCP from its endpoints: reports (loss, round-trip time, lip sync),
key frame requests, NACKs and bandwidth feedback (REMB, transport-wide). A mixin of
Conference (conference.py), which holds the endpoints and the fan-out these methods use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tertulia.bridge import bandwidth
from tertulia.bridge.endpoint import Endpoint
from tertulia.bridge.rtp.rtcp import (
    Fir,
    GenericNack,
    Pli,
    ReceiverReport,
    Remb,
    RtcpPacket,
    Sdes,
    SenderReport,
    TransportCC,
)

if TYPE_CHECKING:
    from tertulia.bridge.subscription import SlotStream

# RTCP SDES item type for CNAME (RFC 3550 §6.5.1).
SDES_CNAME = 1


class ConferenceRtcp:
    """The RTCP half of a conference."""

    endpoints: dict[str, Endpoint]
    _fanout: dict[str, dict[str, list[tuple[Endpoint, SlotStream]]]]

    if TYPE_CHECKING:  # Conference's

        def request_keyframe(
            self, sender: Endpoint, now: float, role: str = "video", ssrc: int | None = None
        ) -> bool: ...

    # -- RTCP -----------------------------------------------------------------------------

    def on_rtcp(self, endpoint: Endpoint, packets: list[RtcpPacket], now: float) -> None:
        for packet in packets:
            if isinstance(packet, (SenderReport, ReceiverReport)):
                self._loss_reports(endpoint, packet, now)
            if isinstance(packet, SenderReport):
                self._forward_sender_report(endpoint, packet, now)
            elif isinstance(packet, Pli):
                self._keyframe_for_slot(endpoint, packet.media_ssrc, now)
            elif isinstance(packet, Fir):
                for ssrc, _seqnr in packet.entries:
                    self._keyframe_for_slot(endpoint, ssrc, now)
            elif isinstance(packet, TransportCC):
                # feedback on what the bridge sends it (send-side estimation, sendside.py);
                # ignored for a receiver that did not negotiate it
                if endpoint.sendside is not None:
                    endpoint.stats.twcc_received += 1
                    endpoint.sendside.on_feedback(packet, now)
                    bandwidth.pace(endpoint, now)
                else:
                    endpoint.stats.drop("twcc-feedback-not-negotiated")
            elif isinstance(packet, Remb):
                endpoint.stats.remb_received += 1
                endpoint.estimate.on_remb(packet.bitrate, now)
            elif isinstance(packet, GenericNack):
                endpoint.stats.nacks_received += 1
                stream = endpoint.stream_by_ssrc.get(packet.media_ssrc)
                if stream is not None:
                    endpoint.retransmit(stream, list(packet.lost), now)

    def _loss_reports(
        self, receiver: Endpoint, report: SenderReport | ReceiverReport, now: float
    ) -> None:
        """Loss the receiver reports on video we send it feeds its estimate (bwe.py)."""
        worst: float | None = None
        for block in report.reports:
            receiver.rtt.on_block(block.lsr, block.dlsr, now)
            stream = receiver.stream_by_ssrc.get(block.ssrc)
            if stream is not None and stream.kind == "video":
                fraction = block.fraction_lost / 256  # RFC 3550 §6.4.1
                worst = fraction if worst is None else max(worst, fraction)
        if worst is not None:
            receiver.estimate.on_loss(worst, now)

    def _keyframe_for_slot(self, receiver: Endpoint, slot_ssrc: int, now: float) -> None:
        receiver.stats.plis_received += 1
        stream = receiver.stream_by_ssrc.get(slot_ssrc)
        if stream is None or stream.source is None:
            return
        sender = self.endpoints.get(stream.source[0])
        if sender is not None:
            # the layer this receiver gets (or waits for), not whichever layer the sender's
            # media names: a key frame of another layer would not unfreeze this receiver
            wanted = stream.target if stream.waiting_for_keyframe else stream.source[1]
            self.request_keyframe(sender, now, stream.role, wanted)

    def _forward_sender_report(self, sender: Endpoint, report: SenderReport, now: float
                               ) -> None:
        """Regenerate the sender's SR for each receiver, in that receiver's stream terms.

        The NTP/RTP timestamp pair (RFC 3550 §6.4.1) is what lets a receiver line up audio
        and video of one participant; the RTP timestamp is shifted by the slot's offset and
        the counts are the slot stream's own.
        """
        media = sender.media_by_ssrc.get(report.ssrc)
        if media is None:
            return
        for receiver, stream in self._fanout.get(sender.id, {}).get(media.role, []):
            if not stream.started or not receiver.connected or stream.source is None:
                continue
            if stream.source[1] != report.ssrc:
                continue  # a report about a layer (or old SSRC) this receiver does not get
            sr = SenderReport(
                ssrc=stream.ssrc,
                ntp_timestamp=report.ntp_timestamp,
                rtp_timestamp=stream.translate_rtp_timestamp(report.rtp_timestamp),
                packet_count=stream.packets_sent & 0xFFFFFFFF,
                octet_count=stream.octets_sent & 0xFFFFFFFF,
                reports=[],
            )
            sdes = Sdes(chunks=[(stream.ssrc, [(SDES_CNAME, stream.cname.encode())])])
            receiver.send_rtcp([sr, sdes])
            receiver.rtt.on_sender_report(report.ntp_timestamp, now)
