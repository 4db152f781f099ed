"""`tertulia shard`: web client, signalling and focus, with bridges from the registry.

The shard registers itself (id, URL) with a heartbeat, reads the live bridges from the registry,
places each new conference on one through BridgeSelector, and moves conferences off bridges
that fail (docs/operations.md, "Scaling out").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from dataclasses import dataclass

from aiohttp import web

from tertulia.accept import Acceptor
from tertulia.cluster.metrics import ShardCollector
from tertulia.cluster.pool import RegistryPool
from tertulia.config import ConfigError, Settings
from tertulia.focus.focus import Focus
from tertulia.focus.selection import BridgeSelector
from tertulia.metrics import SignalCollector, add_metrics_route
from tertulia.registry import Registry, ShardRecord, open_registry
from tertulia.registry.heartbeat import Heartbeat
from tertulia.signal import app as signal_app
from tertulia.signal.hub import Hub
from tertulia.signal.tokens import TokenVerifier

log = logging.getLogger("tertulia.shard")


@dataclass
class ShardProcess:
    settings: Settings
    app: web.Application
    hub: Hub
    focus: Focus
    pool: RegistryPool
    registry: Registry
    shard_id: str
    url: str

    async def beat(self) -> None:
        await self.registry.put_shard(ShardRecord(self.shard_id, self.url))


def build(settings: Settings, registry: Registry | None = None) -> ShardProcess:
    if not settings.control_secret:
        raise ConfigError("a shard needs control_secret (the same on every shard and bridge)")
    try:
        selector = BridgeSelector(settings.bridge_selection)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    shard_id = settings.shard_id or "shard-" + secrets.token_hex(4)
    registry = registry or open_registry(settings.redis)
    pool = RegistryPool(registry, selector, secret=settings.control_secret, shard_id=shard_id)
    focus = Focus(pool)
    pool.on_failed = focus.bridge_failed
    pool.on_expired = focus.endpoint_expired
    app = web.Application()
    hub = signal_app.add_routes(
        app, focus, slots=settings.slots, limits=settings.limits(),
        tokens=TokenVerifier(settings.token_settings()), shard=True,
        region_header=settings.region_header, trusted_proxies=settings.proxies(),
    )
    hub.shard_id = shard_id
    add_metrics_route(app, SignalCollector(hub), ShardCollector(focus, pool))
    signal_app.add_room_route(app)
    url = settings.public_url.rstrip("/") or f"http://{settings.advertised_ip}:{settings.port}"
    proc = ShardProcess(settings, app, hub, focus, pool, registry, shard_id, url)
    heartbeat = Heartbeat(proc.beat, name=f"shard {shard_id}")

    async def on_startup(_: web.Application) -> None:
        await pool.start()
        heartbeat.start()

    async def on_cleanup(_: web.Application) -> None:
        await heartbeat.stop()
        with contextlib.suppress(Exception):
            await registry.remove_shard(shard_id)
        await pool.stop()
        await registry.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return proc


async def run(settings: Settings) -> None:
    from tertulia.serve import make_runner, raise_nofile_limit

    raise_nofile_limit()
    proc = build(settings)
    runner = make_runner(proc.app, settings)
    await runner.setup()
    acceptor = Acceptor()  # answers 503 instead of failing when descriptors run out
    await acceptor.start(runner, settings.host, settings.port)
    print(f"Tertulia shard {proc.shard_id} is running on http://{settings.host}:{settings.port}/"
          f" (registry: {settings.redis or 'in memory'}, bridges: "
          f"{len(proc.pool.records)})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        acceptor.close()
        await runner.cleanup()
