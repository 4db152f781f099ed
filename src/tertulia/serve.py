"""`tertulia serve`: web client, signal, focus, one bridge and in-memory registry in one process.

With ``workers`` > 1 the bridges run as that many worker processes instead (tertulia/workers/).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from contextlib import suppress

from aiohttp import web

from tertulia import tls, turn
from tertulia.accept import Acceptor
from tertulia.bridge import api as bridge_api
from tertulia.bridge.bridge import Bridge, BridgeSettings
from tertulia.config import Settings
from tertulia.focus.focus import local_focus
from tertulia.metrics import BridgeCollector, SignalCollector, add_metrics_route
from tertulia.signal import app as signal_app
from tertulia.signal.tokens import TokenVerifier
from tertulia.stun_discovery import advertise_discovered
from tertulia.tls import ServerTls, self_signed_instructions

log = logging.getLogger("tertulia")

RECOMMENDED_NOFILE = 65536
SIGNAL_METRICS_KEY = web.AppKey("signal_metrics", SignalCollector)


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; warn when it stays low.

    Exhausted descriptors took down meet.jit.si's web and XMPP servers in 2020.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, RECOMMENDED_NOFILE)
    if soft < target:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft < RECOMMENDED_NOFILE:
        log.warning(
            "open-file limit is %d (recommended at least %d): raise it (ulimit -n / "
            "LimitNOFILE=) before serving many participants",
            soft,
            RECOMMENDED_NOFILE,
        )
    return soft


def build(
    settings: Settings, server_tls: ServerTls | None = None
) -> tuple[web.Application, Bridge]:
    bridge = Bridge(
        BridgeSettings(
            media_host=settings.media_bind,
            media_port=settings.media_port,
            public_ip=settings.advertised_ip,
            relay_ip=settings.relay_ip,
            slots=settings.slots,
            consent_timeout=settings.consent_timeout,
        )
    )
    focus = local_focus(bridge)
    app = web.Application()
    bridge_api.add_routes(app, bridge)
    hub = signal_app.add_routes(
        app,
        focus,
        slots=settings.slots,
        limits=settings.limits(),
        tokens=TokenVerifier(settings.token_settings()),
        trusted_proxies=settings.proxies(),
    )

    hub.ice_servers = turn.provider(settings)
    signal_metrics = SignalCollector(hub)
    app[SIGNAL_METRICS_KEY] = signal_metrics
    add_metrics_route(app, BridgeCollector(bridge), signal_metrics)
    tls.add_route(app, server_tls)
    signal_app.add_room_route(app)

    async def on_startup(_: web.Application) -> None:
        await bridge.start()

    async def on_shutdown(_: web.Application) -> None:
        await bridge.stop()  # expires every endpoint, which also closes the bridge channels

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app, bridge


def public_url(settings: Settings) -> str:
    scheme = "https" if settings.tls else "http"
    if settings.domain:
        shown = settings.domain
    elif settings.host in ("127.0.0.1", "::1"):
        shown = "localhost"
    elif settings.host in ("0.0.0.0", "::", ""):
        # With TLS the name must be one the certificate covers: the advertised address is.
        shown = settings.advertised_ip if settings.tls else "localhost"
    else:
        shown = settings.host
    if ":" in shown:
        shown = f"[{shown}]"
    default = 443 if settings.tls else 80
    return f"{scheme}://{shown}{'' if settings.port == default else f':{settings.port}'}/"


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The HTTP runner. aiohttp's keep-alive timer also runs from the moment a connection is
    accepted and closes it when no complete request head has arrived by then, so it bounds
    slow and silent clients (slowloris) as well as idle keep-alive connections."""
    return web.AppRunner(app, access_log=None, keepalive_timeout=settings.request_timeout)


async def run(settings: Settings) -> None:
    raise_nofile_limit()
    settings = await advertise_discovered(settings)  # --stun-server without --public-ip
    server_tls = tls.prepare(settings)  # TlsError (a ValueError) says what is wrong
    if settings.workers > 1:  # one bridge process per core (tertulia/workers/)
        from tertulia.workers.app import build as build_workers

        served = build_workers(settings, server_tls)
        app = served.app
        app[SIGNAL_METRICS_KEY] = served.signal_metrics
    else:
        app, _bridge = build(settings, server_tls)
    runner = make_runner(app, settings)
    await runner.setup()
    # Our own accept loop instead of web.TCPSite: it answers 503 when descriptors run out.
    acceptor = Acceptor()
    await acceptor.start(
        runner, settings.host, settings.port, server_tls.context if server_tls else None
    )
    app[SIGNAL_METRICS_KEY].acceptor = acceptor
    url = public_url(settings)
    print(f"Tertulia is running: open {url}", flush=True)
    if server_tls is not None and server_tls.info.self_signed:
        print(self_signed_instructions(url, server_tls.info.fingerprint), flush=True)
        made = "new, " if server_tls.created else ""
        print(f"  certificate ({made}cached): {server_tls.cert_file}", flush=True)
    ports = str(settings.media_port)
    if settings.workers > 1:
        ports += f"-{settings.media_port + settings.workers - 1} ({settings.workers} workers)"
    print(
        f"  media: udp {settings.media_bind}:{ports}, advertised as {settings.advertised_ip}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        acceptor.close()
        await runner.cleanup()
