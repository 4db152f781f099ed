"""Three aiortc peers meet through the real signalling (WebSocket) and the real bridge (UDP)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _loopback() -> None:
    allow_loopback_candidates()


async def test_three_peers_see_and_hear_each_other() -> None:
    async with running_server() as server:
        peers = [
            Peer(name, server.ws, "integration-room", shade=shade, frequency=freq)
            for name, shade, freq in (("ana", 60, 330.0), ("bo", 120, 440.0), ("cy", 200, 550.0))
        ]
        try:
            for peer in peers:
                await peer.join()
            ids = {p.id for p in peers}

            def everyone_decodes(min_frames: int) -> bool:
                for peer in peers:
                    for other in ids - {peer.id}:
                        counter = peer.frames_from(other)
                        if counter is None or counter.video_frames < min_frames:
                            return False
                        if counter.audio_frames < min_frames:
                            return False
                return True

            assert await wait_until(lambda: everyone_decodes(10), timeout=30), [
                (p.name, p.slot_map, {s: vars(c) for s, c in p.counters.items()}) for p in peers
            ]
            for peer in peers:
                # Each receives exactly the two others, never itself.
                assert sorted(x for x in peer.slot_map if x) == sorted(ids - {peer.id})
                for other in ids - {peer.id}:
                    counter = peer.frames_from(other)
                    assert counter is not None
                    assert counter.last_video_size == (160, 120)
                    assert counter.audio_energy > 100, "received audio is silence"

            # All media went through the bridge: it forwarded packets for all three.
            stats = server.bridge.stats()
            assert stats["endpoints_connected"] == 3
            assert stats["packets_out"] > 0
            assert stats["endpoints_sending_audio"] == stats["endpoints_sending_video"] == 3
            assert stats["largest_conference"] == 3 and stats["total_ice_succeeded"] == 3
            # ... and /metrics says the same about this meeting.
            async with aiohttp.ClientSession() as http, http.get(server.http + "/metrics") as r:
                assert r.status == 200
                metrics = await r.text()
            for line in (
                "tertulia_bridge_endpoints 3.0",
                "tertulia_bridge_conferences 1.0",
                "tertulia_bridge_ice_succeeded_total 3.0",
                "tertulia_signal_participants 3.0",
                "tertulia_signal_joins_total 3.0",
                "tertulia_signal_rooms 1.0",
            ):
                assert line in metrics.splitlines(), line

            # One leaves cleanly; the two others drop it within 5 s and keep decoding each other.
            leaver, stay = peers[0], peers[1:]
            await leaver.leave()
            assert await wait_until(
                lambda: all(leaver.id not in p.present and leaver.id not in p.slot_map
                            for p in stay),
                timeout=5,
            )
            before = {p.name: p.frames_from(stay[1 - i].id).video_frames  # type: ignore[union-attr]
                      for i, p in enumerate(stay)}
            await asyncio.sleep(2)
            for i, p in enumerate(stay):
                counter = p.frames_from(stay[1 - i].id)
                assert counter is not None
                assert counter.video_frames > before[p.name] + 5
        finally:
            for peer in peers:
                await peer.close()
