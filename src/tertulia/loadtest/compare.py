"""The same synthetic conference against our server or Janus, measured the same way.

S participants each publish Opus and one ~1.5 Mbit/s VP8 layer (``peer.py``) and receive
every other one. Against ``tertulia serve`` a participant joins as the web client does (one
offer with a single camera encoding and ``slots`` receive pairs, then the bridge channel);
against Janus it publishes and then subscribes to the other publishers
(``janus.py``). Participants are spread over worker processes; all of them open and close the
measured window at the same wall-clock times, at which the parent reads the server process's
CPU time (/proc/<pid>/stat, every thread) and the load average. Packets forwarded are the RTP
packets the receivers got inside the window; latency comes from the stamps of every Nth of
them (``latency.py``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import random
import secrets
import signal
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import aiohttp

from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.loadtest.accounting import Totals
from tertulia.loadtest.janus import JanusParticipant
from tertulia.loadtest.latency import Cost, percentile
from tertulia.loadtest.media import MediaCache, load_or_generate
from tertulia.loadtest.peer import MediaPeer, PeerFailed, Remote, Window
from tertulia.loadtest.run import proc_cpu_rss
from tertulia.loadtest.sdp import OfferParams, build_offer, parse_answer
from tertulia.loadtest.worker import _use_host_address

STEP_TIMEOUT = 15.0


class TertuliaParticipant:
    """Joins one room of ``tertulia serve`` with a single-encoding camera."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str,
                 certificate: DtlsCertificate, cache: MediaCache, window: Window,
                 index: int) -> None:
        self.http, self.ws_base = http, "ws" + base_url[4:]
        self.certificate, self.cache = certificate, cache
        self.peer = MediaPeer(certificate, window, index)
        self.index = index
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.channel: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next = 0

    @property
    def peers(self) -> list[MediaPeer]:
        return [self.peer]

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            for item in data["messages"] if data.get("type") == "batch" else [data]:
                future = self._pending.pop(item.get("ref", -1), None)
                if future is not None and not future.done():
                    future.set_result(item)

    async def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        for attempt in range(6):  # bounded: a busy focus gets a few retries
            self._next += 1
            future = asyncio.get_running_loop().create_future()
            self._pending[self._next] = future
            await self.ws.send_str(json.dumps({**message, "id": self._next}))
            reply: dict[str, Any] = await asyncio.wait_for(future, STEP_TIMEOUT)
            if reply.get("code") in ("rate-limited", "bridge-unavailable") and attempt < 5:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            return reply
        raise PeerFailed("retries exhausted")

    async def join(self, room: str) -> None:
        self.ws = await self.http.ws_connect(f"{self.ws_base}/ws?room={room}", heartbeat=15.0)
        self._tasks.append(asyncio.create_task(self._read(self.ws)))
        welcome = await self._request({"type": "join", "room": room, "name": f"load {self.index}"})
        if welcome.get("type") != "welcome":
            raise PeerFailed(f"join refused: {welcome.get('code')}")
        audio_ssrc, video_ssrc = random.randrange(1, 1 << 32), random.randrange(1, 1 << 32)
        offer = build_offer(OfferParams(
            ice_ufrag=self.peer.ice.local_username, ice_pwd=self.peer.ice.local_password,
            fingerprint=self.certificate.fingerprint, audio_ssrc=audio_ssrc,
            cname=secrets.token_hex(8), slots=int(welcome["slots"]),
            candidate=await self.peer.gather(), session_id=random.randrange(1 << 62),
            video_ssrc=video_ssrc))
        reply = await self._request({"type": "offer", "sdp": offer})
        if reply.get("type") != "answer":
            raise PeerFailed(f"offer refused: {reply.get('code')}")
        answer = parse_answer(reply["sdp"])
        await self.peer.connect(Remote(answer.ice_ufrag, answer.ice_pwd, answer.fingerprint,
                                       answer.candidate))
        self.channel = await self.http.ws_connect(self.ws_base + reply["bridgeChannel"],
                                                  heartbeat=15.0)
        self._tasks.append(asyncio.create_task(self._read(self.channel)))
        self.peer.start_sending(self.cache, audio_ssrc, video_ssrc)

    async def close(self) -> None:
        await self.peer.close()
        for ws in (self.channel, self.ws):
            if ws is not None and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@dataclass(frozen=True)
