"""A real redis-server restarts under a running bridge and shard: both re-register on their next
heartbeat, and the shard still places a new conference on the bridge."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from tertulia.registry import RegistryError
from tertulia.registry.redis_registry import RedisRegistry
from tests.bridge_server import OFFER
from tests.cluster_procs import Proc, processes, wait_http
from tests.redis_server import redis_server
from tests.server import free_port
from tests.wsclient import Client

pytestmark = pytest.mark.timeout(90)


async def listed(registry: RedisRegistry) -> tuple[list[str], list[str]]:
    try:
        bridges = [r.bridge_id for r in await registry.bridges()]
        shards = [r.shard_id for r in await registry.shards()]
    except RegistryError:
        return [], []
    return bridges, shards


async def test_bridge_and_shard_re_register_after_a_redis_restart() -> None:
    with redis_server() as redis, processes() as (_, procs):
        control, port = free_port(), free_port()
        procs.append(Proc(["bridge", "--redis", redis.url, "--bridge-id", "jvb-1",
                           "--control-port", str(control), "--media-port",
                           str(free_port(socket.SOCK_DGRAM))]))
        procs.append(Proc(["shard", "--port", str(port), "--redis", redis.url,
                           "--shard-id", "shard-1"]))
        await wait_http(f"http://127.0.0.1:{control}/about/health")
        await wait_http(f"http://127.0.0.1:{port}/about/health")
        registry = RedisRegistry(redis.url, timeout=0.5)
        try:
            for _ in range(50):  # bounded: 50 × 0.1 s
                if await listed(registry) == (["jvb-1"], ["shard-1"]):
                    break
                await asyncio.sleep(0.1)
            assert await listed(registry) == (["jvb-1"], ["shard-1"])

            redis.stop()
            await asyncio.sleep(1.0)  # a heartbeat or two fail meanwhile
            redis.start()  # same port, empty
            assert await listed(registry) == ([], [])
            for _ in range(60):  # bounded: 60 × 0.1 s; heartbeats come every 2 s
                if await listed(registry) == (["jvb-1"], ["shard-1"]):
                    break
                await asyncio.sleep(0.1)
            assert await listed(registry) == (["jvb-1"], ["shard-1"])
            await asyncio.sleep(1.2)  # the shard's next registry read (every second)

            async with aiohttp.ClientSession() as http:
                client = await Client(http, f"ws://127.0.0.1:{port}/ws?room=after",
                                      "ana").connect()
                welcome = await client.request({"type": "join", "room": "after",
                                                "name": "ana"})
                assert welcome["type"] == "welcome"
                answer = await client.request({"type": "offer", "sdp": OFFER}, timeout=10)
                assert answer["type"] == "answer", answer
                assert answer["bridgeChannel"].startswith(f"http://127.0.0.1:{control}/")
        finally:
            await registry.close()
