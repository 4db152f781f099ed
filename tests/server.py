"""Start a real Tertulia server (`tertulia serve` in-process) on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import aiohttp
from aiohttp import web

from tertulia.bridge.bridge import Bridge
from tertulia.config import Settings, validate
from tertulia.serve import build, make_runner
from tertulia.tls import prepare


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_udp_range(count: int) -> int:
    """A UDP port with ``count`` free ports from it (`serve --workers K` binds media_port + i);
    bounded search."""
    for _ in range(50):
        base = free_port(socket.SOCK_DGRAM)
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free UDP port range")


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
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port,
                       ssl_context=server_tls.context if server_tls else None)
    await site.start()
    try:
        yield RunningServer(settings, bridge, app)
    finally:
        await runner.cleanup()


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    media_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def server_process(extra_env: dict[str, str] | None = None) -> AsyncIterator[ServerProcess]:
    """`tertulia serve` in its own process on free loopback ports."""
    port, media = free_port(), free_port(socket.SOCK_DGRAM)
    env = {**os.environ, "TERTULIA_LOG_LEVEL": "error", **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "tertulia", "serve", "--port", str(port), "--media-port",
         str(media)], env=env, stdout=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/about/health") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the server did not start")
        yield ServerProcess(process, port, media)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
