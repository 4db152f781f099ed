"""Loss between a sender and the bridge is repaired: the bridge NACKs the sender (RFC 4585
§6.2.1), a real aiortc sender answers on its RTX stream (RFC 4588) and the receiver gets the
packets the uplink lost."""

from __future__ import annotations

import pytest

from tertulia.bridge.endpoint import Endpoint
from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(90)
DROP_EVERY = 20


async def test_packets_lost_on_the_uplink_are_nacked_and_retransmitted() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        sender = Peer("sender", server.ws, "uplink", shade=200)
        receiver = Peer("receiver", server.ws, "uplink", shade=40)
        try:
            await sender.join()
            await receiver.join()
            bridge = server.bridge
            conference = next(iter(bridge.conferences))
            up = bridge.find_endpoint(conference, sender.id)
            down = bridge.find_endpoint(conference, receiver.id)
            assert up is not None and down is not None
            video = up.sending["video"]
            assert video.nack and video.rtx_payload_type is not None
            on_rtp = bridge._on_rtp
            seen = {"video": 0, "dropped": 0}

            def lossy(endpoint: Endpoint, data: bytes, arrival: float | None = None) -> None:
                # Fault injection on the way in: every 20th original video packet of the
                # sender is lost (SRTP leaves the payload type in clear); retransmissions
                # (the RTX payload type) pass.
                if endpoint is up and data[1] & 0x7F == video.payload_type:
                    seen["video"] += 1
                    if seen["video"] % DROP_EVERY == 0:
                        seen["dropped"] += 1
                        return
                on_rtp(endpoint, data, arrival)

            bridge._on_rtp = lossy

            def enough() -> bool:
                frames = receiver.frames_from(sender.id)
                return (frames is not None and frames.video_frames > 120
                        and up.stats.rtx_received >= seen["dropped"] - 2
                        and seen["dropped"] >= 10)

            assert await wait_until(enough, timeout=40), (seen, up.stats)
            stats = up.stats
            assert stats.nacks_sent > 0 and stats.nack_requested >= seen["dropped"] - 2
            # aiortc answers on its RTX SSRC, the one its offer's FID group names
            assert stats.rtx_received >= seen["dropped"] - 2
            assert up.rtx_media and set(up.rtx_media.values()) == {video.current_ssrc}
            assert stats.uplink_repaired >= stats.rtx_received
            totals = bridge.stats()  # what operators see (docs/operations.md)
            assert totals["uplink_nacks_sent"] >= stats.nacks_sent > 0
            assert totals["uplink_packets_repaired"] >= stats.rtx_received
            # The receiver got (almost) every packet the sender sent: its own loss count on
            # the slot's video (RFC 3550 §6.4.1 cumulative lost, as aiortc reports it) stays
            # far below what the uplink lost.
            slot = receiver.slot_map.index(sender.id)
            assert receiver.pc is not None
            transceiver = receiver.pc.getTransceivers()[2 + 1 + 2 * slot]  # its slot's video
            # aiortc 1.16's getStats files the slot's media and RTX streams under one id (the
            # RTX one wins), so read the media stream's RFC 3550 counters it keeps
            streams = transceiver.receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
            media_stream = streams[down.slots[slot][1].ssrc]
            assert media_stream.packets_received > 100
            assert media_stream.packets_lost <= 2, (media_stream.packets_lost, seen)
        finally:
            await sender.close()
            await receiver.close()
