"""The Redis registry: one key per record with a TTL, so a process that dies disappears on its
own. Keys: ``tertulia:bridge:<id>`` and ``tertulia:shard:<id>``, values the records' JSON.

Nothing is kept only in Redis: every process re-writes its record on each heartbeat, so a Redis
restart (or flush) is healed by the next heartbeat without restarting anybody.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tertulia.registry.base import (
    RECORD_TTL,
    BridgeRecord,
    RegistryError,
    ShardRecord,
)

log = logging.getLogger(__name__)

PREFIX = "tertulia:"
_SCAN_LIMIT = 10_000  # records read per listing at most (bounded loop)


class RedisRegistry:
    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url
        # Short timeouts: a stuck Redis must not stall a heartbeat or a join for long.
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            health_check_interval=10,
        )

    async def _put(self, key: str, value: str, ttl: float) -> None:
        try:
            await self.client.set(PREFIX + key, value, px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise RegistryError(f"redis: {exc}") from exc

    async def _delete(self, key: str) -> None:
        try:
            await self.client.delete(PREFIX + key)
        except (RedisError, OSError) as exc:
            raise RegistryError(f"redis: {exc}") from exc

    async def _values(self, kind: str) -> list[bytes | str]:
        try:
            keys: list[bytes | str] = []
            async for key in self.client.scan_iter(match=f"{PREFIX}{kind}:*", count=200):
                keys.append(key)
                if len(keys) >= _SCAN_LIMIT:
                    break
            if not keys:
                return []
            values = await self.client.mget(keys)
        except (RedisError, OSError) as exc:
            raise RegistryError(f"redis: {exc}") from exc
        return [v for v in values if v is not None]  # expired between SCAN and MGET

    async def put_bridge(self, record: BridgeRecord, ttl: float = RECORD_TTL) -> None:
        await self._put("bridge:" + record.bridge_id, record.to_json(), ttl)

    async def remove_bridge(self, bridge_id: str) -> None:
        await self._delete("bridge:" + bridge_id)

    async def bridges(self) -> list[BridgeRecord]:
        out = []
        for value in await self._values("bridge"):
            try:
                out.append(BridgeRecord.from_json(value))
            except RegistryError as exc:
                log.warning("ignoring a bad bridge record in redis: %s", exc)
        return sorted(out, key=lambda r: r.bridge_id)

    async def put_shard(self, record: ShardRecord, ttl: float = RECORD_TTL) -> None:
        await self._put("shard:" + record.shard_id, record.to_json(), ttl)

    async def remove_shard(self, shard_id: str) -> None:
        await self._delete("shard:" + shard_id)

    async def shards(self) -> list[ShardRecord]:
        out = []
        for value in await self._values("shard"):
            try:
                out.append(ShardRecord.from_json(value))
            except RegistryError as exc:
                log.warning("ignoring a bad shard record in redis: %s", exc)
        return sorted(out, key=lambda r: r.shard_id)

    async def close(self) -> None:
        await self.client.aclose()
