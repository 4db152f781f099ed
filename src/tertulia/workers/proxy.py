"""The bridge channel of a worker, through serve's own HTTP(S) port.

``/worker/{index}/bridge/ws/{conference}/{endpoint}?token=T`` opens the worker's
``/bridge/ws/{conference}/{endpoint}?token=T`` on 127.0.0.1 and copies text messages both ways,
so browsers reach only serve's port (TLS, --self-signed and reverse proxies keep working). The
token goes through unchanged and the worker checks it: a bad token or an unknown endpoint gets
the worker's 403 before any upgrade. Client messages over the channel's limit close the client
side (1009); either side closing closes the other.

Hand-written over aiohttp's client and server WebSockets (already the project's HTTP stack):
a generic reverse proxy would add a dependency for forty lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import quote

import aiohttp
from aiohttp import WSMsgType, web

from tertulia.bridge.channel import MAX_MESSAGE
from tertulia.workers.supervisor import WorkerSupervisor

log = logging.getLogger(__name__)

SUPERVISOR_KEY = web.AppKey("worker_supervisor", WorkerSupervisor)
CONNECT_TIMEOUT = 5.0
UPSTREAM_MAX_MESSAGE = 256 * 1024  # what a worker sends (slot maps); the worker is trusted


class ChannelProxy:
    def __init__(self, supervisor: WorkerSupervisor) -> None:
        self.supervisor = supervisor
        self.sockets: set[web.WebSocketResponse] = set()  # proxied channels, client side
        self.refused = 0  # bad token, unknown endpoint, or no such worker

    @property
    def open(self) -> int:
        return len(self.sockets)

    async def close_all(self, _: web.Application) -> None:
        """serve is stopping: "going away" (RFC 6455 §7.4.1) to every proxied channel, so the
        HTTP server does not wait for them."""
        for ws in list(self.sockets):
            await ws.close(code=1001)

    async def handler(self, request: web.Request) -> web.StreamResponse:
        port = None
        index = request.match_info["worker"]
        if index.isdigit() and len(index) < 6:
            port = self.supervisor.port_of(int(index))
        session = self.supervisor.session
        if port is None or session is None:
            self.refused += 1
            return web.json_response({"error": "no such bridge worker"}, status=404)
        conference = quote(request.match_info["conference"], safe="")
        endpoint = quote(request.match_info["endpoint"], safe="")
        url = f"http://127.0.0.1:{port}/bridge/ws/{conference}/{endpoint}"
        try:
            upstream = await asyncio.wait_for(session.ws_connect(
                url, params={"token": request.query.get("token", "")},
                max_msg_size=UPSTREAM_MAX_MESSAGE, autoping=True), CONNECT_TIMEOUT)
        except aiohttp.WSServerHandshakeError as exc:
            self.refused += 1
            if exc.status == 403:
                return web.json_response({"error": "unknown endpoint or bad token"}, status=403)
            return web.json_response({"error": "bridge worker refused"}, status=502)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return web.json_response({"error": "bridge worker unreachable"}, status=502)
        ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=MAX_MESSAGE)
        self.sockets.add(ws)
        try:
            await ws.prepare(request)
            await _splice(ws, upstream)
        finally:
            self.sockets.discard(ws)
            await upstream.close()
            await ws.close()
        return ws


async def _splice(client: web.WebSocketResponse,
                  upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy text messages both ways until either side ends (bounded by the sockets' life)."""

    async def to_upstream() -> None:
        async for msg in client:
            if msg.type == WSMsgType.TEXT:
                await upstream.send_str(msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return

    async def to_client() -> None:
        async for msg in upstream:
            if msg.type == WSMsgType.TEXT:
                await client.send_str(msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return

    tasks = {asyncio.create_task(to_upstream()), asyncio.create_task(to_client())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await task


def add_routes(app: web.Application, supervisor: WorkerSupervisor) -> ChannelProxy:
    proxy = ChannelProxy(supervisor)
    app.router.add_get("/worker/{worker}/bridge/ws/{conference}/{endpoint}", proxy.handler)
    app.on_shutdown.append(proxy.close_all)
    return proxy
