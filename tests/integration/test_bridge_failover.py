"""Bridge failover: two bridge processes in their own network namespaces, one shard, real Redis,
four aiortc peers on bridge A; `kill -9` bridge A; every peer decodes the others via bridge B.

Prints the time from the kill to full recovery (recorded in bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import aioice.ice
import pytest

from tests.cluster_procs import Proc, processes, wait_http
from tests.netlab import HUB_ADDRESS, netlab
from tests.peers import Peer, wait_until
from tests.redis_server import redis_server

pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _hub_candidates_only() -> None:
    def hub_only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return [HUB_ADDRESS] if use_ipv4 else []

    aioice.ice.get_host_addresses = hub_only  # type: ignore[assignment]


def everyone_decodes(peers: list[Peer], min_frames: int) -> bool:
    ids = {p.id for p in peers}
    for peer in peers:
        for other in ids - {peer.id}:
            counter = peer.frames_from(other)
            if counter is None or counter.video_frames < min_frames:
                return False
            if counter.audio_frames < min_frames:
                return False
    return True


@pytest.mark.parametrize("failure", ["kill", pytest.param("cut", marks=pytest.mark.slow)])
async def test_a_dead_bridge_moves_its_conference_to_another_bridge(failure: str) -> None:
    """kill: SIGKILL, the kernel resets the control connection. cut: the bridge's network is
    unplugged, nothing is reset; the control ping or the registry TTL notices."""
    _hub_candidates_only()
    with netlab(2) as (lab, (ns_a, ns_b)), redis_server(HUB_ADDRESS) as redis, \
            processes() as (_, procs):
        bridges = {}
        for name, ns in (("a", ns_a), ("b", ns_b)):
            address = lab.hosts[ns]
            procs.append(Proc(["bridge", "--host", "0.0.0.0", "--redis", redis.url,
                               "--region", "r1", "--bridge-id", f"bridge-{name}",
                               "--control-port", "8080", "--media-port", "10000",
                               "--public-ip", address], prefix=lab.netns_exec(ns)))
            bridges[name] = procs[-1]
            await wait_http(f"http://{address}:8080/about/health")
        port = _free_port()
        procs.append(Proc(["shard", "--host", "127.0.0.1", "--port", str(port), "--redis",
                           redis.url, "--shard-id", "shard-1"]))
        shard = procs[-1]
        await wait_http(f"http://127.0.0.1:{port}/about/health")

        room = "failover"
        ws = f"ws://127.0.0.1:{port}/ws?room={room}"
        peers = [Peer(f"p{i}", ws, room, slots=3, shade=40 + 50 * i, frequency=300.0 + 110 * i)
                 for i in range(4)]
        try:
            for peer in peers:
                await peer.join()
            assert await wait_until(lambda: everyone_decodes(peers, 10), timeout=40), [
                (p.name, p.slot_map, {s: vars(c) for s, c in p.counters.items()})
                for p in peers
            ]
            # single strategy: the whole conference is on one bridge; make that bridge "a"
            on = {p.channel._response.url.host for p in peers if p.channel is not None}
            assert len(on) == 1
            victim = "a" if on == {lab.hosts[ns_a]} else "b"
            survivor_address = lab.hosts[ns_b if victim == "a" else ns_a]

            killed_at = time.monotonic()
            if failure == "kill":
                bridges[victim].kill()  # SIGKILL: no goodbye on the control connection
            else:
                lab.cut(ns_a if victim == "a" else ns_b)
            assert await wait_until(
                lambda: all(p.renegotiations == 1 for p in peers)
                and everyone_decodes(peers, 5),
                timeout=40, interval=0.05,
            ), ([p.renegotiate_failures for p in peers],
                [(p.name, p.slot_map, {s: vars(c) for s, c in p.counters.items()})
                 for p in peers], shard.output()[-3000:])
            recovery = time.monotonic() - killed_at
            print(f"\nbridge failover ({failure}): to every peer decoding all others again: "
                  f"{recovery:.2f} s ({len(peers)} peers)")
            assert {p.channel._response.url.host for p in peers
                    if p.channel is not None} == {survivor_address}
            assert all(p.renegotiate_failures == [] for p in peers)
            assert "moving 4 participants" in shard.output()
            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = (await response.text()).splitlines()
            assert "tertulia_shard_bridge_failures_total 1.0" in metrics
            assert "tertulia_shard_participants_moved_total 4.0" in metrics
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
