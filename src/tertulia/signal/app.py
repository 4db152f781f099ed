"""The signal server's aiohttp application: pages, static files and the /ws sessions."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from tertulia.focus.focus import Focus
from tertulia.protocol.messages import normalize_room
from tertulia.signal.forwarded import HEADER as FORWARDED_FOR
from tertulia.signal.forwarded import TrustedProxies
from tertulia.signal.hub import Hub
from tertulia.signal.limits import Limits
from tertulia.signal.rooms import Rooms
from tertulia.signal.session import Session
from tertulia.signal.tokens import TokenVerifier

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("tertulia") / "web" / "static"))
HUB_KEY = web.AppKey("hub", Hub)
# Ping every HEARTBEAT s; no pong within HEARTBEAT/2 closes the socket (aiohttp).
HEARTBEAT = 10.0
# Close codes a client sends on purpose (RFC 6455 §7.4.1): normal closure, going away (tab
# closed or navigated). Anything else (1006: no close frame) counts as a dropped connection.
CLEAN_CLOSE = {1000, 1001}
BATCH_MAX = 100
# A slow client's outbox may hold this many messages; beyond it the client is disconnected
# rather than letting memory grow.
OUTBOX_LIMIT = 1000
# Frames up to this size are read and, when above the protocol limit, answered with
# `too-large`; anything bigger is abuse and aiohttp closes the socket (1009).
HARD_FRAME_LIMIT = 1024 * 1024

_NO_CACHE = {"Cache-Control": "no-cache"}


def error_page(status: int, title: str, detail: str) -> web.Response:
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width, initial-scale=1"><title>{html.escape(title)} · Tertulia</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body class="error-page"><main class="error-card"><h1>{html.escape(title)}</h1>
<p>{html.escape(detail)}</p><p><a href="/">Back to the home page</a></p></main></body></html>
"""
    return web.Response(status=status, text=body, content_type="text/html", headers=_NO_CACHE)


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)


