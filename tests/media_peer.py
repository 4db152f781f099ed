"""One aiortc participant as its own process, reporting what it receives as JSON lines.

Usage: python -m tests.media_peer WS_URL ROOM NAME LIFETIME [--turn] [--loopback]
--turn uses the iceServers of the server's `welcome` (TURN credentials); --loopback lets aioice
gather 127.0.0.1. Prints {"id": …} once joined, then every 0.5 s {"video": {participant: frames},
"audio": {…}, "local": candidate type of the selected pair or null}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from tests.peers import Peer, allow_loopback_candidates


def selected_candidate_type(peer: Peer) -> str | None:
    """Local candidate type of the nominated ICE pair (aiortc/aioice internals, test only)."""
    try:
        assert peer.pc is not None
        ice = peer.pc.getTransceivers()[0].sender.transport.transport
        pairs: dict[int, Any] = ice._connection._nominated
        pair = pairs.get(1)
        return None if pair is None else str(pair.local_candidate.type)
    except (AttributeError, IndexError, AssertionError):
        return None


async def main(ws_url: str, room: str, name: str, lifetime: float, flags: list[str]) -> None:
    if "--loopback" in flags:
        allow_loopback_candidates()
    peer = Peer(name, ws_url, room, shade=120, use_ice_servers="--turn" in flags)
    await peer.join()
    print(json.dumps({"id": peer.id}), flush=True)
    deadline = time.monotonic() + lifetime  # bounded: the test ends it long before
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            video = {pid: c.video_frames for pid in peer.present
                     if (c := peer.frames_from(pid)) is not None}
            audio = {pid: c.audio_frames for pid in peer.present
                     if (c := peer.frames_from(pid)) is not None}
            report = {"video": video, "audio": audio, "local": selected_candidate_type(peer)}
            print(json.dumps(report), flush=True)
    finally:
        await peer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:]))
