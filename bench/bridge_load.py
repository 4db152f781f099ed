"""Bridge benchmarks driven by `tertulia loadtest` against a fresh `tertulia serve` process.

Scenarios (each starts its own server per run, so runs do not share state):

- ``forwarding``: one conference (``--rooms R``: R conferences) of S senders (default 2, 5, 10,
  25); bridge CPU time per forwarded packet (/proc/<pid>/stat user+system over the steady part
  of the run ÷ packets the bridge sent), forwarded video streams, receive loss, and both
  processes' CPU.
- ``join-storm``: N participants in rooms of 5 joining at once (``--ramp 0``); join → bridge
  channel open and join → first media, p50/p99.
- ``memory``: E endpoints (default 100 and 500) in rooms of 10 without media (receive-only
  participants that finished ICE and DTLS); bridge RSS growth per endpoint.

``--workers K`` starts `tertulia serve --workers K` instead of one process; CPU and RSS are then
summed over serve and its K bridge workers (/proc), and a forwarding run of several rooms
(``--rooms``) shows the scaling from 1 to K workers:

    PYTHONPATH=src .venv/bin/python -m bench.bridge_load forwarding --sizes 10 --rooms 4 --workers 1
    PYTHONPATH=src .venv/bin/python -m bench.bridge_load forwarding --sizes 10 --rooms 4 --workers 2

    PYTHONPATH=src .venv/bin/python -m bench.bridge_load forwarding --sizes 2 5 10 25
    PYTHONPATH=src .venv/bin/python -m bench.bridge_load join-storm --participants 40
    PYTHONPATH=src .venv/bin/python -m bench.bridge_load memory --endpoints 100 500

Run it inside a loopback-only namespace (`unshare -n`, as the tests do) or on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tertulia.loadtest.run import descendants, proc_cpu_rss, tree_cpu_rss
from tests.server import free_port, free_udp_range

SERVER_ENV = {
    "TERTULIA_JOINS_PER_SECOND_PER_ADDRESS": "100000",
    "TERTULIA_JOIN_BURST_PER_ADDRESS": "100000",
    "TERTULIA_CONNECTIONS_PER_ADDRESS": "100000",
    "TERTULIA_MAX_PARTICIPANTS_PER_ROOM": "1000",
    "TERTULIA_MESSAGES_PER_SECOND": "1000",
    "TERTULIA_MESSAGE_BURST": "1000",
    "TERTULIA_LOG_LEVEL": "warning",
}


WORKERS = 1  # --workers: bridge worker processes of the server under test


def process_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of serve ("serve") and each of its descendants ("pid N")."""
    out: dict[str, float] = {}
    for name, each in [("serve", pid), *((f"pid {c}", c) for c in descendants(pid))]:
        if (usage := proc_cpu_rss(each)) is not None:
            out[name] = usage[0]
    return out


@contextmanager
def server() -> Iterator[tuple[str, int]]:
    port, media = free_port(), free_udp_range(WORKERS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tertulia", "serve", "--port", str(port), "--media-port",
         str(media), "--workers", str(WORKERS)], env={**os.environ, **SERVER_ENV},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # bounded: up to 30 s to come up (workers start in parallel)
            try:
                with urllib.request.urlopen(url + "/about/bridge/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def loadtest(url: str, pid: int, *extra: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "tertulia", "loadtest", url, "--bridge-pid", str(pid),
               "--json", str(out), "--quiet", *extra]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, timeout=900, check=False)
        report: dict[str, Any] = json.loads(out.read_text())
        return report


def forwarding(sizes: list[int], duration: float, processes: int, rooms: int = 1
               ) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        with server() as (url, pid):
            before = process_cpu(pid)
            report = loadtest(url, pid, "-n", str(size * rooms), "-m", str(rooms),
                              "--duration", str(duration), "--ramp", "5",
                              "--processes", str(processes))
            after = process_cpu(pid)
        s = report["summary"]
        b = s["bridge"]
        # each receiver gets the video of every other sender of its room, up to its 9 slots
        streams = rooms * size * min(size - 1, 9)
        cpu = b["cpu_mean"] or 0.0
        rows.append({
            "workers": WORKERS,
            "rooms": rooms,
            "senders": size,
            "forwarded_video_streams": streams,
            "bridge_cpu": cpu,
            "bridge_us_per_packet_out": b["cpu_us_per_packet_out"],
            "bridge_packets_out_per_s": b["packet_rate_upload"],
            "bridge_packets_in_per_s": b["packet_rate_download"],
            "receive_loss": s["receive_loss"],
            "rx_kbps_per_participant": (s["bitrate_per_participant_bps"]["mean"] or 0) / 1000,
            "streams_per_core": round(streams / cpu) if cpu > 0 else None,
            "loadgen_cpu": s["loadgen_cpu_mean"],
            "udp_rcvbuf_drops": s["udp_rcvbuf_drops"],
            "loss_to_bridge": s["loss_to_bridge"],
            "joins_ok": s["joins_ok"],
            # CPU seconds of each server process over the whole run (ramp included): with
            # workers, how evenly the conferences spread
            "cpu_seconds_by_process": {k: round(after[k] - before.get(k, 0.0), 2)
                                       for k in after},
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def join_storm(participants: int, processes: int) -> dict[str, Any]:
    with server() as (url, pid):
        report = loadtest(url, pid, "-n", str(participants), "-m", str(max(1, participants // 5)),
                          "--ramp", "0", "--duration", "10", "--processes", str(processes))
    s = report["summary"]
    return {"participants": participants, "joins_ok": s["joins_ok"],
            "joins_failed": s["joins_failed"], "join_s": s["join_s"],
            "first_media_s": s["first_media_s"], "loadgen_cpu": s["loadgen_cpu_mean"],
            "bridge_cpu": s["bridge"]["cpu_mean"]}


def memory(endpoints: int, processes: int) -> dict[str, Any]:
    with server() as (url, pid):
        before = tree_cpu_rss(pid)
        report = loadtest(url, pid, "-n", str(endpoints), "-m", str(max(1, endpoints // 10)),
                          "--senders", "0", "--ramp", "50", "--duration", "8",
                          "--processes", str(processes))
    s = report["summary"]
    assert before is not None
    peak = s["bridge"]["rss_mib"] or 0.0
    return {"endpoints": endpoints, "joins_ok": s["joins_ok"], "rss_before_mib": before[1],
            "rss_peak_mib": peak,
            "kib_per_endpoint": round(1024 * (peak - before[1]) / max(s["joins_ok"], 1), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["forwarding", "join-storm", "memory"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10, 25])
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--endpoints", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rooms", type=int, default=1,
                        help="forwarding: this many rooms of each size at once")
    parser.add_argument("--workers", type=int, default=1,
                        help="start the server with `serve --workers K` (CPU and RSS summed "
                        "over serve and its workers)")
    args = parser.parse_args()
    global WORKERS
    WORKERS = args.workers
    if args.scenario == "forwarding":
        forwarding(args.sizes, args.duration, args.processes, args.rooms)
    elif args.scenario == "join-storm":
        print(json.dumps(join_storm(args.participants, args.processes)))
    else:
        for n in args.endpoints:
            print(json.dumps(memory(n, args.processes)), flush=True)


if __name__ == "__main__":
    main()
