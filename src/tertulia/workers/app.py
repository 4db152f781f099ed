"""The serve process of `tertulia serve --workers K`: web, signal and focus as a shard has
them, over an in-memory registry that the worker supervisor fills.

Placement is BridgeSelector's ``single`` strategy over the workers: a new conference goes to
the least stressed worker (corrected by the joins placed there in the last seconds); it stays
there until that worker is overloaded (stress 0.8) or holds ``worker_conference_cap`` of its
participants, then grows onto the least stressed other worker, joined by a relay over
127.0.0.1 as between the bridges of a cascade.

``/about/bridge/stats`` adds the workers' live stats up (policy.aggregate) and lists each
worker; ``/metrics`` labels every ``tertulia_bridge_*`` sample with its ``worker``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tertulia import tls, turn
from tertulia.cluster.metrics import ShardCollector
from tertulia.cluster.pool import RegistryPool
from tertulia.config import Settings
from tertulia.focus.focus import Focus
from tertulia.focus.selection import BridgeSelector
from tertulia.metrics import BRIDGE_COUNTERS, BRIDGE_GAUGES, SignalCollector, add_metrics_route
from tertulia.registry.memory import MemoryRegistry
from tertulia.signal import app as signal_app
from tertulia.signal.tokens import TokenVerifier
from tertulia.tls import ServerTls
from tertulia.workers import policy, proxy
from tertulia.workers.supervisor import WorkerSupervisor


@dataclass
class WorkersServe:
    app: web.Application
    focus: Focus
    pool: RegistryPool
    supervisor: WorkerSupervisor
    proxy: proxy.ChannelProxy
    signal_metrics: SignalCollector


def build(settings: Settings, server_tls: ServerTls | None = None) -> WorkersServe:
    registry = MemoryRegistry()
    selector = BridgeSelector("single", max_per_bridge=settings.worker_conference_cap)
    supervisor = WorkerSupervisor(settings, registry)
    pool = RegistryPool(registry, selector, secret=supervisor.secret, shard_id="serve")
    supervisor.on_change = pool.refresh
    focus = Focus(pool)
    pool.on_failed = focus.bridge_failed
    pool.on_expired = focus.endpoint_expired
    app = web.Application()
    app[proxy.SUPERVISOR_KEY] = supervisor
    channel_proxy = proxy.add_routes(app, supervisor)
    app.router.add_get("/about/bridge/stats", _stats)
    app.router.add_get("/about/bridge/endpoints", _endpoints)
    app.router.add_get("/about/bridge/health", _health)
    hub = signal_app.add_routes(app, focus, slots=settings.slots, limits=settings.limits(),
                                tokens=TokenVerifier(settings.token_settings()),
                                trusted_proxies=settings.proxies())
    hub.ice_servers = turn.provider(settings)
    signal_metrics = SignalCollector(hub)
    add_metrics_route(app, signal_metrics, ShardCollector(focus, pool),
                      WorkersCollector(supervisor, channel_proxy))
    tls.add_route(app, server_tls)
    signal_app.add_room_route(app)

    async def on_startup(_: web.Application) -> None:
        await supervisor.start()  # WorkerStartError (an OSError) says which worker failed
        await pool.start()

    async def on_cleanup(_: web.Application) -> None:
        await pool.stop()
        await supervisor.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return WorkersServe(app, focus, pool, supervisor, channel_proxy, signal_metrics)


async def _fetch_all(supervisor: WorkerSupervisor, path: str) -> list[Any]:
    return list(await asyncio.gather(*(supervisor.fetch(w, path) for w in supervisor.workers)))


async def _stats(request: web.Request) -> web.Response:
    supervisor = request.app[proxy.SUPERVISOR_KEY]
    answers = await _fetch_all(supervisor, "/about/bridge/stats")
    live = [a for a in answers if isinstance(a, dict)]
    body = policy.aggregate(live, len(supervisor.workers))
    body["workers"] = [
        {"worker": w.index, "bridge_id": w.bridge_id, "pid": w.pid, "restarts": w.restarts,
         "media_port": w.media_port, "up": isinstance(a, dict),
         **({k: a.get(k) for k in ("conferences", "endpoints", "stress_level", "relays")}
            if isinstance(a, dict) else {})}
        for w, a in zip(supervisor.workers, answers, strict=True)
    ]
    return web.json_response(body)


async def _endpoints(request: web.Request) -> web.Response:
    answers = await _fetch_all(request.app[proxy.SUPERVISOR_KEY], "/about/bridge/endpoints")
    rows = [row for a in answers if isinstance(a, dict)
            for row in a.get("endpoints", []) if isinstance(row, dict)]
    return web.json_response({"endpoints": rows})


async def _health(request: web.Request) -> web.Response:
    supervisor = request.app[proxy.SUPERVISOR_KEY]
    answers = await _fetch_all(supervisor, "/about/bridge/health")
    down = [w.index for w, a in zip(supervisor.workers, answers, strict=True)
            if not (isinstance(a, dict) and a.get("healthy"))]
    if not down:
        return web.json_response({"healthy": True})
    return web.json_response({"healthy": False, "reason": f"workers not healthy: {down}"},
                             status=503)


class WorkersCollector(Collector):
    """The workers' bridge metrics from their last stats poll (at most a heartbeat old), one
    sample per worker labelled ``worker``; sum them for the machine."""

    def __init__(self, supervisor: WorkerSupervisor, channel_proxy: proxy.ChannelProxy) -> None:
        self.supervisor = supervisor
        self.proxy = channel_proxy

    def collect(self) -> Iterator[Metric]:
        workers = self.supervisor.workers
        polled = [(str(w.index), w.stats) for w in workers if w.stats is not None]
        for key, doc in BRIDGE_GAUGES.items():
            family = GaugeMetricFamily(f"tertulia_bridge_{key}", doc, labels=["worker"])
            for label, stats in polled:
                family.add_metric([label], float(stats.get(key, 0.0)))
            yield family
        for key, doc in BRIDGE_COUNTERS.items():
            family_c = CounterMetricFamily(f"tertulia_bridge_{key.removeprefix('total_')}", doc,
                                           labels=["worker"])
            for label, stats in polled:
                family_c.add_metric([label], float(stats.get(key, 0.0)))
            yield family_c
        healthy = GaugeMetricFamily("tertulia_bridge_healthy", "1 when the media port is bound",
                                    labels=["worker"])
        dropped = CounterMetricFamily("tertulia_bridge_dropped_datagrams",
                                      "Datagrams dropped, by reason", labels=["worker", "reason"])
        for label, stats in polled:
            healthy.add_metric([label], 1.0 if stats.get("healthy") else 0.0)
            counters = stats.get("counters")
            for key, value in sorted(counters.items() if isinstance(counters, dict) else []):
                if key.startswith("dropped-"):
                    dropped.add_metric([label, key.removeprefix("dropped-")], float(value))
        yield healthy
        yield dropped
        up = GaugeMetricFamily("tertulia_worker_up", "1 while the bridge worker runs and "
                               "answers", labels=["worker"])
        restarts = CounterMetricFamily("tertulia_worker_restarts", "Times the bridge worker "
                                       "was restarted after it died", labels=["worker"])
        for worker in workers:
            up.add_metric([str(worker.index)], 1.0 if worker.running and worker.stats else 0.0)
            restarts.add_metric([str(worker.index)], float(worker.restarts))
        yield up
        yield restarts
        yield GaugeMetricFamily("tertulia_worker_channels_proxied",
                                "Bridge channels open through serve to the workers",
                                value=float(self.proxy.open))
