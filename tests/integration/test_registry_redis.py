"""The Redis registry against a real redis-server, including a restart of Redis."""

from __future__ import annotations

import asyncio

import pytest

from tertulia.registry import BridgeRecord, RegistryError, ShardRecord
from tertulia.registry.heartbeat import Heartbeat
from tertulia.registry.redis_registry import RedisRegistry
from tests.peers import wait_until
from tests.redis_server import redis_server

pytestmark = pytest.mark.timeout(60)


def record(bridge_id: str, stress: float = 0.0) -> BridgeRecord:
    return BridgeRecord(bridge_id, "eu", f"ws://{bridge_id}/control/ws", f"http://{bridge_id}",
                        stress=stress)


async def test_records_expire_in_redis() -> None:
    with redis_server() as server:
        registry = RedisRegistry(server.url)
        try:
            await registry.put_bridge(record("a"), ttl=0.3)
            await registry.put_bridge(record("b"), ttl=30)
            await registry.put_shard(ShardRecord("s1", "http://127.0.0.1:1"), ttl=30)
            assert [r.bridge_id for r in await registry.bridges()] == ["a", "b"]
            assert [s.shard_id for s in await registry.shards()] == ["s1"]
            await asyncio.sleep(0.5)
            assert [r.bridge_id for r in await registry.bridges()] == ["b"]
            # A foreign, malformed value under our prefix is skipped, not fatal.
            await registry.client.set("tertulia:bridge:junk", b"not json")
            assert [r.bridge_id for r in await registry.bridges()] == ["b"]
            await registry.remove_bridge("b")
            assert await registry.bridges() == []
        finally:
            await registry.close()


async def test_everybody_re_registers_after_a_redis_restart() -> None:
    with redis_server() as server:
        writer = RedisRegistry(server.url, timeout=0.5)
        reader = RedisRegistry(server.url, timeout=0.5)
        beat = Heartbeat(lambda: writer.put_bridge(record("a"), ttl=1.5), interval=0.2,
                         name="bridge a")
        try:
            beat.start()
            assert await wait_until(lambda: beat.beats >= 1, timeout=5)
            assert [r.bridge_id for r in await reader.bridges()] == ["a"]

            server.stop()  # Redis dies: its data is gone (no persistence)
            with pytest.raises(RegistryError):
                await reader.bridges()
            assert await wait_until(lambda: beat.failing, timeout=5)

            server.start()  # same port, empty
            seen: list[str] = []

            async def poll() -> bool:
                try:
                    seen[:] = [r.bridge_id for r in await reader.bridges()]
                except RegistryError:
                    return False
                return seen == ["a"]

            for _ in range(50):  # bounded: 50 × 0.1 s
                if await poll():
                    break
                await asyncio.sleep(0.1)
            assert seen == ["a"], "the heartbeat did not re-register after the restart"
            assert not beat.failing
        finally:
            await beat.stop()
            await writer.close()
            await reader.close()
