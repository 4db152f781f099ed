"""The bridge finds who is speaking from RFC 6464 audio levels and tells every client."""

from __future__ import annotations

import pytest

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(90)


async def test_talker_becomes_dominant_speaker_for_everyone() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        quiet = Peer("quiet", server.ws, "speakers", loudness=0.0, shade=20)
        talker = Peer("talker", server.ws, "speakers", loudness=12000.0, talking=True,
                      shade=220)
        listener = Peer("listener", server.ws, "speakers", loudness=0.0, shade=120)
        peers = [quiet, talker, listener]
        try:
            for peer in peers:
                await peer.join()

            def announced(peer: Peer) -> str | None:
                speaks = [m for m in peer.channel_messages if m["type"] == "dominant-speaker"]
                return speaks[-1]["participant"] if speaks else None

            assert await wait_until(
                lambda: all(announced(p) == talker.id for p in (quiet, listener)), timeout=15
            ), [p.channel_messages[-3:] for p in peers]
            last = [m for m in listener.channel_messages if m["type"] == "dominant-speaker"][-1]
            assert last["order"][0] == talker.id and set(last["order"]) == {p.id for p in peers}
            assert server.bridge.stats()["total_dominant_speaker_changes"] >= 1
        finally:
            for peer in peers:
                await peer.close()
