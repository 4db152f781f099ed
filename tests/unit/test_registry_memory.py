"""The in-memory registry: records live until their TTL passes; bad JSON records are refused."""

from __future__ import annotations

import pytest

from tertulia.registry import BridgeRecord, RegistryError, ShardRecord, open_registry
from tertulia.registry.memory import MemoryRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(bridge_id: str, **kw: object) -> BridgeRecord:
    return BridgeRecord(bridge_id, "eu", f"ws://{bridge_id}/control/ws",
                        f"http://{bridge_id}", **kw)  # type: ignore[arg-type]


async def test_bridge_records_expire_after_ttl_unless_refreshed() -> None:
    clock = Clock()
    registry = MemoryRegistry(clock)
    await registry.put_bridge(record("a"), ttl=6)
    await registry.put_bridge(record("b", draining=True), ttl=6)
    assert [r.bridge_id for r in await registry.bridges()] == ["a", "b"]
    clock.now += 4
    await registry.put_bridge(record("a", stress=0.5), ttl=6)  # heartbeat
    clock.now += 3
    live = await registry.bridges()
    assert [(r.bridge_id, r.stress) for r in live] == [("a", 0.5)]
    await registry.remove_bridge("a")
    assert await registry.bridges() == []


async def test_shard_records_expire() -> None:
    clock = Clock()
    registry = MemoryRegistry(clock)
    await registry.put_shard(ShardRecord("s1", "http://10.0.0.1:8000"), ttl=6)
    assert await registry.shards() == [ShardRecord("s1", "http://10.0.0.1:8000")]
    clock.now += 6.5
    assert await registry.shards() == []


def test_record_json_round_trip_and_bad_records() -> None:
    rec = record("a", stress=0.25, endpoints=3, conferences=1, draining=True)
    assert BridgeRecord.from_json(rec.to_json()) == rec
    for bad in ("nope", "[]", '{"bridge_id": 5}', '{"bridge_id":"a","region":"r",'
                '"control_url":"u","channel_base":"c","stress":"high"}'):
        with pytest.raises(RegistryError):
            BridgeRecord.from_json(bad)


def test_open_registry_refuses_unknown_schemes() -> None:
    assert isinstance(open_registry(""), MemoryRegistry)
    with pytest.raises(RegistryError, match="redis://"):
        open_registry("http://localhost:6379")
