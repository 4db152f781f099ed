"""What one join costs the participants already in the room.

Joins N aiortc peers one after another into one room of a real `tertulia serve` (in process,
loopback) and records, for each join, what every participant already present received because
of it: signalling messages, bridge-channel messages, bytes, and SDP offer/answer exchanges.

    .venv/bin/python -m bench.join_cost --peers 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server


def counts(peers: list[Peer]) -> list[tuple[int, int, int, int]]:
    """Per peer: signalling messages, channel messages, bytes, messages that carry SDP."""
    return [
        (
            len(p.messages),
            len(p.channel_messages),
            p.bytes_received,
            sum("sdp" in m for m in p.messages + p.channel_messages),
        )
        for p in peers
    ]


async def run(n: int, slots: int) -> dict[str, object]:
    allow_loopback_candidates()
    rows = []
    async with running_server(slots=slots) as server:
        peers: list[Peer] = []
        try:
            for i in range(n):
                before = counts(peers)
                peer = Peer(f"p{i}", server.ws, "bench-room", slots=slots, shade=30 * i)
                await peer.join()
                peers.append(peer)
                # wait until every earlier participant has the newcomer in a slot (or no slot left)
                await wait_until(
                    lambda peer=peer: all(
                        peer.id in p.slot_map or None not in p.slot_map for p in peers[:-1]
                    ),
                    timeout=10,
                )
                await asyncio.sleep(0.3)
                after = counts(peers[:-1])
                deltas = [tuple(a - b for a, b in zip(x, y, strict=True))
                          for x, y in zip(after, before, strict=True)]
                rows.append({
                    "join": i + 1,
                    "existing": len(deltas),
                    "signal_msgs_each": statistics.mean(d[0] for d in deltas) if deltas else 0,
                    "channel_msgs_each": statistics.mean(d[1] for d in deltas) if deltas else 0,
                    "bytes_each": statistics.mean(d[2] for d in deltas) if deltas else 0,
                    "sdp_msgs_each": statistics.mean(d[3] for d in deltas) if deltas else 0,
                })
        finally:
            for p in peers:
                await p.close()
    return {"peers": n, "slots": slots, "joins": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, default=6)
    parser.add_argument("--slots", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run(args.peers, args.slots))
    print(f"{'join':>4} {'existing':>8} {'signal msgs':>11} {'channel msgs':>12} {'bytes':>7}"
          f" {'SDP msgs':>14}")
    for r in result["joins"]:  # type: ignore[attr-defined]
        print(f"{r['join']:>4} {r['existing']:>8} {r['signal_msgs_each']:>11.1f} "
              f"{r['channel_msgs_each']:>12.1f} {r['bytes_each']:>7.0f} "
              f"{r['sdp_msgs_each']:>14.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
