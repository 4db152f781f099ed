"""A moderator's mute is enforced by the bridge, and lifted when the participant unmutes."""

from __future__ import annotations

import asyncio

import pytest

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(90)


async def test_moderator_mute_stops_forwarding_until_self_unmute() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        mod, talker = Peer("mod", server.ws, "mm", shade=30), Peer("talker", server.ws, "mm")
        try:
            await mod.join()
            await talker.join()

            def audio_from_talker() -> int:
                counter = mod.frames_from(talker.id)
                return counter.audio_frames if counter else 0

            assert await wait_until(lambda: audio_from_talker() > 20, timeout=20)
            await mod.request({"type": "mute-participant", "participant": talker.id,
                               "kind": "audio"})
            assert await wait_until(
                lambda: any(m.get("type") == "muted-by-moderator" for m in talker.messages), 5
            )
            await asyncio.sleep(0.5)
            frozen = audio_from_talker()
            await asyncio.sleep(1.5)
            # aiortc's jitter buffer may release a frame or two already in flight
            assert audio_from_talker() <= frozen + 2
            endpoint = server.bridge.find_endpoint(next(iter(server.bridge.conferences)),
                                                   talker.id)
            assert endpoint is not None
            assert endpoint.stats.dropped.get("blocked-by-moderator", 0) > 20
            # Video still flows: only audio was muted.
            video = mod.frames_from(talker.id).video_frames  # type: ignore[union-attr]
            assert await wait_until(
                lambda: mod.frames_from(talker.id).video_frames > video + 5, 5  # type: ignore[union-attr]
            )
            await talker.request({"type": "mute", "audioMuted": False})
            assert await wait_until(lambda: audio_from_talker() > frozen + 20, timeout=10)
        finally:
            await mod.close()
            await talker.close()
