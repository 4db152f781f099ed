"""Screen share: a second sending video, shown in every other participant's screen slot."""

from __future__ import annotations

import asyncio

import pytest

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(90)


async def test_screen_share_reaches_others_and_stops() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        sharer = Peer("sharer", server.ws, "screens", screen=True, shade=60)
        viewer = Peer("viewer", server.ws, "screens", screen=True, shade=160)
        try:
            await sharer.join()
            await viewer.join()
            # Camera flows both ways; nobody shares yet, so the screen slots stay empty.
            assert await wait_until(
                lambda: (viewer.frames_from(sharer.id) or 0)
                and viewer.frames_from(sharer.id).video_frames > 5,  # type: ignore[union-attr]
                timeout=20,
            )
            assert viewer.screen_frames == 0 and viewer.screen_occupant is None
            await sharer.share_screen(True)
            assert await wait_until(lambda: viewer.screen_occupant == sharer.id, timeout=5)
            assert await wait_until(lambda: viewer.screen_frames > 5, timeout=15)
            assert viewer.screen_size == (320, 180)  # the screen track, not the camera
            assert sharer.screen_occupant is None  # nobody is shown their own screen
            assert viewer.sharing == [sharer.id] and sharer.sharing == [sharer.id]
            cam = viewer.frames_from(sharer.id)
            assert cam is not None and cam.last_video_size == (160, 120)
            await sharer.share_screen(False)
            assert await wait_until(lambda: viewer.screen_occupant is None, timeout=5)
            await asyncio.sleep(1.0)
            stopped = viewer.screen_frames
            await asyncio.sleep(1.0)
            assert viewer.screen_frames <= stopped + 1
        finally:
            await sharer.close()
            await viewer.close()
