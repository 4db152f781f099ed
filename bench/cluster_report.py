"""The report of bench/cluster_sim.py: the results table, its Markdown block and the plot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bench.cluster_sim import Result, SimConfig

COLUMNS = (
    ("in region", "in_region", "{:.1%}"),
    ("in region group", "in_group", "{:.1%}"),
    ("relay streams per participant", "relay_per_participant", "{:.2f}"),
    ("peak relay streams", "peak_relay", "{:,.0f}"),
    ("conferences on >1 bridge", "multi_bridge", "{:.2%}"),
    ("peak mean stress", "peak_mean", "{:.3f}"),
    ("peak max stress", "peak_max", "{:.2f}"),
    ("p99 stress (busy)", "busy_p99", "{:.3f}"),
    ("max/mean stress (busy)", "busy_max_over_mean", "{:.2f}"),
    ("overloaded bridge-hours", "overloaded_bridge_hours", "{:,.0f}"),
)


def table(results: list[Result]) -> str:
    head = "| variant | " + " | ".join(c[0] for c in COLUMNS) + " | run s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in results:
        s = r.summary()
        cells = [fmt.format(s[key]) for _, key, fmt in COLUMNS]
        lines.append(f"| {r.variant.name} | " + " | ".join(cells) + f" | {r.wall_s:.0f} |")
    return "\n".join(lines)


def write_plot(results: list[Result], path: Path, title: str, overload: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9), constrained_layout=True)
    (ax_max, ax_p99, ax_mean), (ax_relay, ax_over, ax_bar) = axes
    panels = (
        (ax_max, 1, "Most stressed bridge (log scale)"),
        (ax_p99, 3, "99th percentile of bridge stress"),
        (ax_mean, 2, "Mean bridge stress (relays included)"),
        (ax_relay, 4, "Relay streams crossing bridges (log scale)"),
        (ax_over, 6, "Bridges at or above overload"),
    )
    window = np.ones(10) / 10  # 10-sample moving average: readable lines
    for r in results:
        s = np.array(r.series, dtype=float)
        for ax, column, _ in panels:
            ax.plot(s[:, 0], np.convolve(s[:, column], window, "same"), label=r.variant.name)
    for ax, _, heading in panels:
        ax.set_title(heading)
        ax.set_xlabel("hour of the day (UTC)")
        ax.set_xlim(0, max(row[0] for row in results[0].series))
        ax.set_xticks(range(0, 25, 3))
        ax.grid(alpha=0.3)
    for ax in (ax_max, ax_p99, ax_mean):
        ax.axhline(overload, color="black", linewidth=0.8, linestyle=":")
        ax.set_ylabel("stress (1 = capacity, dotted = overload)")
    ax_max.set_yscale("log")
    ax_relay.set_yscale("symlog", linthresh=100)
    ax_relay.set_ylim(bottom=0)
    ax_p99.set_ylim(bottom=0)
    ax_mean.set_ylim(bottom=0)
    ax_over.set_ylim(bottom=0)
    ax_relay.set_ylabel("streams")
    ax_over.set_ylabel("bridges")
    names = [r.variant.name.replace(", ", ",\n") for r in results]
    x = np.arange(len(results))
    summaries = [r.summary() for r in results]
    ax_bar.bar(x - 0.2, [100 * v["in_region"] for v in summaries], 0.4, label="in region")
    ax_bar.bar(x + 0.2, [100 * v["in_group"] for v in summaries], 0.4, label="in region group")
    ax_bar.set_xticks(x, names, fontsize=8)
    ax_bar.set_ylim(0, 105)
    ax_bar.set_ylabel("% of participants")
    ax_bar.set_title("Participants placed on a bridge of their region")
    ax_bar.legend(fontsize=9, loc="upper left")
    handles, labels = ax_max.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(results), fontsize=11)
    fig.suptitle(f"{title} (lines: {len(window)}-minute moving averages)", fontsize=13)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markers(label: str) -> tuple[str, str]:
    return (
        f"<!-- results {label}: written by bench/cluster_sim.py -->",
        f"<!-- end of results {label} -->",
    )


def results_block(cfg: SimConfig, results: list[Result], command: str, label: str) -> str:
    begin, end = markers(label)
    participants = results[0].participants if results else 0
    return "\n".join(
        [
            begin,
            f"Command ({time.strftime('%Y-%m-%d')}, one core of a shared 2-core machine):",
            "",
            "```",
            command,
            "```",
            "",
            f"{cfg.bridges:,} bridges of {cfg.capacity_pps:,.0f} pps, {cfg.conferences:,} "
            f"conferences, {participants:,} participants over {cfg.hours:g} h (seed {cfg.seed}); "
            f"overload {cfg.overload}, max {cfg.max_per_bridge} per bridge, recent window "
            f"{cfg.recent_window:g} s, heartbeat every {cfg.heartbeat_s} s. Every participant "
            "was placed and every bridge was empty at the end in every run.",
            "",
            table(results),
            end,
        ]
    )


def write_markdown(path: Path, block: str, label: str) -> None:
    """Replace the file's results block for `label` (creating the file), keeping the rest."""
    begin, end = markers(label)
    text = path.read_text() if path.exists() else f"# Cluster simulation\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: results markers missing; add {begin!r} and {end!r}")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(head + block + tail)
