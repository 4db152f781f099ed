"""`tertulia loadtest URL`: start the worker processes, watch the bridge, report.

The parent process plans who joins where and when, prepares the media cache once, starts
``--processes`` workers, polls the bridge's ``/about/bridge/stats`` (and, with ``--bridge-pid``,
the CPU and memory of that process and its children from /proc) every second, shows progress,
and at the end prints a table and writes the JSON report and the plot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tertulia.loadtest.media import load_or_generate
from tertulia.loadtest.report import series, summarize
from tertulia.loadtest.schedule import check_pattern, plan
from tertulia.loadtest.worker import WorkerConfig, local_address_for, worker_main

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="the deployment, e.g. http://127.0.0.1:8000")
    p.add_argument("--participants", "-n", type=int, default=4)
    p.add_argument("--rooms", "-m", type=int, default=1)
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds to keep everyone in after the last join (default 20)")
    p.add_argument("--ramp", type=float, default=5.0,
                   help="joins per second (0: everyone at once; default 5)")
    p.add_argument("--senders", type=float, default=1.0,
                   help="fraction of each room that sends audio and video (default 1)")
    p.add_argument("--speaking", type=_pattern, default="rotate:5",
                   help="who talks: rotate:SECONDS (default rotate:5), all, none")
    p.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--srtp-check", type=int, default=8, metavar="N",
                   help="authenticate every Nth received RTP packet (1: all; default 8)")
    p.add_argument("--bridge-pid", type=int,
                   help="PID of the bridge process on this machine: also report its CPU/RSS "
                   "(summed with its child processes: the workers of `serve --workers`)")
    p.add_argument("--room-prefix", default="load")
    p.add_argument("--cache-dir", help="media cache (default ~/.cache/tertulia/loadtest)")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--plot", type=Path, help="write a PNG plot over time here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _pattern(text: str) -> str:
    try:
        return check_pattern(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def proc_cpu_rss(pid: int) -> tuple[float, float] | None:
    """CPU seconds (user+system) and RSS in MiB of ``pid`` from /proc (proc(5))."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[21]) * PAGE / 2**20


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...), from each /proc/<n>/stat's
    parent field (proc(5)); bounded by the processes listed once."""
    parents: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: list[int] = []
    frontier = [pid]
    while frontier and len(found) < len(parents):
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


def tree_cpu_rss(pid: int) -> tuple[float, float] | None:
    """CPU seconds and RSS in MiB of ``pid`` and all its descendants together: serve and its
    bridge workers (`tertulia serve --workers K`). A worker that died takes its CPU time with
    it, so a restart during a run shows as a dip."""
    own = proc_cpu_rss(pid)
    if own is None:
        return None
    cpu, rss = own
    for child in descendants(pid):
        if (usage := proc_cpu_rss(child)) is not None:
            cpu, rss = cpu + usage[0], rss + usage[1]
    return cpu, rss


def udp_receive_buffer_errors() -> int | None:
    """Datagrams this machine's kernel dropped because a socket's receive buffer was full
    (``RcvbufErrors`` in /proc/net/snmp; this network namespace, every process)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None


