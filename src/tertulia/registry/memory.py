"""The in-memory registry: the default, for everything in one process."""

from __future__ import annotations

import time
from collections.abc import Callable

from tertulia.registry.base import RECORD_TTL, BridgeRecord, ShardRecord


class MemoryRegistry:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._bridges: dict[str, tuple[float, BridgeRecord]] = {}
        self._shards: dict[str, tuple[float, ShardRecord]] = {}

    async def put_bridge(self, record: BridgeRecord, ttl: float = RECORD_TTL) -> None:
        self._bridges[record.bridge_id] = (self.clock() + ttl, record)

    async def remove_bridge(self, bridge_id: str) -> None:
        self._bridges.pop(bridge_id, None)

    async def bridges(self) -> list[BridgeRecord]:
        now = self.clock()
        for key in [k for k, (expires, _) in self._bridges.items() if expires <= now]:
            del self._bridges[key]
        return sorted((r for _, r in self._bridges.values()), key=lambda r: r.bridge_id)

    async def put_shard(self, record: ShardRecord, ttl: float = RECORD_TTL) -> None:
        self._shards[record.shard_id] = (self.clock() + ttl, record)

    async def remove_shard(self, shard_id: str) -> None:
        self._shards.pop(shard_id, None)

    async def shards(self) -> list[ShardRecord]:
        now = self.clock()
        for key in [k for k, (expires, _) in self._shards.items() if expires <= now]:
            del self._shards[key]
        return sorted((r for _, r in self._shards.values()), key=lambda r: r.shard_id)

    async def close(self) -> None:
        return None
