"""Run one aiortc test peer as its own process (so a test can freeze it: a lost network)."""

from __future__ import annotations

import asyncio
import sys

from tests.peers import Peer, allow_loopback_candidates


async def main(ws_url: str, room: str, name: str, lifetime: float) -> None:
    allow_loopback_candidates()
    peer = Peer(name, ws_url, room, shade=220)
    await peer.join()
    print(peer.id, flush=True)
    try:
        await asyncio.sleep(lifetime)  # bounded: the test kills it long before
    finally:
        await peer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
