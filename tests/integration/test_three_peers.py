"""Three aiortc peers meet through the real signalling (WebSocket) and the real bridge (UDP)."""

from __future__ import annotations

import asyncio

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