class WorkerConfig:
    kind: str  # "tertulia" or "janus"
    url: str  # http://… of tertulia serve, ws://… of Janus's WebSocket transport
    indices: tuple[int, ...]
    senders: int
    start: float  # time.time() of the first join
    ramp: float  # joins per second
    window_start: float
    window_end: float
    cache_dir: str | None
    local_address: str
    latency_every: int


def _sum(peers: list[MediaPeer]) -> Totals:
    out = Totals()
    for peer in peers:
        t = peer.totals()
        out = Totals(out.packets + t.packets, out.bytes + t.bytes,
                     out.expected + t.expected, out.lost + t.lost)
    return out


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - time.time()))


async def _worker(config: WorkerConfig) -> dict[str, Any]:
    _use_host_address(config.local_address)
    cache = load_or_generate(Path(config.cache_dir) if config.cache_dir else None)
    certificate = DtlsCertificate.generate()
    window = Window(latency_every=config.latency_every)
    errors: list[str] = []
    joined = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        people: list[TertuliaParticipant | JanusParticipant] = []
        for i in config.indices:
            if config.kind == "janus":
                people.append(JanusParticipant(http, config.url, certificate, cache, window, i,
                                               config.senders))
            else:
                people.append(TertuliaParticipant(http, config.url, certificate, cache, window,
                                                  i))

        async def one(p: TertuliaParticipant | JanusParticipant) -> None:
            nonlocal joined
            await _sleep_until(config.start + p.index / config.ramp)
            try:
                if isinstance(p, JanusParticipant):
                    await p.publish()
                    deadline = asyncio.get_running_loop().time() + max(
                        1.0, config.window_start - 2.0 - time.time())
                    await p.subscribe(await p.wait_for_publishers(deadline))
                else:
                    await p.join("sidebyside")
                joined += 1
            except Exception as exc:  # reported, counted: one failed join is not the run
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

        tasks = [asyncio.create_task(one(p)) for p in people]
        await _sleep_until(config.window_start)
        peers = [peer for p in people for peer in p.peers]
        before, sent_before = _sum(peers), sum(p.sent_packets for p in peers)
        window.open = True
        await _sleep_until(config.window_end)
        window.open = False
        peers = [peer for p in people for peer in p.peers]
        after, sent_after = _sum(peers), sum(p.sent_packets for p in peers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(p.close() for p in people),
                                                  return_exceptions=True), 10)
    d = after.minus(before)
    return {"joined": joined, "errors": errors, "packets": d.packets, "bytes": d.bytes,
            "expected": d.expected, "lost": d.lost, "sent": sent_after - sent_before,
            "latency_us": window.latency_us,
            "plis": sum(p.plis for p in peers), "nacks": sum(p.nacks for p in peers),
            "srtp_errors": sum(p.srtp_errors for p in peers),
            "srtp_error_kinds": dict(sum((p.srtp_error_kinds for p in peers),
                                         collections.Counter[str]()))}


