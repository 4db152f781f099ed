"""Our server and Janus's VideoRoom under the same synthetic load, one after the other.

For each size S: a fresh ``tertulia serve``, S participants (each publishes Opus + one VP8
layer of ~1.5 Mbit/s and receives everyone else) for ``--duration`` seconds of measured
window; then a fresh Janus (Debian's ``janus``, only VideoRoom and the WebSocket transport,
ICE-lite, configured here in a temporary folder) and the same participants. Printed per run
and per size: server CPU per forwarded packet (process CPU over the window ÷ RTP packets the
receivers got in it), one-way latency p50/p99 from stamps in the payloads, receive loss, the
load generator's CPU, the load average, and Tertulia ÷ Janus.

No simulcast on either side: Janus's VideoRoom handles simulcast differently, so both get a
single video layer plus Opus (see src/tertulia/loadtest/compare.py).

Needs root in a private network namespace (Janus's ICE library ignores loopback interfaces,
so the benchmark adds a veth holding 127.0.0.2 for it) and ``apt-get install janus``:

    unshare -n sh -c 'ip link set lo up && PYTHONPATH=src:. .venv/bin/python \\
        -m bench.janus_side_by_side --sizes 2 5 10'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.bridge_load import server as tertulia_server
from tertulia.loadtest.compare import measure
from tertulia.loadtest.janus import write_config
from tertulia.loadtest.latency import ratio
from tests.server import free_port

JANUS_ADDRESS = "127.0.0.2"
VETH = ("jbench0", "jbench1")


@contextmanager
def janus_interface() -> Iterator[str]:
    """A veth pair inside this (private) namespace, one end holding 127.0.0.2."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.run([ip, "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1]],
                   check=True)
    try:
        subprocess.run([ip, "addr", "add", f"{JANUS_ADDRESS}/32", "dev", VETH[0]], check=True)
        for name in VETH:
            subprocess.run([ip, "link", "set", name, "up"], check=True)
        yield VETH[0]
    finally:
        subprocess.run([ip, "link", "del", VETH[0]], check=False)


@contextmanager
def janus_server(interface: str) -> Iterator[tuple[str, int]]:
    binary = shutil.which("janus")
    if binary is None:
        raise SystemExit("janus is not installed: apt-get install janus")
    port = free_port()
    rtp = free_port(socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory(prefix="janus-bench-") as tmp:
        config = write_config(Path(tmp), port, (rtp, rtp + 200))
        log = Path(tmp) / "janus.log"
        proc = subprocess.Popen([binary, "-F", tmp, "-C", str(config), "-i", JANUS_ADDRESS,
                                 "-E", interface, "-N", "-L", str(log)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=tmp)  # a core dump, if it crashes on stop, goes there
        try:
            for _ in range(100):  # bounded: up to 10 s to come up
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit(f"janus did not start; see its log:\n{log.read_text()[-2000:]}")
            yield f"ws://127.0.0.1:{port}", proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _median(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return statistics.median(present) if present else None


def compare(ours: list[dict[str, Any]], janus: list[dict[str, Any]]) -> dict[str, Any]:
    """Tertulia ÷ Janus for one size, from the medians over repeated runs (pure)."""
    out: dict[str, Any] = {"senders": ours[0]["senders"], "runs": len(ours)}
    for key, name in (("us_per_packet", "cpu_per_packet"), ("latency_p50_ms", "latency_p50"),
                      ("latency_p99_ms", "latency_p99")):
        a = _median([r.get(key) for r in ours])
        b = _median([r.get(key) for r in janus])
        value = ratio(a, b)
        out[f"{name}_tertulia"], out[f"{name}_janus"] = a, b
        out[f"{name}_ratio"] = None if value is None else round(value, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--duration", type=float, default=20.0,
                        help="measured seconds per run (default 20)")
    parser.add_argument("--processes", type=int, default=2, help="load generator workers")
    parser.add_argument("--latency-every", type=int, default=4,
                        help="read the stamp of every Nth received packet (default 4)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per server and size, alternating which goes first")
    parser.add_argument("--janus-first", action="store_true", help="run Janus before us")
    parser.add_argument("--hogs", type=int, default=0,
                        help="CPU-bound processes running through the whole session "
                        "(contention from other jobs on the machine)")
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling niceness of our server process (e.g. -10; Janus "
                        "keeps 0)")
    args = parser.parse_args()
    with cpu_hogs(args.hogs):
        session(args)


@contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """``count`` busy processes for the duration of the block (always stopped after)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=10)


def session(args: argparse.Namespace) -> None:
    common = {"duration": args.duration, "processes": args.processes,
              "latency_every": args.latency_every}
    with janus_interface() as interface:
        for size in args.sizes:
            rows: dict[str, list[dict[str, Any]]] = {"tertulia": [], "janus": []}
            for run in range(args.repeat):
                order = ["tertulia", "janus"]
                if args.janus_first != (run % 2 == 1):
                    order.reverse()
                for kind in order:
                    if kind == "tertulia":
                        with tertulia_server() as (url, pid):
                            if args.nice:
                                os.setpriority(os.PRIO_PROCESS, pid, args.nice)
                            row = measure(kind, url, pid, size, **common)
                    else:
                        with janus_server(interface) as (url, pid):
                            row = measure(kind, url, pid, size, local_address=JANUS_ADDRESS,
                                          **common)
                    row["hogs"] = args.hogs
                    row["nice"] = args.nice if kind == "tertulia" else 0
                    rows[kind].append(row)
                    print(json.dumps(row), flush=True)
            print(json.dumps(compare(rows["tertulia"], rows["janus"])), flush=True)


if __name__ == "__main__":
    main()
