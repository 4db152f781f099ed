"""Region-based placement: two bridge processes in two regions, one shard with the region
strategy; participants whose front says X-Proxy-Region eu or us land on their region's bridge,
and a later joiner from another region lands on its own region's bridge too: the conference
then spans both, joined by a relay (tests/integration/test_cascade.py tests relays in depth)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.cluster_procs import Proc, processes, wait_http
from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.redis_server import redis_server
from tests.server import free_port

pytestmark = pytest.mark.timeout(120)


def decodes_each_other(peers: list[Peer], frames: int) -> bool:
    for peer in peers:
        for other in peers:
            if other is peer:
                continue
            counter = peer.frames_from(other.id)
            if counter is None or counter.video_frames < frames:
                return False
    return True


async def test_participants_land_on_their_regions_bridge() -> None:
    allow_loopback_candidates()
    with redis_server() as redis, processes() as (_, procs):
        control = {}
        for region in ("eu", "us"):
            control[region] = free_port()
            procs.append(Proc(["bridge", "--redis", redis.url, "--region", region,
                               "--bridge-id", f"jvb-{region}", "--control-port",
                               str(control[region]), "--media-port",
                               str(free_port(socket.SOCK_DGRAM))]))
        for port in control.values():
            await wait_http(f"http://127.0.0.1:{port}/about/health")
        shard_port = free_port()
        procs.append(Proc(["shard", "--port", str(shard_port), "--redis", redis.url,
                           "--bridge-selection", "region"]))
        shard = procs[-1]
        await wait_http(f"http://127.0.0.1:{shard_port}/about/health")

        def peer(room: str, name: str, region: str) -> Peer:
            return Peer(name, f"ws://127.0.0.1:{shard_port}/ws?room={room}", room,
                        slots=2, headers={"X-Proxy-Region": region})

        peers = {
            "eu": [peer("room-eu", "ana", "eu"), peer("room-eu", "bo", "eu")],
            "us": [peer("room-us", "cy", "us"), peer("room-us", "di", "us")],
        }
        late = peer("room-eu", "ed", "us")  # joins the eu conference from the us
        everyone = [*peers["eu"], *peers["us"], late]
        try:
            for p in everyone:
                await p.join()

            def bridge_port(p: Peer) -> int | None:
                return p.channel._response.url.port if p.channel is not None else None

            for region, group in peers.items():
                assert {bridge_port(p) for p in group} == {control[region]}, region
            assert bridge_port(late) == control["us"]  # cascaded, not sent across
            room_eu = [*peers["eu"], late]
            assert await wait_until(
                lambda: decodes_each_other(room_eu, 5) and decodes_each_other(peers["us"], 5),
                timeout=40)
            log = shard.output()
            assert "conference placed on bridge jvb-eu" in log
            assert "conference placed on bridge jvb-us" in log
            assert "conference extended to bridge jvb-us" in log
        finally:
            await asyncio.gather(*(p.close() for p in everyone), return_exceptions=True)
