"""A real bridge with its control API (`tertulia bridge`'s app) in this process, on free ports."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from tertulia.cluster.bridge_process import BridgeProcess, build
from tertulia.config import Settings, validate
from tertulia.registry.memory import MemoryRegistry
from tests.server import free_port

SECRET = "a-control-secret-of-32-bytes-or-more"
OFFER = (Path(__file__).parent / "data" / "aiortc-offer-2slots.sdp").read_text()


@asynccontextmanager
async def running_bridge(**overrides: Any) -> AsyncIterator[BridgeProcess]:
    settings = validate(replace(
        Settings(control_port=free_port(), media_port=free_port(socket.SOCK_DGRAM),
                 control_secret=SECRET, region="eu", bridge_id="b1"),
        **overrides,
    ))
    proc = build(settings, MemoryRegistry())
    await proc.bridge.start()
    runner = web.AppRunner(proc.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.control_port).start()
    try:
        yield proc
    finally:
        await proc.control.close()
        await runner.cleanup()
        await proc.bridge.stop()


