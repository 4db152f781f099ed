"""The `welcome` carries iceServers with fresh TURN credentials when TURN is configured."""

from __future__ import annotations

import time

import aiohttp

from tertulia.turn import credential
from tests.server import running_server


async def join(ws_url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        await ws.send_json({"type": "join", "room": "turn", "name": "x", "id": 1})
        welcome: dict[str, object] = await ws.receive_json(timeout=5)
        return welcome


async def test_welcome_has_time_limited_turn_credentials() -> None:
    urls = ("stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=tcp")
    async with running_server(turn_urls=urls, turn_secret="s3cret", turn_ttl=600) as server:
        before = int(time.time())
        welcome = await join(server.ws)
    assert welcome["type"] == "welcome"
    stun, turn = welcome["iceServers"]  # type: ignore[misc]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    expiry, participant = turn["username"].split(":")
    assert participant == welcome["participant"]
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    assert turn["credential"] == credential("s3cret", turn["username"])


async def test_welcome_without_turn_has_no_ice_servers() -> None:
    async with running_server() as server:
        welcome = await join(server.ws)
    assert welcome["iceServers"] == []
