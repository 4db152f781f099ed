"""`tertulia serve --workers 2` as a real process: two bridge worker processes behind one serve.

Rooms land on different workers and media flows; a conference over the per-worker cap spreads
to the second worker through a relay over 127.0.0.1; a worker killed with SIGKILL has its
participants moved to the other one and is restarted; the bridge channel goes through serve's
port (bad token refused, oversized frame closes both sides); no worker outlives serve, whether
serve stops cleanly or is killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tertulia.bridge.bridge import Bridge, BridgeSettings
from tests.cluster_procs import Proc, processes, wait_http
from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import free_port, free_udp_range

pytestmark = pytest.mark.timeout(120)


@dataclass
class Serve:
    proc: Proc
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?room={room}"

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, \
                http.get(self.http + "/about/bridge/stats") as response:
            data: dict[str, Any] = await response.json()
            return data

    async def metrics(self) -> list[str]:
        async with aiohttp.ClientSession() as http, \
                http.get(self.http + "/metrics") as response:
            return (await response.text()).splitlines()


    async def metrics_show(self, *lines: str, timeout: float = 6.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded
            if set(lines) <= set(await self.metrics()):
                return True
            await asyncio.sleep(0.2)
        return False


@asynccontextmanager
async def serve(workers: int = 2, **env: str) -> AsyncIterator[Serve]:
    allow_loopback_candidates()
    port = free_port()
    with processes() as (_, procs):
        procs.append(Proc(["serve", "--workers", str(workers), "--port", str(port),
                           "--media-port", str(free_udp_range(workers))],
                          env={"TERTULIA_LOG_LEVEL": "info", **env}))
        server = Serve(procs[-1], port)
        await wait_http(server.http + "/about/bridge/health")
        yield server


def worker_of(peer: Peer) -> int:
    assert peer.channel is not None
    path = peer.channel._response.url.path  # /worker/<index>/bridge/ws/...
    assert path.startswith("/worker/"), path
    return int(path.split("/")[2])


def decodes(peers: list[Peer], min_frames: int) -> bool:
    for peer in peers:
        for other in peers:
            if other is peer:
                continue
            counter = peer.frames_from(other.id)
            if counter is None or min(counter.video_frames, counter.audio_frames) < min_frames:
                return False
    return True


def dump(peers: list[Peer]) -> list[Any]:
    return [(p.name, p.slot_map, {s: vars(c) for s, c in p.counters.items()}) for p in peers]


def pids_alive(pids: list[int]) -> list[int]:
    """The pids still running (not gone, not a zombie)."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


async def test_rooms_go_to_different_workers_and_everyone_decodes_their_room() -> None:
    async with serve() as server:
        room_a = [Peer(f"a{i}", server.ws("room-a"), "room-a", slots=2, shade=40 + 60 * i,
                       frequency=300.0 + 100 * i) for i in range(2)]
        room_b = [Peer(f"b{i}", server.ws("room-b"), "room-b", slots=2, shade=160 + 40 * i,
                       frequency=700.0 + 100 * i) for i in range(2)]
        peers = room_a + room_b
        try:
            for peer in peers:
                await peer.join()
            assert await wait_until(lambda: decodes(room_a, 10) and decodes(room_b, 10),
                                    timeout=40), dump(peers)
            assert {worker_of(p) for p in room_a} == {worker_of(room_a[0])}
            assert {worker_of(p) for p in room_b} == {worker_of(room_b[0])}
            assert worker_of(room_a[0]) != worker_of(room_b[0])
            stats = await server.stats()
            assert stats["endpoints"] == 4 and stats["conferences"] == 2
            assert [w["endpoints"] for w in stats["workers"]] == [2, 2]
            assert stats["relays"] == 0  # no conference spans workers
            # /metrics reads the workers' last stats poll (at most a heartbeat old)
            assert await server.metrics_show('tertulia_bridge_endpoints{worker="0"} 2.0',
                                             'tertulia_bridge_endpoints{worker="1"} 2.0',
                                             "tertulia_worker_channels_proxied 4.0")
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


