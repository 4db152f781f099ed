"""The registry: which bridges and shards are alive (in memory in one process, or Redis)."""

from tertulia.registry.base import (
    BridgeRecord,
    Registry,
    RegistryError,
    ShardRecord,
)

__all__ = ["BridgeRecord", "Registry", "RegistryError", "ShardRecord", "open_registry"]


def open_registry(url: str) -> Registry:
    """``""`` → in-memory (one process); ``redis://…`` → Redis."""
    if not url:
        from tertulia.registry.memory import MemoryRegistry

        return MemoryRegistry()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise RegistryError(f"registry URL must start with redis://, rediss:// or unix://: {url!r}")
    from tertulia.registry.redis_registry import RedisRegistry

    return RedisRegistry(url)
