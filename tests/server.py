"""Start a real Tertulia server (`tertulia serve` in-process) on free loopback ports."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from aiohttp import web

from tertulia.bridge.bridge import Bridge
from tertulia.config import Settings, validate
from tertulia.serve import build
from tertulia.tls import prepare


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningServer:
    settings: Settings
    bridge: Bridge
    app: web.Application

    @property
    def http(self) -> str:
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://127.0.0.1:{self.settings.port}"

    @property
    def ws(self) -> str:
        scheme = "wss" if self.settings.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.settings.port}/ws"


@asynccontextmanager
async def running_server(**overrides: object) -> AsyncIterator[RunningServer]:
    settings = validate(
        replace(
            Settings(port=free_port(), media_port=free_port(socket.SOCK_DGRAM)),
            **overrides,  # type: ignore[arg-type]
        )
    )
    server_tls = prepare(settings)
    app, bridge = build(settings, server_tls)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port,
                       ssl_context=server_tls.context if server_tls else None)
    await site.start()
    try:
        yield RunningServer(settings, bridge, app)
    finally:
        await runner.cleanup()