async def test_a_conference_over_the_worker_cap_spreads_and_relays_media_both_ways() -> None:
    async with serve(TERTULIA_WORKER_CONFERENCE_CAP="2") as server:
        peers = [Peer(f"p{i}", server.ws("big"), "big", slots=3, shade=40 + 50 * i,
                      frequency=300.0 + 110 * i) for i in range(4)]
        try:
            for peer in peers:
                await peer.join()
            assert await wait_until(lambda: decodes(peers, 10), timeout=50), dump(peers)
            # two on each worker: everyone decodes the other worker's two through the relay
            assert sorted(worker_of(p) for p in peers) == [0, 0, 1, 1]
            stats = await server.stats()
            assert [w["relays"] for w in stats["workers"]] == [1, 1]
            assert stats["relays_connected"] == 2
            assert stats["relay_packets_in"] > 0 and stats["relay_packets_out"] > 0
            assert stats["largest_conference"] == 4  # two here and two relayed, per worker
            assert await server.metrics_show("tertulia_shard_relays_opened_total 1.0")
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


async def test_a_killed_worker_moves_its_participants_and_is_restarted() -> None:
    async with serve() as server:
        peers = [Peer(f"p{i}", server.ws("moving"), "moving", slots=2, shade=40 + 80 * i,
                      frequency=300.0 + 150 * i) for i in range(2)]
        try:
            for peer in peers:
                await peer.join()
            assert await wait_until(lambda: decodes(peers, 10), timeout=40), dump(peers)
            victim = worker_of(peers[0])
            before = await server.stats()
            pid = before["workers"][victim]["pid"]
            pids = [w["pid"] for w in before["workers"]]
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            assert await wait_until(
                lambda: all(p.renegotiations == 1 for p in peers) and decodes(peers, 5),
                timeout=40, interval=0.05), (dump(peers), server.proc.output()[-3000:])
            print(f"\nworker killed: every peer decoding again after "
                  f"{time.monotonic() - killed_at:.2f} s")
            assert {worker_of(p) for p in peers} == {1 - victim}
            assert "moving 2 participants" in server.proc.output()

            async def restarted() -> dict[str, Any] | None:
                stats = await server.stats()
                worker = stats["workers"][victim]
                ok = worker["up"] and worker["restarts"] == 1 and worker["pid"] != pid
                return worker if ok else None

            deadline = time.monotonic() + 20
            worker = None
            while worker is None and time.monotonic() < deadline:
                worker = await restarted()
                await asyncio.sleep(0.2)
            assert worker is not None, server.proc.output()[-3000:]
            assert worker["bridge_id"] == f"worker{victim}-2"
            assert await server.metrics_show(
                "tertulia_shard_bridge_failures_total 1.0",
                f'tertulia_worker_restarts_total{{worker="{victim}"}} 1.0')
            pids.append(worker["pid"])
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        server.proc.kill(signal.SIGTERM)  # a clean stop takes every worker with it
        assert server.proc.proc.wait(timeout=20) == 0, server.proc.output()[-3000:]
        assert pids_alive(pids) == []


async def test_no_worker_outlives_a_killed_serve() -> None:
    async with serve() as server:
        pids = [w["pid"] for w in (await server.stats())["workers"]]
        assert len(pids_alive(pids)) == 2
        server.proc.kill(signal.SIGKILL)
        server.proc.proc.wait(timeout=10)
        assert await wait_until(lambda: pids_alive(pids) == [], timeout=10), pids_alive(pids)


async def test_the_channel_proxy_keeps_the_token_and_the_size_limit() -> None:
    async with serve() as server:
        peer = Peer("p0", server.ws("proxied"), "proxied", slots=1)
        try:
            await peer.join()
            assert peer.channel is not None
            url = peer.channel._response.url
            good, path = url.query["token"], url.path
            async with aiohttp.ClientSession() as http:
                base = f"ws://127.0.0.1:{server.port}"
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(f"{base}{path}?token=not-the-token")
                assert refused.value.status == 403
                with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
                    await http.ws_connect(f"{base}/worker/7{path[len('/worker/0'):]}"
                                          f"?token={good}")
                assert missing.value.status == 404
                # a second channel of the same endpoint works, both ways, through serve
                ws = await http.ws_connect(f"{base}{path}?token={good}")
                first = await ws.receive_json(timeout=5)
                assert first["type"] == "slots"
                await ws.send_json({"type": "ping"})
                assert await _next_of_type(ws, "pong")
                assert await server.metrics_show("tertulia_worker_channels_proxied 2.0")
                await ws.send_str("x" * (17 * 1024))  # over the channel's 16 KiB limit
                closing = await ws.receive(timeout=5)
                while closing.type == aiohttp.WSMsgType.TEXT:  # bounded: the socket closes
                    closing = await ws.receive(timeout=5)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 1009  # RFC 6455 §7.4.1: message too big
                # the proxy closed its side to the worker too
                assert await server.metrics_show("tertulia_worker_channels_proxied 1.0")
            assert not peer.channel.closed  # the peer's own channel is untouched
            # SIGTERM on serve closes the proxied channel ("going away") and serve exits
            server.proc.kill(signal.SIGTERM)
            channel = peer.channel
            assert await wait_until(lambda: channel.closed, timeout=10)
            assert channel.close_code == 1001
            assert await asyncio.to_thread(server.proc.proc.wait, 15) == 0
        finally:
            await peer.close()


