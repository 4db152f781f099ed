"""Slow and abusive signalling clients against a real server, over raw sockets.

Slowloris (a request head trickled byte by byte, an upgrade request never finished, a socket
that connects and says nothing, an upgraded WebSocket that never joins) is disconnected within
the configured time while other people keep joining and chatting; oversized frames are closed
with 1009; room and display names with markup, control characters, bidi overrides or too many
characters are refused or neutralised, each with a clear error.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from typing import Any

import aiohttp
import pytest

from tests.server import RunningServer, running_server, server_process
from tests.wsclient import Client

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 1.5  # request_timeout and idle_socket_timeout of the server under test
GRACE = 5.0  # how much later than the timeout a slow client may still be connected


def upgrade_head(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (EOF), reading whatever comes."""
    start = time.monotonic()
    deadline = start + limit
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            data = await asyncio.wait_for(reader.read(4096), remaining)
        except TimeoutError:
            break
        except ConnectionError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
    raise AssertionError(f"still connected after {limit} s")


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Send ``data`` one byte at a time; stops quietly once the server has closed."""
    for byte in data:
        if writer.is_closing():
            return
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(interval)


async def chat_round(a: Client, b: Client, n: int) -> None:
    text = f"still here {n}"
    await a.send({"type": "chat", "text": text})
    await b.wait(lambda m: m.get("type") == "chat" and m.get("text") == text, timeout=5)


async def test_slowloris_clients_are_disconnected_while_others_keep_meeting() -> None:
    async with running_server(request_timeout=TIMEOUT, idle_socket_timeout=TIMEOUT) as server, \
            aiohttp.ClientSession() as http:
        port = server.settings.port
        silent = await asyncio.open_connection("127.0.0.1", port)
        slow_head = await asyncio.open_connection("127.0.0.1", port)
        slow_upgrade = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: " + b"s" * 200 + b"\r\n\r\n"
        tricklers = [
            asyncio.create_task(trickle(slow_head[1], head, 0.05)),
            # the whole upgrade request but its final blank line, then nothing
            asyncio.create_task(trickle(slow_upgrade[1], upgrade_head(port)[:-2], 0.01)),
        ]
        never_joins = await http.ws_connect(server.ws, autoping=True)

        # Meanwhile people join and chat.
        ana = await Client(http, server.ws, "Ana").connect()
        assert (await ana.join("busy-room"))["type"] == "welcome"
        waits = [asyncio.create_task(closed_after(r, TIMEOUT + GRACE))
                 for r, _ in (silent, slow_head, slow_upgrade)]
        others = []
        for n in range(6):
            bo = await Client(http, server.ws, f"Bo{n}").connect()
            assert (await bo.join("busy-room"))["type"] == "welcome"
            others.append(bo)
            await chat_round(ana, bo, n)
            await asyncio.sleep(0.3)
        durations = await asyncio.gather(*waits)
        # each closed by the server (closed_after raises when one outlives TIMEOUT + GRACE)
        assert len(durations) == 3
        msg = await never_joins.receive(timeout=TIMEOUT + GRACE)
        assert msg.type == aiohttp.WSMsgType.CLOSE, msg
        assert never_joins.close_code == 1008 and "idle" in (msg.extra or "")
        # the meeting is unharmed: a member who joined before the timeouts still chats
        await chat_round(others[0], ana, 99)
        assert server.app[_hub_key()].counters["idle_closed"] == 1
        for task in tricklers:
            task.cancel()
        for _, writer in (silent, slow_head, slow_upgrade):
            writer.close()
        for client in [ana, *others]:
            await client.close()
        await never_joins.close()


def _hub_key() -> Any:
    from tertulia.signal.app import HUB_KEY

    return HUB_KEY


async def raw_websocket(server: RunningServer) -> tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.settings.port)
    writer.write(upgrade_head(server.settings.port))
    await writer.drain()
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


def frame_header(length: int, opcode: int = 0x1) -> bytes:
    """A masked client frame header (RFC 6455 §5.2) announcing ``length`` payload bytes."""
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00"  # zero mask: payload bytes go as they are


async def read_close(reader: asyncio.StreamReader) -> tuple[int, str]:
    """The server's close frame (skipping any text frames before it)."""
    for _ in range(10):
        b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(length)
        if b0 & 0x0F == 0x8:
            (code,) = struct.unpack("!H", payload[:2])
            return code, payload[2:].decode()
    raise AssertionError("no close frame")


