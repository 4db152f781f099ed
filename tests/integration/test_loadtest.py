"""`tertulia loadtest` against a real `tertulia serve`: 4 synthetic participants in 2 rooms.

A functional test, not a benchmark: every participant must join, and receive audio and video
from the other sender of its room with little loss. The media cache is built on first use
(a few seconds of libvpx) and reused from ~/.cache afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.server import running_server

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


async def test_small_loadtest_every_participant_gets_media_from_each_sender(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.json"
    plot = tmp_path / "plot.png"
    async with running_server() as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tertulia", "loadtest", server.http,
            "--participants", "4", "--rooms", "2", "--duration", "5", "--ramp", "4",
            "--processes", "2", "--srtp-check", "1", "--bridge-pid", str(os.getpid()),
            "--json", str(report), "--plot", str(plot), "--quiet",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 200)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
        bridge_stats = server.bridge.stats()
    data = json.loads(report.read_text())
    summary = data["summary"]
    assert summary["joins_ok"] == 4 and summary["joins_failed"] == 0
    # two rooms of two senders: each participant receives from the one other sender
    assert summary["pairs_with_media"] == {"expected": 4, "ok": 4, "missing": []}
    assert summary["receive_loss"] < 0.05
    assert summary["srtp_errors"] == 0
    assert summary["first_media_s"]["count"] == 4
    for p in data["participants"]:
        assert p["state"] == "joined", p  # still in the meeting when the run ended
        assert p["packets"] > 200, p  # 5 s of audio + video from the other sender
        (media,) = p["from"].values()
        assert media["audio"] > 100 and media["video"] > 100, p
    assert {p["room"] for p in data["participants"]} == {"load-0", "load-1"}
    # the bridge saw the same: two conferences' worth of endpoints forwarding media
    assert bridge_stats["total_conferences_created"] == 2
    assert bridge_stats["packets_out"] > 1000
    assert summary["bridge"]["packet_rate_upload"] is not None
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tertulia loadtest" in out.decode(errors="replace")  # the table