async def _poll_bridge(http: aiohttp.ClientSession, base: str, pid: int | None,
                       workers: list[int], t0: float, last: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {"t": round(time.time() - t0, 3)}
    try:
        async with http.get(base + "/about/bridge/stats",
                            timeout=aiohttp.ClientTimeout(total=2)) as resp:
            if resp.status == 200:
                stats = await resp.json()
                for key in ("endpoints", "conferences", "packet_rate_download",
                            "packet_rate_upload", "bit_rate_download", "bit_rate_upload",
                            "packets_out", "packets_in", "stress_level"):
                    row[key] = stats.get(key)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        row["stats_error"] = True
    row["udp_rcvbuf_errors"] = udp_receive_buffer_errors()
    now = time.monotonic()
    if pid is not None and (usage := tree_cpu_rss(pid)) is not None:
        row["cpu_seconds"], row["rss_mib"] = usage
        if "bridge" in last:
            row["cpu"] = (usage[0] - last["bridge"]) / (now - last["at"])
        last["bridge"] = usage[0]
    gen = sum(u[0] for w in [os.getpid(), *workers] if (u := proc_cpu_rss(w)) is not None)
    if "gen" in last:
        row["loadgen_cpu"] = (gen - last["gen"]) / (now - last["at"])
    last["gen"], last["at"] = gen, now
    return row


async def _watch(args: argparse.Namespace, procs: list[Any], queue: Any,
                 stop: Any, t0: float, end: float) -> tuple[list[dict[str, Any]],
                                                            list[dict[str, Any]],
                                                            list[dict[str, Any]], list[str]]:
    samples: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    bridge: list[dict[str, Any]] = []
    errors: list[str] = []
    finished: set[int] = set()
    progress = None if args.quiet else _Progress(args.participants, end - t0)
    last: dict[str, float] = {}
    base = args.url.rstrip("/")
    next_poll = time.time()
    limit = [end]

    def interrupted() -> None:  # Ctrl-C: everyone leaves now, and the report still comes
        stop.set()
        limit[0] = time.time()

    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupted)
    async with aiohttp.ClientSession() as http:
        # bounded: the workers leave at `end`; a generous grace covers closing and a hung one
        while len(finished) < len(procs) and time.time() < limit[0] + 60:
            end = limit[0]
            while not queue.empty():
                kind, worker, body = queue.get()
                if kind == "sample":
                    samples.append(body)
                elif kind == "result":
                    results.extend(body)
                    finished.add(worker)
                else:
                    errors.append(f"worker {worker}: {body}")
                    finished.add(worker)
            if time.time() >= next_poll and time.time() < end:
                next_poll += 1.0
                bridge.append(await _poll_bridge(http, base, args.bridge_pid,
                                                 [p.pid for p in procs if p.pid], t0, last))
                if progress is not None:
                    progress.update(samples, bridge, time.time() - t0)
            if any(not p.is_alive() and i not in finished for i, p in enumerate(procs)):
                await asyncio.sleep(0.5)  # let a last message through the pipe
                if queue.empty():
                    errors.append("a worker process died")
                    break
            await asyncio.sleep(0.1)
        # the bridge's totals once everyone has left (closed endpoints' counts included)
        final = await _poll_bridge(http, base, None, [], t0, {})
        final["final"] = True
        bridge.append(final)
    if progress is not None:
        progress.close()
    return samples, results, bridge, errors


class _Progress:
    """A rich progress bar with live numbers (joins, receive rate, loss, bridge CPU)."""

    def __init__(self, total: int, seconds: float) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                 transient=False)
        self.task = self.progress.add_task("loadtest", total=seconds, info="")
        self.total = total
        self.progress.start()

    def update(self, samples: list[dict[str, Any]], bridge: list[dict[str, Any]],
               t: float) -> None:
        rows = series(samples)
        row = rows[-2] if len(rows) > 1 else (rows[-1] if rows else None)
        info = ""
        if row is not None:
            info = (f"joined {row['joined']}/{self.total} failed {row['failed']}  "
                    f"rx {row['rx_bitrate'] / 1e6:.1f} Mbit/s  loss {100 * row['loss']:.2f}%")
        if bridge and bridge[-1].get("cpu") is not None:
            info += f"  bridge CPU {100 * bridge[-1]['cpu']:.0f}%"
        self.progress.update(self.task, completed=t, info=info)

    def close(self) -> None:
        self.progress.stop()