async def test_frames_over_the_hard_limit_are_closed_with_1009() -> None:
    async with running_server() as server:
        # Announcing a 1 GiB frame is enough: the server does not wait for (or buffer) it.
        reader, writer = await raw_websocket(server)
        writer.write(frame_header(1 << 30) + b"{")
        await writer.drain()
        code, reason = await read_close(reader)
        assert code == 1009 and "too big" in reason, (code, reason)
        writer.close()
        # One byte over the hard limit (1 MiB): refused on the frame header alone.
        reader, writer = await raw_websocket(server)
        writer.write(frame_header((1 << 20) + 1) + b'{"type": "ping", "pad": "')
        await writer.drain()
        code, reason = await read_close(reader)
        assert code == 1009 and f"over {1 << 20} bytes" in reason, (code, reason)
        writer.close()
        # Between the message limit and the hard limit: a clear error, and the socket stays.
        async with aiohttp.ClientSession() as http:
            client = await Client(http, server.ws, "Big").connect()
            await client.send({"type": "ping", "pad": "x" * (300 * 1024)})
            error = await client.wait_type("error", code="too-large")
            assert "larger than" in error["message"]
            assert (await client.request({"type": "ping"}))["type"] == "pong"
            await client.close()


ROOM_INJECTIONS = [
    "<script>alert(1)</script>",
    "room\u202eevil",  # right-to-left override
    "room\x00x",
    "r" * 65,
    "",
    "../etc/passwd",
]


async def test_room_name_injection_is_refused_with_a_clear_error() -> None:
    async with running_server() as server, aiohttp.ClientSession() as http:
        client = await Client(http, server.ws, "Eve").connect()
        for room in ROOM_INJECTIONS:
            reply = await client.request({"type": "join", "room": room, "name": "Eve"})
            assert reply["code"] == "invalid-room", (room, reply)
            assert "room names are 1-64 characters" in reply["message"]
        assert server.app[_hub_key()].rooms.rooms == {}
        # the room page escapes what it echoes
        async with http.get(server.http + "/%3Cscript%3Ealert(1)%3C%2Fscript%3E") as resp:
            body = await resp.text()
            assert resp.status == 400 and "<script>" not in body and "&lt;script&gt;" in body
        assert (await client.join("fine-room"))["type"] == "welcome"
        await client.close()


async def test_display_name_and_chat_injection_is_neutralised() -> None:
    async with running_server() as server, aiohttp.ClientSession() as http:
        watcher = await Client(http, server.ws, "Watcher").connect()
        await watcher.join("names")
        cases = [
            ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),  # literal text
            ("\u202eevil\u202c Ana", "evil Ana"),  # bidi override and pop removed
            ("A\x00\x07\x1b[31mna", "A[31mna"),  # C0 controls removed (no terminal escapes)
            ("Zero\u200bWidth\u2066Iso", "ZeroWidthIso"),  # format characters removed
            ("x" * 200, "x" * 64),  # cut to 64 characters
            ("\u202e\u202c", "Guest"),  # nothing left: a default name
        ]
        for typed, shown in cases:
            c = await Client(http, server.ws, typed).connect()
            welcome = await c.join("names")
            assert welcome["type"] == "welcome", welcome
            joined = await watcher.wait(
                lambda m, pid=welcome["participant"]: m.get("type") == "participant-joined"
                and m["participant"]["id"] == pid)
            assert joined["participant"]["name"] == shown, (typed, joined)
            await c.close()
        # overlong beyond the field limit: refused with a clear error
        c = await Client(http, server.ws, "x" * 2000).connect()
        reply = await c.join("names")
        assert reply["code"] == "too-large" and "'name'" in reply["message"]
        # renaming goes through the same cleaning
        assert (await c.join("names", name="Ok"))["type"] == "welcome"
        await c.send({"type": "set-name", "name": "\u202eKing\x07"})
        updated = await watcher.wait(lambda m: m.get("type") == "participant-updated"
                                     and m["participant"].get("name") == "King")
        assert updated["participant"]["id"] == c.id
        # chat: control and bidi characters removed, markup kept as text
        await c.send({"type": "chat", "text": "hi\u202e <b>there</b>\x00"})
        chat = await watcher.wait_type("chat")
        assert chat["text"] == "hi <b>there</b>"
        await c.send({"type": "chat", "text": "\u202e\x00"})
        error = await c.wait_type("error", code="bad-message")
        assert "empty" in error["message"]
        await c.close()
        await watcher.close()


async def test_tertulia_serve_process_drops_a_silent_connection() -> None:
    """The same bound holds in `tertulia serve` itself (its own accept loop), not only in the
    in-process test server."""
    async with server_process({"TERTULIA_REQUEST_TIMEOUT": str(TIMEOUT)}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        await writer.drain()
        await closed_after(reader, TIMEOUT + GRACE)
        writer.close()
