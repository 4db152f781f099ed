"""A participant whose network dies (process frozen: no pongs, no ICE consent) is dropped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ROOT = Path(__file__).parents[2]


async def test_frozen_participant_is_dropped_within_30s_and_others_continue() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        peers = [Peer(n, server.ws, "lossy-room", shade=s) for n, s in (("a", 40), ("b", 140))]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.peer_process", server.ws, "lossy-room", "frozen", "90",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ},
        )
        try:
            for peer in peers:
                await peer.join()
            assert proc.stdout is not None
            frozen_id = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            a, b = peers

            def sees_frozen(p: Peer) -> bool:
                counter = p.frames_from(frozen_id)
                return counter is not None and counter.video_frames > 5

            assert await wait_until(lambda: sees_frozen(a) and sees_frozen(b), timeout=30)
            proc.send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            assert await wait_until(
                lambda: frozen_id not in a.present and frozen_id not in b.present, timeout=32
            )
            elapsed = time.monotonic() - t0
            assert elapsed <= 30.5, elapsed
            reasons = {m.get("reason") for m in a.messages if m.get("type") == "participant-left"}
            assert reasons & {"disconnected", "media-timeout"}
            assert await wait_until(lambda: frozen_id not in a.slot_map, timeout=5)
            base = a.frames_from(b.id).video_frames  # type: ignore[union-attr]
            assert await wait_until(
                lambda: a.frames_from(b.id).video_frames > base + 10,  # type: ignore[union-attr]
                timeout=10,
            )
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            for peer in peers:
                await peer.close()