async def _next_of_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> bool:
    for _ in range(20):  # bounded: a few state messages may come first
        message = await ws.receive_json(timeout=5)
        if message.get("type") == kind:
            return True
    return False


async def test_a_relay_is_offered_on_the_relay_address_not_the_advertised_one() -> None:
    """Workers advertise the public (maybe NATed) address to browsers but relay over loopback:
    two bridges advertising an unreachable TEST-NET address still connect their relay."""
    bridges = [Bridge(BridgeSettings(media_port=free_port(socket.SOCK_DGRAM),
                                     public_ip="192.0.2.1", relay_ip="127.0.0.1"))
               for _ in range(2)]
    for bridge in bridges:
        await bridge.start()
    a, b = bridges
    try:
        pa, pb = a.relay_open("c1", "B"), b.relay_open("c1", "A")
        assert (pa.ip, pb.ip) == ("127.0.0.1", "127.0.0.1")
        assert b.relay_connect("c1", "A", pa, active=True)
        assert a.relay_connect("c1", "B", pb, active=False)
        assert await wait_until(lambda: a.stats()["relays_connected"] == 1
                                and b.stats()["relays_connected"] == 1, timeout=5)
    finally:
        for bridge in bridges:
            await bridge.stop()


def test_a_worker_that_cannot_start_stops_serve_with_the_reason() -> None:
    """Worker 1's media port is taken: serve exits 1 naming the worker and its port, and
    leaves no worker behind."""
    import subprocess
    import sys

    from tests.cluster_procs import SRC

    base = free_udp_range(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", base + 1))
        done = subprocess.run(
            [sys.executable, "-m", "tertulia", "serve", "--workers", "2", "--port",
             str(free_port()), "--media-port", str(base)],
            env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"bridge worker 1 (udp port {base + 1}) exited" in done.stderr
    assert "Address already in use" in done.stderr


async def test_workers_behind_self_signed_https(tmp_path: Any, monkeypatch: Any) -> None:
    """--self-signed: signalling and the proxied bridge channels are wss on serve's one port."""
    import ssl

    from tertulia.tls import CERT_NAME

    allow_loopback_candidates()
    port = free_port()
    with processes() as (_, procs):
        procs.append(Proc(["serve", "--workers", "2", "--self-signed", "--port", str(port),
                           "--media-port", str(free_udp_range(2))],
                          env={"TERTULIA_SELF_SIGNED_DIR": str(tmp_path)}))
        cert = tmp_path / CERT_NAME
        assert await wait_until(cert.exists, timeout=15), procs[-1].output()
        trust = ssl.create_default_context(cafile=str(cert))
        plain_session = aiohttp.ClientSession

        def trusting_session(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
            return plain_session(*args, connector=aiohttp.TCPConnector(ssl=trust), **kwargs)

        monkeypatch.setattr(aiohttp, "ClientSession", trusting_session)  # peers trust it
        await wait_http(f"https://127.0.0.1:{port}/about/bridge/health")
        ws = f"wss://127.0.0.1:{port}/ws?room=secure"
        peers = [Peer(f"p{i}", ws, "secure", slots=2, shade=40 + 80 * i,
                      frequency=300.0 + 150 * i) for i in range(2)]
        try:
            for peer in peers:
                await peer.join()
            assert await wait_until(lambda: decodes(peers, 10), timeout=40), dump(peers)
            for peer in peers:
                assert peer.channel is not None
                url = peer.channel._response.url
                assert (url.scheme, url.port) == ("wss", port)
                assert url.path.startswith("/worker/")
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
