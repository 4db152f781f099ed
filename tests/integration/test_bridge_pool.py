"""The shard's bridge pool against a real in-process bridge and its control API: a bridge whose
registry record disappears counts as failed; a bridge with another secret is never used."""

from __future__ import annotations

import pytest

from tertulia.cluster.pool import RegistryPool
from tertulia.focus.focus import FocusError
from tertulia.focus.selection import BridgeSelector
from tertulia.registry import BridgeRecord
from tertulia.registry.memory import MemoryRegistry
from tests.bridge_server import SECRET, running_bridge

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_bridge_gone_from_the_registry_is_failed_and_skipped_until_it_returns() -> None:
    clock = Clock()
    async with running_bridge() as proc:
        registry = MemoryRegistry(clock)
        record = proc.record()
        await registry.put_bridge(record)
        pool = RegistryPool(registry, BridgeSelector("single"), secret=SECRET, shard_id="s1",
                            clock=clock)
        failed: list[str] = []
        pool.on_failed = failed.append
        await pool.start()
        try:
            client, reason = await pool.choose("eu")
            assert client.bridge_id == "b1" and "strategy single" in reason
            assert pool.client("b1") is client

            await registry.remove_bridge("b1")  # heartbeats stopped
            await pool.refresh()
            assert failed == ["b1"] and pool.client("b1") is None
            with pytest.raises(FocusError) as info:
                await pool.choose(None)
            assert info.value.code == "no-bridge"

            await registry.put_bridge(record)  # a stale record while it is still "failed"
            await pool.refresh()
            with pytest.raises(FocusError):
                await pool.choose(None)
            clock.now += 8  # longer than a record lives: listed now means it heartbeats again
            await registry.put_bridge(record)
            await pool.refresh()
            client, _ = await pool.choose(None)
            assert client.bridge_id == "b1" and pool.client("b1") is client
        finally:
            await pool.stop()


async def test_a_bridge_refusing_our_credentials_is_not_used() -> None:
    async with running_bridge() as proc:
        registry = MemoryRegistry()
        await registry.put_bridge(proc.record())
        await registry.put_bridge(BridgeRecord("b0", "eu", "ws://127.0.0.1:1/control/ws",
                                               "http://127.0.0.1:1"))  # nobody listens
        pool = RegistryPool(registry, BridgeSelector("single"), secret="z" * 40,
                            shard_id="s1")
        await pool.start()
        try:
            with pytest.raises(FocusError) as info:
                await pool.choose(None)
            assert info.value.code == "no-bridge"
            assert set(pool.failed_at) == {"b0", "b1"}
            assert proc.control.refused == 1
        finally:
            await pool.stop()
