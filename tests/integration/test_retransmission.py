"""Loss between bridge and receiver is repaired with RTX (RFC 4588) from the bridge's history."""

from __future__ import annotations

import pytest

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(90)


async def test_lost_video_packets_are_retransmitted_with_rtx() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        sender = Peer("sender", server.ws, "lossy", shade=200)
        receiver = Peer("receiver", server.ws, "lossy", shade=40)
        try:
            await sender.join()
            await receiver.join()
            bridge = server.bridge
            endpoint = bridge.find_endpoint(next(iter(bridge.conferences)), receiver.id)
            assert endpoint is not None
            video_ssrcs = {pair[1].ssrc for pair in endpoint.slots}
            transmit = bridge._transmit
            seen = {"video": 0, "dropped": 0}

            def lossy(data: bytes, addr: tuple[str, int]) -> None:
                # Drop every 15th original video packet to the receiver (SRTP leaves the
                # header, and so the SSRC, in clear).
                if addr == endpoint.addr and int.from_bytes(data[8:12], "big") in video_ssrcs:
                    seen["video"] += 1
                    if seen["video"] % 15 == 0:
                        seen["dropped"] += 1
                        return
                transmit(data, addr)

            endpoint._transmit = lossy
            assert await wait_until(
                lambda: (receiver.frames_from(sender.id) or 0)
                and receiver.frames_from(sender.id).video_frames > 100,  # type: ignore[union-attr]
                timeout=30,
            ), (seen, endpoint.stats)
            assert seen["dropped"] >= 5
            stats = endpoint.stats
            assert stats.nacks_received > 0
            assert stats.rtx_sent > 0 and stats.retransmissions >= stats.rtx_sent
        finally:
            await sender.close()
            await receiver.close()