def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tertulia loadtest")
    table.add_column("measure")
    table.add_column("value", justify="right")

    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.2f}%"

    def ms(d: dict[str, Any]) -> str:
        return " / ".join("-" if d.get(k) is None else f"{1000 * d[k]:.0f}"
                          for k in ("p50", "p99", "max"))

    b = summary["bridge"]
    rows = [
        ("participants (ok / failed)",
         f"{summary['participants']} ({summary['joins_ok']} / {summary['joins_failed']})"),
        ("join → bridge channel open, ms p50/p99/max", ms(summary["join_s"])),
        ("join → first media, ms p50/p99/max", ms(summary["first_media_s"])),
        ("  … counted from when a sender was in the room", ms(
            summary["first_media_after_sender_s"])),
        ("pairs with audio+video (ok / expected)",
         f"{summary['pairs_with_media']['ok']} / {summary['pairs_with_media']['expected']}"),
        ("receive loss", pct(summary["receive_loss"])),
        ("video jitter ms p50 / p99", "{p50} / {p99}".format(**summary["video_jitter_ms"])),
        ("audio jitter ms p50 / p99", "{p50} / {p99}".format(**summary["audio_jitter_ms"])),
        ("receive bitrate per participant, kbit/s mean / min",
         " / ".join("-" if v is None else f"{v / 1000:.0f}"
                    for v in summary["bitrate_per_participant_bps"].values())),
        ("packets sent / received", f"{summary['packets_sent']} / {summary['packets_received']}"),
        ("bridge packets/s in / out",
         f"{b['packet_rate_download']} / {b['packet_rate_upload']}"),
        ("bridge CPU (of one core)", pct(b["cpu_mean"])),
        ("bridge CPU µs per packet out", "-" if b["cpu_us_per_packet_out"] is None
         else f"{b['cpu_us_per_packet_out']:.1f}"),
        ("load generator CPU (of one core)", pct(summary["loadgen_cpu_mean"])),
        ("UDP receive-buffer drops on this machine", summary["udp_rcvbuf_drops"]),
        ("packets lost on the way to the bridge", pct(summary["loss_to_bridge"])),
        ("SRTP auth failures / late send ticks",
         f"{summary['srtp_errors']} / {summary['late_ticks']}"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console = Console()
    console.print(table)
    for error, count in summary["errors"].items():
        console.print(f"[red]{count} × {error}[/red]")


def main(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in ("av", "rich", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"tertulia loadtest needs the 'load' extra (missing: {', '.join(missing)}): "
              "pip install 'tertulia[load]'", file=sys.stderr)
        return 2
    if args.participants < 1 or args.processes < 1 or args.srtp_check < 1:
        print("tertulia loadtest: --participants, --processes and --srtp-check must be ≥ 1",
              file=sys.stderr)
        return 2
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        print(f"tertulia loadtest: {args.url!r} is not an http(s):// URL", file=sys.stderr)
        return 2
    try:
        planned = plan(args.participants, args.rooms, ramp=args.ramp, senders=args.senders,
                       workers=args.processes, prefix=args.room_prefix)
    except ValueError as exc:
        print(f"tertulia loadtest: {exc}", file=sys.stderr)
        return 2
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    if not args.quiet:
        print("preparing media (cached after the first run)…", file=sys.stderr)
    load_or_generate(cache_dir)
    local = local_address_for(url.hostname, url.port or (443 if url.scheme == "https" else 80))
    senders: dict[str, int] = {}
    for p in planned:
        senders[p.room] = senders.get(p.room, 0) + int(p.sender)
    ctx = multiprocessing.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    t0 = time.time() + 1.0 + 0.3 * args.processes  # time for the workers to start
    end = t0 + max(p.join_at for p in planned) + args.duration
    procs = []
    for k in range(args.processes):
        config = WorkerConfig(k, args.url.rstrip("/"), tuple(p for p in planned if p.worker == k),
                              senders, t0, end, args.speaking, args.srtp_check,
                              str(cache_dir) if cache_dir else None, local)
        proc = ctx.Process(target=worker_main, args=(config, queue, stop), daemon=True)
        proc.start()
        procs.append(proc)
    samples, results, bridge, errors = asyncio.run(_watch(args, procs, queue, stop, t0, end))
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k not in ("func", "command")}
    summary = summarize(params, results, samples, bridge)
    summary["worker_errors"] = errors
    print_table(summary)
    for error in errors:
        print(f"tertulia loadtest: {error}", file=sys.stderr)
    if args.json is not None:
        report = {"summary": summary, "series": series(samples), "bridge": bridge,
                  "participants": results}
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot is not None:
        from tertulia.loadtest.plot import plot

        plot(series(samples), bridge, args.plot, title=f"{args.participants} participants, "
             f"{args.rooms} rooms, {args.url}")
    return 0 if results and not errors and summary["joins_failed"] == 0 else 1