async def room_page(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["room"]
    if normalize_room(raw) is None:
        return error_page(
            400,
            "Invalid room name",
            f"“{raw[:80]}” is not a valid room name. Room names are 1–64 characters: letters, "
            "digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)


async def health(request: web.Request) -> web.Response:
    rooms = request.app[HUB_KEY].rooms
    return web.json_response(
        {"healthy": True, "rooms": len(rooms.rooms), "participants": rooms.participant_count}
    )


class Outlet:
    """A connection's outgoing queue; consecutive queued messages go out as one `batch`."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[dict[str, Any] | int] = asyncio.Queue()
        self.closing = False

    def send(self, message: dict[str, Any]) -> None:
        if self.closing:
            return
        if self.queue.qsize() >= OUTBOX_LIMIT:
            log.warning("closing a client that does not read its messages")
            self.close(1008)
            return
        self.queue.put_nowait(message)

    def close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            self.queue.put_nowait(code)

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            batch: list[dict[str, Any]] = []
            code: int | None = None
            while True:
                if isinstance(item, int):
                    code = item
                    break
                batch.append(item)
                if self.queue.empty() or len(batch) >= BATCH_MAX:
                    break
                item = self.queue.get_nowait()
            try:
                if len(batch) == 1:
                    await self.ws.send_json(batch[0])
                elif batch:
                    await self.ws.send_json({"type": "batch", "messages": batch})
            except (ConnectionError, RuntimeError):
                return
            if code is not None or any(m.get("type") == "bye" for m in batch):
                await self.ws.close(code=code or 1000)
                return


class SignalSocket(web.WebSocketResponse):
    """aiohttp closes a socket that sends an oversized frame with 1009 and no reason; this
    adds one, so the client learns why (RFC 6455 §7.4.1)."""

    async def close(
        self, *, code: int = 1000, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == 1009 and not message:
            message = f"message too big: frames over {HARD_FRAME_LIMIT} bytes are refused".encode()
        return await super().close(code=code, message=message, drain=drain)


async def ws_handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    address = hub.client_address(request.remote, request.headers.getall(FORWARDED_FOR, []))
    if hub.per_address[address] >= hub.limits.connections_per_address:
        hub.counters["rate_limited"] += 1
        return web.json_response(
            {"code": "too-many-connections",
             "message": "too many open connections from your address"},
            status=429,
        )
    ws = SignalSocket(heartbeat=HEARTBEAT, max_msg_size=HARD_FRAME_LIMIT)
    await ws.prepare(request)
    hub.per_address[address] += 1
    outlet = Outlet(ws)
    session = Session(hub, address, outlet.send, outlet.close,
                      room_param=request.query.get("room"),
                      region=request.headers.get(hub.region_header) or None)
    writer = asyncio.create_task(outlet.run())
    hub.connections[id(outlet)] = outlet.close
    idle_limit = hub.limits.idle_socket_timeout
    try:
        while True:
            # Outside a room (and not knocking) a socket must not sit silent: slowloris at the
            # WebSocket level. Inside one, the heartbeat finds dead peers.
            idle = session.participant is None and session.knock is None
            try:
                msg = await ws.receive(timeout=idle_limit if idle else None)
            except TimeoutError:
                hub.counters["idle_closed"] += 1
                await ws.close(code=1008, message=b"idle: no join and no message")
                break
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            if msg.type == WSMsgType.TEXT:
                session.handle(msg.data)
            elif msg.type == WSMsgType.BINARY:
                session.send(
                    {"type": "error", "code": "bad-json", "message": "binary frames are not used"}
                )
            elif msg.type == WSMsgType.ERROR:
                break
            if outlet.closing:
                break
    finally:
        hub.connections.pop(id(outlet), None)
        hub.per_address[address] -= 1
        if hub.per_address[address] <= 0:
            del hub.per_address[address]
        if outlet.closing or ws.close_code in CLEAN_CLOSE:
            session.close("disconnected")  # the client (or we) closed on purpose
        else:
            session.drop()  # no close frame: keep the participant for the resume grace
        outlet.close(1000)
        try:
            await asyncio.wait_for(writer, timeout=2.0)
        except (TimeoutError, asyncio.CancelledError):
            writer.cancel()
    return ws


def media_lost(rooms: Rooms) -> Callable[[str, str, str], None]:
    """Focus callback: the bridge lost a participant's media (e.g. ICE consent expired)."""

    def callback(room: str, participant_id: str, reason: str) -> None:
        participant = rooms.find(room, participant_id)
        if participant is None:
            return
        participant.outbox({"type": "error", "code": reason, "message": "media connection lost"})
        disconnect = participant.disconnect
        rooms.leave(participant, reason)
        disconnect()

    return callback


def renegotiate(rooms: Rooms) -> Callable[[str, str, str], None]:
    """Focus callback: the participant's bridge failed; its client must send a fresh offer."""

    def callback(room: str, participant_id: str, reason: str) -> None:
        participant = rooms.find(room, participant_id)
        if participant is not None:
            participant.outbox({"type": "renegotiate", "reason": reason})

    return callback


def add_routes(
    app: web.Application,
    focus: Focus,
    *,
    slots: int,
    limits: Limits,
    tokens: TokenVerifier,
    shard: bool = False,
    region_header: str = "X-Proxy-Region",
    trusted_proxies: TrustedProxies | None = None,
) -> Hub:
    rooms = Rooms(chat_history=limits.chat_history)
    def loop_call_later(delay: float, fn: Callable[[], None]) -> Any:
        return (asyncio.get_running_loop().call_later(delay, fn))
    hub = Hub(rooms, focus, limits, tokens, slots, loop_call_later, require_room_param=shard,
              region_header=region_header,
              trusted_proxies=trusted_proxies or TrustedProxies())
    app[HUB_KEY] = hub
    focus.on_media_lost = media_lost(rooms)
    focus.on_renegotiate = renegotiate(rooms)

    async def close_connections(_: web.Application) -> None:
        # "going away" (RFC 6455 §7.4.1): clients reconnect with back-off instead of hanging
        for close in list(hub.connections.values()):
            close(1001)

    app.on_shutdown.append(close_connections)
    app.router.add_get("/", index)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/about/health", health)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return hub


def add_room_route(app: web.Application) -> None:
    """``/<room>``: registered last, after every other one-segment path."""
    app.router.add_get("/{room}", room_page)
