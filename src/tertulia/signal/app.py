"""The signal server's aiohttp application: pages, static files and the /ws sessions."""

from __future__ import annotations

import asyncio
import html
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from tertulia.focus.focus import Focus, FocusError
from tertulia.protocol.messages import (
    Join,
    Leave,
    Mute,
    Offer,
    Ping,
    ProtocolError,
    normalize_room,
    parse_client_message,
)
from tertulia.signal.rooms import Participant, Rooms, new_participant_id

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("tertulia") / "web" / "static"))
ROOMS_KEY = web.AppKey("rooms", Rooms)
FOCUS_KEY = web.AppKey("focus", Focus)
SETTINGS_KEY = web.AppKey("signal_settings", dict)
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
    rooms = request.app[ROOMS_KEY]
    return web.json_response(
        {"healthy": True, "rooms": len(rooms.rooms), "participants": rooms.participant_count}
    )


class Session:
    """One WebSocket client: at most one participant, one offer."""

    def __init__(
        self, ws: web.WebSocketResponse, rooms: Rooms, focus: Focus, *, slots: int, max_bytes: int
    ) -> None:
        self.ws = ws
        self.slots = slots
        self.rooms = rooms
        self.focus = focus
        self.max_bytes = max_bytes
        self.participant: Participant | None = None
        self.offered = False
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        if self.queue.qsize() >= OUTBOX_LIMIT:
            log.warning("closing a client that does not read its messages")
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(message)

    async def writer(self) -> None:
        while True:
            message = await self.queue.get()
            if message is None:
                await self.ws.close()
                return
            try:
                await self.ws.send_json(message)
            except (ConnectionError, RuntimeError):
                return
            if message.get("type") == "bye":
                await self.ws.close()
                return

    def handle(self, text: str) -> None:
        ref = None
        try:
            message, ref = parse_client_message(text, self.max_bytes)
            self.dispatch(message, ref)
        except ProtocolError as exc:
            self.send(exc.reply())
        except Exception:  # a bug must cost one request, not the session
            log.exception("internal error handling a client message")
            self.send(
                ProtocolError("internal-error", "the server failed to handle this request",
                              ref).reply()
            )

    def dispatch(self, message: Any, ref: Any) -> None:
        def reply(body: dict[str, Any]) -> None:
            if ref is not None:
                body["ref"] = ref
            self.send(body)

        if isinstance(message, Ping):
            reply({"type": "pong"})
        elif isinstance(message, Join):
            if self.participant is not None:
                raise ProtocolError("already-joined", "this session already joined a room", ref)
            participant = Participant(
                new_participant_id(),
                message.name or "Guest",
                message.audio_muted,
                message.video_muted,
                self.send,
                self.disconnect,
            )
            room = self.rooms.join(message.room, participant)
            self.participant = participant
            others = [p.public() for p in room.participants.values() if p is not participant]
            reply(
                {
                    "type": "welcome",
                    "room": room.name,
                    "participant": participant.id,
                    "participants": others,
                    "slots": self.slots,
                }
            )
        elif isinstance(message, Offer):
            participant = self._require_joined(ref)
            if self.offered:
                raise ProtocolError("already-offered", "this session already sent its offer", ref)
            try:
                allocation = self.focus.offer(participant.room, participant.id, message.sdp)
            except FocusError as exc:
                raise ProtocolError(exc.code, exc.message, ref) from exc
            self.offered = True
            participant.has_media = True
            reply(
                {
                    "type": "answer",
                    "sdp": allocation.answer,
                    "endpoint": allocation.endpoint_id,
                    "bridgeChannel": allocation.channel_path,
                }
            )
        elif isinstance(message, Mute):
            participant = self._require_joined(ref)
            if message.audio_muted is not None:
                participant.audio_muted = message.audio_muted
            if message.video_muted is not None:
                participant.video_muted = message.video_muted
            self.rooms.update(participant)
        elif isinstance(message, Leave):
            self.close("left")
            self.send({"type": "bye"})

    def disconnect(self) -> None:
        self.queue.put_nowait(None)

    def _require_joined(self, ref: Any) -> Participant:
        if self.participant is None:
            raise ProtocolError("not-joined", "send 'join' first", ref)
        return self.participant

    def close(self, reason: str) -> None:
        """Leave the room and release media; idempotent."""
        participant = self.participant
        if participant is None:
            return
        self.participant = None
        self.focus.leave(participant.room, participant.id)
        self.rooms.leave(participant, reason)


async def ws_handler(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=HARD_FRAME_LIMIT)
    await ws.prepare(request)
    session = Session(
        ws,
        request.app[ROOMS_KEY],
        request.app[FOCUS_KEY],
        slots=settings["slots"],
        max_bytes=settings["max_bytes"],
    )
    writer = asyncio.create_task(session.writer())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                session.handle(msg.data)
            elif msg.type == WSMsgType.BINARY:
                session.send(
                    {"type": "error", "code": "bad-json", "message": "binary frames are not used"}
                )
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        session.close("disconnected")
        session.queue.put_nowait(None)
        try:
            await asyncio.wait_for(writer, timeout=2.0)
        except (TimeoutError, asyncio.CancelledError):
            writer.cancel()
    return ws


def media_lost(rooms: Rooms) -> Any:
    """Focus callback: the bridge lost a participant's media (e.g. ICE consent expired)."""

    def callback(room: str, participant_id: str, reason: str) -> None:
        participant = rooms.find(room, participant_id)
        if participant is None:
            return
        participant.outbox(
            {"type": "error", "code": reason, "message": "media connection lost"}
        )
        rooms.leave(participant, reason)
        participant.disconnect()

    return callback


def add_routes(app: web.Application, rooms: Rooms, focus: Focus, *, slots: int,
               max_bytes: int) -> None:
    app[ROOMS_KEY] = rooms
    app[FOCUS_KEY] = focus
    app[SETTINGS_KEY] = {"slots": slots, "max_bytes": max_bytes}
    focus.on_media_lost = media_lost(rooms)
    app.router.add_get("/", index)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/about/health", health)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    app.router.add_get("/{room}", room_page)
