"""Registry records and the one async interface both registries implement (docs/protocol.md,
"Registry records")."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

HEARTBEAT_INTERVAL = 2.0  # seconds between two heartbeats of one bridge or shard
RECORD_TTL = 6.0  # a record not refreshed for this long is gone (three missed heartbeats)


class RegistryError(Exception):
    """The registry could not be reached or answered nonsense; the caller retries later."""


@dataclass(frozen=True, slots=True)
class BridgeRecord:
    bridge_id: str
    region: str
    control_url: str  # ws(s)://host:port/control/ws, authenticated (docs/security.md)
    channel_base: str  # http(s)://host:port that clients open the bridge channel on
    stress: float = 0.0
    endpoints: int = 0
    conferences: int = 0
    draining: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> BridgeRecord:
        data = _object(text)
        try:
            return cls(
                bridge_id=_str(data, "bridge_id"),
                region=_str(data, "region"),
                control_url=_str(data, "control_url"),
                channel_base=_str(data, "channel_base"),
                stress=float(data.get("stress", 0.0)),
                endpoints=int(data.get("endpoints", 0)),
                conferences=int(data.get("conferences", 0)),
                draining=bool(data.get("draining", False)),
            )
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"bad bridge record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ShardRecord:
    shard_id: str
    url: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardRecord:
        data = _object(text)
        return cls(shard_id=_str(data, "shard_id"), url=_str(data, "url"))


def _object(text: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RegistryError("record is not JSON") from exc
    if not isinstance(data, dict):
        raise RegistryError("record is not an object")
    return data


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise RegistryError(f"record field {key!r} missing or not a string")
    return value


class Registry(Protocol):
    """Records expire ``ttl`` seconds after their last ``put``; readers see only live ones."""

    async def put_bridge(self, record: BridgeRecord, ttl: float = RECORD_TTL) -> None: ...

    async def remove_bridge(self, bridge_id: str) -> None: ...

    async def bridges(self) -> list[BridgeRecord]: ...

    async def put_shard(self, record: ShardRecord, ttl: float = RECORD_TTL) -> None: ...

    async def remove_shard(self, shard_id: str) -> None: ...

    async def shards(self) -> list[ShardRecord]: ...

    async def close(self) -> None: ...
