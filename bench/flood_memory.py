"""Memory under a flood: the server's resident memory must level off, not grow with traffic.

Starts `tertulia serve` as its own process and, round after round, floods it from many loopback
source addresses (127.0.0.2 ... 127.0.0.N): WebSocket connections that send garbage (not JSON,
binary, unknown types, bad rooms, frames over the message limit and over the hard frame limit),
then join one of a few rooms with junk display names, chat, and leave cleanly or drop without a
close frame; sockets that never finish their request head (slowloris); and garbage UDP
datagrams at the media port (random bytes, STUN with unknown users, fake DTLS, RTP and RTCP).
After each round it samples the server's RSS from /proc and its own view (/about/health).

    .venv/bin/python -m bench.flood_memory --rounds 12 --connections 300 --datagrams 20000

Results and the command are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aioice import stun

from tests.server import ServerProcess as Server
from tests.server import server_process as serve


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


GARBAGE_TEXT = [
    "not json", "[1, 2, 3]", '{"type": "warp"}', '{"type": "join", "room": "Bad Room!"}',
    '{"type": "offer", "sdp": "v=0"}', '{"type": "chat"}', '{"id": {"x": 1}}',
    json.dumps({"type": "ping", "pad": "x" * (300 * 1024)}),  # over the message limit
]
JUNK_NAMES = ["<img src=x onerror=alert(1)>", "\u202eevil\u202c", "A\x00\x07B", "x" * 500]


@dataclass
class Totals:
    connections: int = 0
    refused: int = 0  # connections the server refused (429, rate limits, closed early)
    messages: int = 0
    datagrams: int = 0
    slow: int = 0
    errors: dict[str, int] = field(default_factory=dict)


async def one_client(url: str, source: str, room: str, rng: random.Random,
                     totals: Totals) -> None:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            ws = await http.ws_connect(url + "/ws", timeout=aiohttp.ClientWSTimeout(ws_close=2))
        except (aiohttp.ClientError, OSError):
            totals.refused += 1
            return
        totals.connections += 1
        try:
            for text in rng.sample(GARBAGE_TEXT, 4):
                await ws.send_str(text)
            await ws.send_bytes(os.urandom(64))
            await ws.send_json({"type": "join", "room": room, "name": rng.choice(JUNK_NAMES)})
            for n in range(3):
                await ws.send_json({"type": "chat", "text": f"flood {n} " + "y" * 200})
            totals.messages += 10
            if rng.random() < 0.05:  # over the hard frame limit: the server closes with 1009
                await ws.send_str("z" * (1100 * 1024))
            await asyncio.sleep(rng.uniform(0.05, 0.5))
            if rng.random() < 0.3:  # vanish without a close frame (kept for the resume grace)
                transport = ws._response.connection.transport if ws._response.connection \
                    else None
                if transport is not None:
                    transport.abort()
                    return
            await ws.send_json({"type": "leave"})
            with contextlib.suppress(TimeoutError):
                await ws.receive(timeout=1)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            key = type(exc).__name__
            totals.errors[key] = totals.errors.get(key, 0) + 1
        finally:
            await ws.close()


async def slowloris(port: int, source: str, hold: float) -> None:
    """Half a request head, a byte every 0.5 s, for ``hold`` seconds (or until closed)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0))
    except OSError:
        return
    try:
        head = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 1000
        deadline = time.monotonic() + hold
        for byte in head:
            if time.monotonic() > deadline or reader.at_eof():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)
    except ConnectionError:
        pass
    finally:
        writer.close()


def datagrams(rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        kind = rng.randrange(5)
        if kind == 0:
            out.append(os.urandom(rng.randrange(1, 1400)))
        elif kind == 1:
            msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            msg.attributes["USERNAME"] = f"{rng.getrandbits(32):08x}:{rng.getrandbits(16):x}"
            msg.add_message_integrity(os.urandom(16))
            out.append(bytes(msg))
        elif kind == 2:
            out.append(bytes([22, 0xFE, 0xFD]) + os.urandom(rng.randrange(10, 300)))
        elif kind == 3:
            out.append(bytes([0x80, 96]) + os.urandom(rng.randrange(10, 1200)))
        else:
            out.append(bytes([0x81, 200]) + os.urandom(rng.randrange(6, 100)))
    return out


async def udp_flood(media_port: int, sources: list[str], rng: random.Random, count: int,
                    totals: Totals) -> None:
    socks = []
    for source in sources[:16]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source, 0))
        sock.setblocking(False)
        socks.append(sock)
    try:
        for i, data in enumerate(datagrams(rng, count)):
            with contextlib.suppress(BlockingIOError):
                socks[i % len(socks)].sendto(data, ("127.0.0.1", media_port))
                totals.datagrams += 1
            if i % 200 == 199:
                await asyncio.sleep(0.01)  # let the server read; the kernel drops overflow
    finally:
        for sock in socks:
            sock.close()


