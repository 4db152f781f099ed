"""SIGTERM on a real bridge process: it drains (no new conferences, existing ones continue), tells
the registry, and exits when the last endpoint leaves, or after drain_timeout."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from tertulia.bridge.bridge import AllocationError
from tertulia.cluster.control_client import ControlClient
from tertulia.registry.redis_registry import RedisRegistry
from tests.cluster_procs import SECRET, Proc, processes, wait_http
from tests.peers import wait_until
from tests.redis_server import redis_server
from tests.server import free_port

pytestmark = pytest.mark.timeout(90)

OFFER = (Path(__file__).parent.parent / "data" / "aiortc-offer-2slots.sdp").read_text()


def start_bridge(redis_url: str, bridge_id: str, drain_timeout: float) -> tuple[Proc, int]:
    port = free_port()
    proc = Proc(["bridge", "--redis", redis_url, "--bridge-id", bridge_id, "--control-port",
                 str(port), "--media-port", str(free_port(socket.SOCK_DGRAM)),
                 "--drain-timeout", str(drain_timeout)])
    return proc, port


async def test_sigterm_drains_then_exits_when_the_last_endpoint_leaves() -> None:
    with redis_server() as redis, processes() as (_, procs):
        proc, port = start_bridge(redis.url, "drainer", 60)
        procs.append(proc)
        await wait_http(f"http://127.0.0.1:{port}/about/health")
        registry = RedisRegistry(redis.url)
        async with aiohttp.ClientSession() as http:
            client = ControlClient("drainer", f"ws://127.0.0.1:{port}/control/ws",
                                   secret=SECRET, shard_id="s1", session=http)
            try:
                await client.connect()
                await client.allocate("conf-1", "e1", OFFER)
                proc.kill(signal.SIGTERM)

                async def draining() -> bool:
                    records = await registry.bridges()
                    return bool(records) and records[0].draining

                for _ in range(50):  # bounded: 50 × 0.1 s
                    if await draining():
                        break
                    await asyncio.sleep(0.1)
                assert await draining(), "the registry never heard of the drain"
                with pytest.raises(AllocationError) as info:
                    await client.allocate("conf-2", "e1", OFFER)
                assert info.value.code == "draining"
                await client.allocate("conf-1", "e2", OFFER)  # the existing conference goes on
                async with http.get(f"http://127.0.0.1:{port}/about/bridge/stats") as r:
                    stats = await r.json()
                assert stats["drain"] is True and stats["graceful_shutdown"] is True
                assert proc.proc.poll() is None  # still serving its conference

                assert await client.expire("conf-1", "e1")
                assert await client.expire("conf-1", "e2")
                assert await wait_until(lambda: proc.proc.poll() is not None, timeout=10)
                assert proc.proc.returncode == 0
                assert await registry.bridges() == []  # removed on the way out
            finally:
                await client.close()
                await registry.close()


async def test_sigterm_exits_after_the_drain_timeout() -> None:
    with redis_server() as redis, processes() as (_, procs):
        proc, port = start_bridge(redis.url, "slow", 1.5)
        procs.append(proc)
        await wait_http(f"http://127.0.0.1:{port}/about/health")
        async with aiohttp.ClientSession() as http:
            client = ControlClient("slow", f"ws://127.0.0.1:{port}/control/ws",
                                   secret=SECRET, shard_id="s1", session=http)
            try:
                await client.connect()
                await client.allocate("conf-1", "e1", OFFER)  # never leaves
                signalled = time.monotonic()
                proc.kill(signal.SIGTERM)
                assert await wait_until(lambda: proc.proc.poll() is not None, timeout=15)
                took = time.monotonic() - signalled
                assert took >= 1.5, took
                assert "drain timeout" in proc.output()
            finally:
                await client.close()
