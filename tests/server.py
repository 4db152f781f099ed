"""Start a real Tertulia server (`tertulia serve` in-process) on free loopback ports."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from aiohttp import web

from tertulia.bridge.bridge import Bridge
from tertulia.config import Settings, validate
from tertulia.serve import build, make_runner


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
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}/ws"


@asynccontextmanager
async def running_server(**overrides: object) -> AsyncIterator[RunningServer]:
    settings = validate(
        replace(
            Settings(port=free_port(), media_port=free_port(socket.SOCK_DGRAM)),
            **overrides,  # type: ignore[arg-type]
        )
    )
    app, bridge = build(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    try:
        yield RunningServer(settings, bridge, app)
    finally:
        await runner.cleanup()
