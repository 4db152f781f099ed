"""One load-generator process: its share of the participants, one event loop.

It joins its participants on schedule, sends a sample of its counters to the parent every
second, and at the end closes everyone and sends each participant's result. Messages on the
queue are plain tuples of JSON-able values: ``("sample", worker, dict)``,
``("result", worker, list)``, ``("error", worker, text)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import aiohttp
import aioice.ice

from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.loadtest.media import load_or_generate
from tertulia.loadtest.participant import Context, Participant
from tertulia.loadtest.schedule import Planned

SAMPLE_INTERVAL = 1.0


@dataclass(frozen=True)
class WorkerConfig:
    worker: int
    base_url: str
    planned: tuple[Planned, ...]
    senders_in_room: dict[str, int]
    start: float  # time.time() of t = 0
    end: float  # time.time() when everyone leaves
    speaking: str
    srtp_check: int
    cache_dir: str | None
    local_address: str


def local_address_for(host: str, port: int) -> str:
    """The address the kernel would send from towards ``host`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        address: str = probe.getsockname()[0]
        return address


def _use_host_address(address: str) -> None:
    """aioice gathers on every interface except loopback; the load generator gathers on the
    one address that routes to the deployment, which also makes loopback runs possible."""

    def addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return [address]

    aioice.ice.get_host_addresses = addresses


def _sample(participants: list[Participant], previous: dict[int, dict[str, Any]], t: float
            ) -> dict[str, Any]:
    states = [p.state for p in participants]
    bitrates: list[float] = []
    agg = {"packets": 0, "bytes": 0, "expected": 0, "lost": 0}
    jitters: list[float] = []
    first_media: list[float] = []
    for p in participants:
        if p.state != "joined":
            continue
        snap = p.snapshot()
        before = previous.get(p.plan.index, {"packets": 0, "bytes": 0, "expected": 0, "lost": 0})
        for key in agg:
            agg[key] += snap[key] - before[key]
        bitrates.append(8 * (snap["bytes"] - before["bytes"]) / SAMPLE_INTERVAL)
        if snap["packets"] > 1:
            jitters.append(snap["jitter_ms"])
        if "first_media" in p.times and p.plan.index not in previous:
            first_media.append(p.times["first_media"])
        if "first_media" in p.times:
            previous[p.plan.index] = snap
    return {
        "t": round(t, 3),
        "joined": states.count("joined"),
        "failed": states.count("failed"),
        "joining": states.count("joining"),
        **agg,
        "bitrate_sum": sum(bitrates),
        "bitrate_min": min(bitrates, default=0.0),
        "bitrate_n": len(bitrates),
        "jitter_sum": sum(jitters),
        "jitter_max": max(jitters, default=0.0),
        "jitter_n": len(jitters),
        "first_media": first_media,
        "sent_packets": sum(p.sent_packets for p in participants),
    }


async def _run(config: WorkerConfig, queue: Queue[Any], stop: Event) -> None:
    _use_host_address(config.local_address)
    cache = load_or_generate(Path(config.cache_dir) if config.cache_dir else None)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        ctx = Context(config.base_url, http, DtlsCertificate.generate(), cache, config.start,
                      config.speaking, config.srtp_check, dict(config.senders_in_room))
        participants = [Participant(ctx, p) for p in config.planned]

        async def join_later(p: Participant) -> None:
            await asyncio.sleep(max(0.0, config.start + p.plan.join_at - time.time()))
            if not stop.is_set():
                await p.run_join()

        joins = [asyncio.create_task(join_later(p)) for p in participants]
        previous: dict[int, dict[str, Any]] = {}
        # every worker samples at the same ticks (start + n seconds), so the parent can add
        # up sample n of each worker
        n = max(1, math.ceil((time.time() - config.start) / SAMPLE_INTERVAL))
        while time.time() < config.end and not stop.is_set():  # bounded by config.end
            await asyncio.sleep(max(0.0, config.start + n * SAMPLE_INTERVAL - time.time()))
            sample = _sample(participants, previous, time.time() - config.start)
            sample["n"] = n
            queue.put(("sample", config.worker, sample))
            n = max(n + 1, math.ceil((time.time() - config.start) / SAMPLE_INTERVAL))
        for task in joins:
            task.cancel()
        await asyncio.gather(*joins, return_exceptions=True)
        results = [p.result() for p in participants]
        with contextlib.suppress(TimeoutError):  # bounded: a stuck close must not hang us
            await asyncio.wait_for(
                asyncio.gather(*(p.close() for p in participants), return_exceptions=True), 10)
        queue.put(("result", config.worker, results))


def worker_main(config: WorkerConfig, queue: Queue[Any], stop: Event) -> None:
    """Process entry point (multiprocessing). Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # cheaper datagrams per packet (the "fast" extra)

        runner = uvloop.run
    try:
        runner(_run(config, queue, stop))
    except Exception as exc:  # reported to the parent, which prints it
        queue.put(("error", config.worker, f"{type(exc).__name__}: {exc}"))
