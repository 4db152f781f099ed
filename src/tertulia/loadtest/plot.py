"""The loadtest over time as one PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(rows: list[dict[str, Any]], bridge: list[dict[str, Any]], path: Path,
         title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(12, 9), sharex=True)
    t = [r["t"] for r in rows]
    ax = axes[0][0]
    ax.plot(t, [r["joined"] for r in rows], label="joined")
    ax.plot(t, [r["failed"] for r in rows], label="failed", color="red")
    ax.set_title("participants")
    ax.legend()
    ax = axes[0][1]
    points = [(r["t"], x) for r in rows for x in r["first_media"]]
    ax.scatter([p[0] for p in points], [1000 * p[1] for p in points], s=6)
    ax.set_title("join → first media (ms), by when it happened")
    ax = axes[1][0]
    ax.plot(t, [100 * r["loss"] for r in rows], color="red")
    ax.set_title("receive loss (%)")
    ax = axes[1][1]
    ax.plot(t, [r["jitter_mean_ms"] for r in rows], label="mean")
    ax.plot(t, [r["jitter_max_ms"] for r in rows], label="max")
    ax.set_title("interarrival jitter (ms)")
    ax.legend()
    ax = axes[2][0]
    ax.plot(t, [r["bitrate_mean"] / 1000 for r in rows], label="mean")
    ax.plot(t, [r["bitrate_min"] / 1000 for r in rows], label="min")
    ax.set_title("receive bitrate per participant (kbit/s)")
    ax.legend()
    ax.set_xlabel("seconds")
    ax = axes[2][1]
    bt = [b["t"] for b in bridge]
    ax.plot(bt, [b.get("packet_rate_download") or 0 for b in bridge], label="bridge pkt/s in")
    ax.plot(bt, [b.get("packet_rate_upload") or 0 for b in bridge], label="bridge pkt/s out")
    ax.set_title("bridge packet rates and CPU")
    ax.set_xlabel("seconds")
    ax.legend(loc="upper left")
    if any(b.get("cpu") is not None for b in bridge):
        cpu = ax.twinx()
        cpu.plot(bt, [100 * (b.get("cpu") or 0) for b in bridge], color="black",
                 linestyle="--", label="bridge CPU %")
        cpu.plot(bt, [100 * (b.get("loadgen_cpu") or 0) for b in bridge], color="grey",
                 linestyle=":", label="load generator CPU %")
        cpu.legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
