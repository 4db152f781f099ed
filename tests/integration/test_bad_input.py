"""Bad input gets a clear error and loses nothing: signalling and media."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import aiohttp
import pytest
from aioice import stun

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(120)


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def test_malformed_signalling_gets_errors_and_session_stays_usable() -> None:
    async with running_server() as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws)
        await ws.send_str("not json")
        assert (await next_json(ws))["code"] == "bad-json"
        await ws.send_bytes(b"\x00\x01")
        assert (await next_json(ws))["code"] == "bad-json"
        await ws.send_json({"type": "offer", "sdp": "v=0", "id": 4})
        reply = await next_json(ws)
        assert (reply["code"], reply["ref"]) == ("not-joined", 4)
        await ws.send_str(json.dumps({"type": "ping", "pad": "x" * 300_000}))
        assert (await next_json(ws))["code"] == "too-large"
        await ws.send_json({"type": "join", "room": "Bad Room!"})
        reply = await next_json(ws)
        assert reply["code"] == "invalid-room" and "room names" in reply["message"]
        await ws.send_json({"type": "warp"})
        reply = await next_json(ws)
        assert reply["code"] == "bad-message" and "warp" in reply["message"]

        await ws.send_json({"type": "join", "room": "ok-room", "name": "Ana", "id": 1})
        welcome = await next_json(ws)
        assert welcome["type"] == "welcome" and welcome["ref"] == 1
        await ws.send_json({"type": "join", "room": "ok-room", "id": 2})
        assert (await next_json(ws))["code"] == "already-joined"
        await ws.send_json({"type": "offer", "sdp": "v=0\r\nm=audio 9 RTP/AVP 0\r\n", "id": 3})
        reply = await next_json(ws)
        assert reply["code"] == "bad-sdp" and reply["ref"] == 3 and reply["message"]
        await ws.send_json({"type": "ping", "id": 5})
        assert await next_json(ws) == {"type": "pong", "ref": 5}
        await ws.close()


async def test_invalid_room_page_and_health() -> None:
    async with running_server() as server, aiohttp.ClientSession() as http:
        async with http.get(server.http + "/no%20spaces%20here") as resp:
            assert resp.status == 400
            text = await resp.text()
            assert "Invalid room name" in text and "Traceback" not in text
        async with http.get(server.http + "/about/health") as resp:
            assert resp.status == 200 and (await resp.json())["healthy"] is True
        async with http.get(server.http + "/about/bridge/health") as resp:
            assert resp.status == 200
        async with http.get(server.http + "/bridge/ws/nope/nope?token=x") as resp:
            assert resp.status == 403


def stun_check(username: str, key: bytes) -> bytes:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(key)
    return bytes(request)


async def test_garbage_datagrams_are_dropped_counted_and_media_keeps_flowing() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        peers = [Peer(n, server.ws, "garbage-room", shade=s) for n, s in (("a", 50), ("b", 150))]
        try:
            for peer in peers:
                await peer.join()
            a, b = peers
            assert await wait_until(
                lambda: (a.frames_from(b.id) or 0) and a.frames_from(b.id).video_frames > 5,  # type: ignore[union-attr]
                timeout=20,
            )
            bridge = server.bridge
            port = server.settings.media_port
            # From an address that never passed a connectivity check.
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                junk = [
                    b"",
                    b"\x00\x01\x00",  # short STUN
                    stun_check("nobody:x", b"k" * 22),  # unknown ufrag
                    bytes([22, 0xFE, 0xFD]) + os.urandom(60),  # DTLS from unknown address
                    bytes([0x80, 96]) + os.urandom(100),  # RTP from unknown address
                    bytes([0x81, 200]) + os.urandom(30),  # RTCP from unknown address
                    bytes([100]) + os.urandom(20),  # no protocol at all
                ] + [os.urandom(n) for n in (1, 20, 200, 1400) for _ in range(10)]
                for data in junk:
                    if data:
                        sock.sendto(data, ("127.0.0.1", port))
                endpoint = bridge.find_endpoint(
                    next(iter(bridge.conferences)), a.id
                )
                assert endpoint is not None and endpoint.addr is not None
                # A valid-looking check for a real endpoint but with the wrong password.
                sock.sendto(
                    stun_check(f"{endpoint.creds.local_ufrag}:{endpoint.creds.remote_ufrag}",
                               b"wrong-password-here!!!"),
                    ("127.0.0.1", port),
                )
                await asyncio.sleep(0.5)
            finally:
                sock.close()
            # From a connected endpoint's own address: forged SRTP/SRTCP and DTLS junk.
            for data in (
                bytes([0x80, 96]) + os.urandom(200),
                bytes([0x80, 200]) + os.urandom(40),
                bytes([0x80]),
                bytes([23, 0xFE, 0xFD]) + os.urandom(50),
            ):
                bridge.datagram_received(data, endpoint.addr)
            counters = bridge.counters
            for reason in (
                "dropped-malformed-stun",
                "dropped-stun-unknown-user",
                "dropped-stun-bad-message-integrity",
                "dropped-unknown-address",
                "dropped-srtp-auth",
                "dropped-srtcp-auth",
                "dropped-unknown-kind",
            ):
                assert counters[reason] > 0, (reason, dict(counters))
            assert counters["dropped-internal-error"] == 0
            # Media of both keeps flowing.
            before = (a.frames_from(b.id).video_frames, b.frames_from(a.id).video_frames)  # type: ignore[union-attr]
            assert await wait_until(
                lambda: a.frames_from(b.id).video_frames > before[0] + 10  # type: ignore[union-attr]
                and b.frames_from(a.id).video_frames > before[1] + 10,  # type: ignore[union-attr]
                timeout=10,
            )
        finally:
            for peer in peers:
                await peer.close()
