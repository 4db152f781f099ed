"""`tertulia bridge`: one media bridge as its own process, registered in the registry.

It serves, on ``control_port``: the control API for shards (``/control/ws``,
``POST /control/drain``; authenticated with ``control_secret``), the clients' bridge channel,
``/about/health``, ``/about/bridge/stats`` and ``/metrics``. SIGTERM drains: no new conferences,
and the process exits when the last endpoint leaves or after ``drain_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from dataclasses import dataclass

from aiohttp import web

from tertulia.bridge import api as bridge_api
from tertulia.bridge.bridge import Bridge, BridgeSettings
from tertulia.cluster.control_server import ControlServer
from tertulia.config import ConfigError, Settings
from tertulia.metrics import BridgeCollector, add_metrics_route
from tertulia.registry import BridgeRecord, Registry, open_registry
from tertulia.registry.heartbeat import Heartbeat

log = logging.getLogger("tertulia.bridge")

DRAIN_POLL = 0.5  # seconds between two checks for "last endpoint gone" while draining


@dataclass
class BridgeProcess:
    settings: Settings
    bridge: Bridge
    control: ControlServer
    app: web.Application
    registry: Registry
    bridge_id: str
    channel_base: str

    def record(self) -> BridgeRecord:
        stats = self.bridge.stats()
        return BridgeRecord(
            bridge_id=self.bridge_id,
            region=self.settings.region,
            control_url=_ws_url(self.channel_base) + "/control/ws",
            channel_base=self.channel_base,
            stress=float(stats["stress_level"]),
            endpoints=int(stats["endpoints"]),
            conferences=int(stats["conferences"]),
            draining=self.bridge.draining,
        )

    async def beat(self) -> None:
        await self.registry.put_bridge(self.record())


def _ws_url(http_url: str) -> str:
    return "ws" + http_url[4:] if http_url.startswith("http") else http_url


def public_base(settings: Settings, port: int) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://{settings.advertised_ip}:{port}"


def build(settings: Settings, registry: Registry | None = None,
          channel_base: str | None = None) -> BridgeProcess:
    """``channel_base``: what the bridge channel URLs it hands out start with (default: this
    process's public URL); a worker of `tertulia serve` uses a path on serve's own port."""
    if not settings.control_secret:
        raise ConfigError("a bridge needs control_secret (the same on every shard and bridge)")
    bridge = Bridge(
        BridgeSettings(
            media_host=settings.media_bind,
            media_port=settings.media_port,
            public_ip=settings.advertised_ip,
            relay_ip=settings.relay_ip,
            slots=settings.slots,
            region=settings.region,
            consent_timeout=settings.consent_timeout,
        )
    )
    bridge_id = settings.bridge_id or "jvb-" + secrets.token_hex(4)
    if channel_base is None:
        channel_base = public_base(settings, settings.control_port)
    control = ControlServer(bridge, settings.control_secret, channel_base)
    app = web.Application()
    bridge_api.add_routes(app, bridge)
    app.router.add_get("/about/health", bridge_api.health)
    control.add_routes(app)
    add_metrics_route(app, BridgeCollector(bridge))
    return BridgeProcess(settings, bridge, control, app, registry or open_registry(settings.redis),
                         bridge_id, channel_base)


async def wait_drained(bridge: Bridge, timeout: float) -> bool:
    """True when the last endpoint left, False when ``timeout`` passed first (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if not bridge.conferences:
            return True
        await asyncio.sleep(DRAIN_POLL)
    return not bridge.conferences


async def run(settings: Settings, *, sock: socket.socket | None = None,
              channel_base: str | None = None, register: bool = True) -> None:
    """Run until SIGINT (stop) or SIGTERM (drain). A worker of `tertulia serve` passes the
    listening ``sock`` it inherited and ``register=False``: its parent keeps the registry."""
    from tertulia.serve import make_runner

    proc = build(settings, channel_base=channel_base)
    bridge = proc.bridge
    await bridge.start()
    runner = make_runner(proc.app, settings)
    await runner.setup()
    site: web.BaseSite = (web.SockSite(runner, sock) if sock is not None
                          else web.TCPSite(runner, settings.host, settings.control_port))
    await site.start()
    heartbeat = Heartbeat(proc.beat, name=f"bridge {proc.bridge_id}")
    if register:
        heartbeat.start()
    listening = site.name
    print(f"Tertulia bridge {proc.bridge_id} (region {settings.region}) is running", flush=True)
    print(f"  control, channel, stats: {proc.channel_base} (listening on {listening})",
          flush=True)
    print(f"  media: udp {settings.media_bind}:{settings.media_port}, advertised as "
          f"{settings.advertised_ip}", flush=True)
    stop = asyncio.Event()
    drain = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, drain.set)
    try:
        stopped = asyncio.create_task(stop.wait())
        draining = asyncio.create_task(drain.wait())
        await asyncio.wait({stopped, draining}, return_when=asyncio.FIRST_COMPLETED)
        if drain.is_set() and not stop.is_set():
            log.info("SIGTERM: draining; exiting when the last endpoint leaves "
                     "(at most %.0f s)", settings.drain_timeout)
            proc.control.drain()
            bridge.shutting_down = True
            if register:
                await heartbeat.once()  # tell the shards now, not at the next heartbeat
            waiter = asyncio.create_task(wait_drained(bridge, settings.drain_timeout))
            await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done() and not waiter.result():
                log.warning("drain timeout: %d conferences still open", len(bridge.conferences))
            waiter.cancel()
        stopped.cancel()
        draining.cancel()
    finally:
        log.info("shutting down")
        await heartbeat.stop()
        if register:
            with contextlib.suppress(Exception):
                await proc.registry.remove_bridge(proc.bridge_id)
        await proc.control.close()
        await runner.cleanup()
        await bridge.stop()
        await proc.registry.close()
