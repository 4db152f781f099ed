"""Two Chromium pages meet through a shard and bridge processes (real Redis); the bridge they
use is killed; the web client renegotiates on request and media flows again via the other."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.test_meeting import room_url, wait_for
from tests.cluster_procs import Proc, processes, wait_http
from tests.redis_server import redis_server
from tests.server import free_port

pytestmark = pytest.mark.timeout(180)


async def test_pages_move_to_another_bridge_when_theirs_dies(browser: Browser) -> None:
    with redis_server() as redis, processes() as (_, procs):
        bridges: dict[int, Proc] = {}  # media port → process
        for name in ("a", "b"):
            control, media_port = free_port(), free_port(socket.SOCK_DGRAM)
            procs.append(Proc(["bridge", "--redis", redis.url, "--bridge-id", f"jvb-{name}",
                               "--control-port", str(control), "--media-port",
                               str(media_port)]))
            bridges[media_port] = procs[-1]
            await wait_http(f"http://127.0.0.1:{control}/about/health")
        port = free_port()
        procs.append(Proc(["shard", "--port", str(port), "--redis", redis.url]))
        await wait_http(f"http://127.0.0.1:{port}/about/health")

        pages: list[Page] = []
        errors: list[str] = []
        for name in ("Ana", "Bo"):
            context = await browser.new_context(viewport={"width": 1280, "height": 720})
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(room_url(f"http://127.0.0.1:{port}", "Failover-Room", name))
            pages.append(page)

        def decoding(s: dict[str, Any], port: int | None = None, minimum: int = 10) -> bool:
            peers = s.get("peers", {})
            return (len(peers) == 1 and all(v["video"] >= minimum for v in peers.values())
                    and (port is None or s.get("remotePort") == port))

        snap = await wait_for(pages, decoding, timeout=40)
        used = {s["remotePort"] for s in snap}
        assert len(used) == 1 and used <= set(bridges), snap
        dead = used.pop()
        other = next(p for p in bridges if p != dead)
        killed_at = time.monotonic()
        bridges[dead].kill()
        await wait_for(pages, lambda s: decoding(s, other, minimum=5), timeout=30)
        print(f"\nbrowser bridge failover: {time.monotonic() - killed_at:.2f} s")
        for page in pages:
            assert await page.evaluate("window.tertulia.state") == "joined"
        assert not errors, errors
        await asyncio.gather(*(p.context.close() for p in pages))