def _worker_main(config: WorkerConfig, queue: Queue[Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    try:
        queue.put(runner(_worker(config)))
    except Exception as exc:
        queue.put({"fatal": f"{type(exc).__name__}: {exc}"})


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def thread_count(pid: int) -> int | None:
    """Threads of ``pid`` (proc(5) ``Threads:``): the scheduler shares a busy machine's cores
    between threads, so a server with more of them gets more CPU when others compete."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def measure(kind: str, url: str, pid: int, senders: int, *, duration: float = 20.0,
            processes: int = 2, ramp: float = 5.0, settle: float = 6.0,
            latency_every: int = 4, cache_dir: str | None = None,
            local_address: str = "127.0.0.1") -> dict[str, Any]:
    """One run: S participants against the server process ``pid`` reachable at ``url``."""
    load_or_generate(Path(cache_dir) if cache_dir else None)
    start = time.time() + 1.0 + 0.5 * processes  # time for the workers to start
    window_start = start + senders / ramp + settle
    window_end = window_start + duration
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    for k in range(processes):
        config = WorkerConfig(kind, url, tuple(range(k, senders, processes)), senders, start,
                              ramp, window_start, window_end, cache_dir, local_address,
                              latency_every)
        proc = ctx.Process(target=_worker_main, args=(config, queue), daemon=True)
        proc.start()
        procs.append(proc)
    time.sleep(max(0.0, window_start - time.time()))
    cpu0 = proc_cpu_rss(pid)
    gen0 = sum(u[0] for p in procs if p.pid and (u := proc_cpu_rss(p.pid)) is not None)
    load0 = load_average()
    time.sleep(max(0.0, window_end - time.time()))
    cpu1 = proc_cpu_rss(pid)
    gen1 = sum(u[0] for p in procs if p.pid and (u := proc_cpu_rss(p.pid)) is not None)
    load1 = load_average()
    threads = thread_count(pid)
    results = []
    for _ in procs:  # bounded: each worker answers once, or the timeout ends the wait
        with contextlib.suppress(Exception):
            results.append(queue.get(timeout=60))
    if len(results) < len(procs):
        results.append({"fatal": f"{len(procs) - len(results)} worker(s) sent no result"})
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
    row = summarize(kind, senders, duration, results,
                    None if cpu0 is None or cpu1 is None else cpu1[0] - cpu0[0],
                    gen1 - gen0, (load0, load1))
    row["server_threads"] = threads
    return row


def summarize(kind: str, senders: int, duration: float, results: list[dict[str, Any]],
              server_cpu: float | None, loadgen_cpu: float,
              load: tuple[float, float]) -> dict[str, Any]:
    """One row of the comparison from the workers' results (pure)."""
    ok = [r for r in results if "fatal" not in r]
    latency = [x for r in ok for x in r["latency_us"]]
    packets = sum(r["packets"] for r in ok)
    expected = sum(r["expected"] for r in ok)
    cost = Cost(server_cpu or 0.0, packets)
    return {
        "server": kind, "senders": senders, "duration_s": duration,
        "joined": sum(r["joined"] for r in ok),
        "errors": sorted({e for r in ok for e in r["errors"]} |
                         {r["fatal"] for r in results if "fatal" in r})[:5],
        "server_cpu": None if server_cpu is None else round(server_cpu / duration, 4),
        "packets_forwarded": packets,
        "packets_forwarded_per_s": round(packets / duration),
        "packets_sent_per_s": round(sum(r["sent"] for r in ok) / duration),
        "us_per_packet": None if cost.us_per_packet is None else round(cost.us_per_packet, 2),
        "latency_samples": len(latency),
        "latency_p50_ms": _ms(percentile(latency, 50)),
        "latency_p99_ms": _ms(percentile(latency, 99)),
        "receive_loss": round(sum(r["lost"] for r in ok) / expected, 5) if expected else None,
        "loadgen_cpu": round(loadgen_cpu / duration, 4),
        "load_average": [round(x, 2) for x in load],
        "plis": sum(r["plis"] for r in ok),
        "srtp_errors": sum(r["srtp_errors"] for r in ok),
        "srtp_error_kinds": dict(sum((collections.Counter(r.get("srtp_error_kinds", {}))
                                      for r in ok), collections.Counter[str]())),
        "cpu_count": os.cpu_count(),
    }


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)