async def flood(server: Server, *, rounds: int, connections: int, datagram_count: int,
                addresses: int = 50, rooms: int = 5, seed: int = 1,
                report: bool = True) -> list[dict[str, Any]]:
    """Run the flood; one sample per round (and one before it): RSS and server state."""
    rng = random.Random(seed)
    sources = [f"127.0.0.{2 + i}" for i in range(addresses)]
    totals = Totals()
    samples: list[dict[str, Any]] = []
    start = time.monotonic()

    async def sample(round_no: int) -> None:
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http, \
                http.get(server.url + "/about/health") as resp:
            health = await resp.json()
        row = {
            "round": round_no, "seconds": round(time.monotonic() - start, 1),
            "ws_connections": totals.connections, "refused": totals.refused,
            "messages": totals.messages, "datagrams": totals.datagrams,
            "slowloris": totals.slow, "rooms": health["rooms"],
            "participants": health["participants"],
            "rss_mib": round(rss_mib(server.process.pid), 1),
        }
        samples.append(row)
        if report:
            print("  ".join(f"{row[k]:>{w}}" for k, w in COLUMNS), flush=True)

    if report:
        print("  ".join(f"{k:>{w}}" for k, w in COLUMNS), flush=True)
    await sample(0)
    for round_no in range(1, rounds + 1):
        slow = [asyncio.create_task(slowloris(server.port, rng.choice(sources), 30.0))
                for _ in range(max(1, connections // 10))]
        totals.slow += len(slow)
        clients = [one_client(server.url, rng.choice(sources), f"flood-{rng.randrange(rooms)}",
                              random.Random(rng.random()), totals)
                   for _ in range(connections)]
        udp = udp_flood(server.media_port, sources, rng, datagram_count, totals)
        batch = 50  # connections in flight at once
        for i in range(0, len(clients), batch):
            await asyncio.gather(*clients[i:i + batch])
        await udp
        # slowloris sockets stay open across rounds until the server drops them
        for task in slow:
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        await sample(round_no)
    return samples


COLUMNS = [("round", 5), ("seconds", 7), ("ws_connections", 14), ("refused", 7),
           ("messages", 8), ("datagrams", 9), ("slowloris", 9), ("rooms", 5),
           ("participants", 12), ("rss_mib", 7)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--connections", type=int, default=300, help="per round")
    parser.add_argument("--datagrams", type=int, default=20000, help="per round")
    parser.add_argument("--addresses", type=int, default=50, help="loopback source addresses")
    args = parser.parse_args()

    async def go() -> None:
        async with serve() as server:
            samples = await flood(server, rounds=args.rounds, connections=args.connections,
                                  datagram_count=args.datagrams, addresses=args.addresses)
            await asyncio.sleep(12)  # resume grace and request timeouts run out
            final = await final_state(server)
            print(f"after 12 s quiet: rooms {final['rooms']}, participants "
                  f"{final['participants']}, rss {final['rss_mib']} MiB")
            print(f"datagrams the bridge read: {final['datagrams_received']}, dropped by "
                  f"reason: {final['datagrams_dropped']}")
            half = samples[len(samples) // 2]["rss_mib"]
            print(f"rss growth over the second half: {samples[-1]['rss_mib'] - half:+.1f} MiB")

    asyncio.run(go())


async def final_state(server: Server) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, \
            http.get(server.url + "/about/health") as resp:
        health: dict[str, Any] = await resp.json()
        async with http.get(server.url + "/about/bridge/stats") as resp:
            bridge = await resp.json()
    health["rss_mib"] = round(rss_mib(server.process.pid), 1)
    health["datagrams_received"] = bridge["counters"].get("datagrams", 0)
    health["datagrams_dropped"] = {k: v for k, v in bridge["counters"].items()
                                   if k.startswith("dropped-")}
    return health


if __name__ == "__main__":
    main()
