"""The bridge channel: a WebSocket from each client straight to its bridge.

It carries the slot mapping (and later speaker changes and receiver constraints) so that this
traffic never passes through the signalling server (docs/protocol.md, "Bridge channel").
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from tertulia.bridge.bridge import Bridge

log = logging.getLogger(__name__)

MAX_MESSAGE = 16 * 1024
BRIDGE_KEY = web.AppKey("bridge", Bridge)
_QUEUE_LIMIT = 256


async def channel_handler(request: web.Request) -> web.StreamResponse:
    bridge: Bridge = request.app[BRIDGE_KEY]
    conference_id = request.match_info["conference"]
    endpoint_id = request.match_info["endpoint"]
    endpoint = bridge.find_endpoint(conference_id, endpoint_id)
    token = request.query.get("token", "")
    if endpoint is None or not hmac.compare_digest(token, endpoint.channel_token):
        return web.json_response(
            {"error": "unknown endpoint or bad token"}, status=403
        )
    ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE_LIMIT)

    def listener(message: dict[str, Any]) -> None:
        if queue.full():
            return  # a stuck client loses updates rather than growing memory; next one is full
        queue.put_nowait(message)

    async def writer() -> None:
        while True:
            message = await queue.get()
            if message is None or message.get("type") == "closed":
                await ws.close()
                return
            await ws.send_json(message)

    endpoint.channel_listeners.append(listener)
    listener(endpoint.slots_message())
    conference = bridge.conferences.get(conference_id)
    if conference is not None and conference.speaker.dominant is not None:
        listener(conference.speaker_message())
    if endpoint.max_height_wanted is not None:
        listener({"type": "sender-constraints", "maxHeight": endpoint.max_height_wanted})
    write_task = asyncio.create_task(writer())
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            reply, action = handle_client_message(msg.data)
            if action is not None:
                reply = bridge.channel_action(conference_id, endpoint_id, action) or reply
            if reply is not None:
                listener(reply)
    finally:
        if listener in endpoint.channel_listeners:
            endpoint.channel_listeners.remove(listener)
        write_task.cancel()
    return ws


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


Action = tuple[str, Any]  # ("sharing", bool) | ("constraints", dict)


def handle_client_message(text: str) -> tuple[dict[str, Any] | None, Action | None]:
    """Pure: the bridge's reply to one client message, and what the bridge should do."""
    try:
        message = json.loads(text)
    except ValueError:
        return _error("bad-json", "not valid JSON"), None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return _error("bad-message", "expected an object with 'type'"), None
    kind = message["type"]
    if kind == "ping":
        return {"type": "pong"}, None
    if kind == "sharing":
        active = message.get("screen")
        if not isinstance(active, bool):
            return _error("bad-message", "field 'screen' must be a boolean"), None
        return None, ("sharing", active)
    if kind == "constraints":
        return None, ("constraints", message)
    return _error("bad-message", f"unknown message type {kind[:40]!r}"), None
