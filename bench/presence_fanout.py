"""Presence fan-out: N plain WebSocket clients join one room as fast as they can.

Starts `tertulia serve` as its own process (so its CPU can be read from /proc), opens N
signalling connections from this process, sends all joins at once, and records the time until
every client knows every other, the WebSocket frames and bytes the clients received per join,
and the server's CPU time.

    .venv/bin/python -m bench.presence_fanout --clients 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

from tests.server import free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Member:
    def __init__(self) -> None:
        self.id = ""
        self.known: set[str] = set()
        self.frames = 0
        self.bytes = 0
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    def absorb(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "welcome":
            self.id = message["participant"]
            self.known.update(p["id"] for p in message["participants"])
        elif kind == "participant-joined":
            self.known.add(message["participant"]["id"])
        elif kind == "batch":
            for inner in message["messages"]:
                self.absorb(inner)


async def run(n: int) -> dict[str, Any]:
    port, media = free_port(), free_port(socket.SOCK_DGRAM)
    env = {
        **os.environ,
        "TERTULIA_JOINS_PER_SECOND_PER_ADDRESS": "100000",
        "TERTULIA_JOIN_BURST_PER_ADDRESS": "100000",
        "TERTULIA_MAX_PARTICIPANTS_PER_ROOM": str(n + 10),
        "TERTULIA_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "tertulia", "serve", "--port", str(port), "--media-port",
         str(media)], env=env, stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for _ in range(100):
                try:
                    async with http.get(url + "/about/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            members = [Member() for _ in range(n)]
            for m in members:
                m.ws = await http.ws_connect(url + "/ws", max_msg_size=0)
            done = asyncio.Event()

            async def read(m: Member) -> None:
                assert m.ws is not None
                async for msg in m.ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    m.frames += 1
                    m.bytes += len(msg.data)
                    m.absorb(json.loads(msg.data))
                    if len(m.known) == n - 1 and all(len(x.known) == n - 1 for x in members):
                        done.set()

            readers = [asyncio.create_task(read(m)) for m in members]
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            await asyncio.gather(*(
                m.ws.send_json({"type": "join", "room": "crowd", "name": f"user {i}"})  # type: ignore[union-attr]
                for i, m in enumerate(members)
            ))
            await asyncio.wait_for(done.wait(), timeout=120)
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(server.pid) - cpu0
            frames = sum(m.frames for m in members)
            total_bytes = sum(m.bytes for m in members)
            for m in members:
                await m.ws.close()  # type: ignore[union-attr]
            for task in readers:
                task.cancel()
            return {
                "clients": n,
                "seconds_until_all_see_all": round(elapsed, 3),
                "frames_received_per_join": round(frames / n, 1),
                "bytes_received_per_join": round(total_bytes / n),
                "server_cpu_seconds": round(cpu, 3),
                "server_cpu_ms_per_join": round(1000 * cpu / n, 2),
            }
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=300)
    result = asyncio.run(run(parser.parse_args().clients))
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
