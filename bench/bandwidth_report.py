"""Table and plot of a throttled-link run (tests/browser/test_bandwidth.py).

    TERTULIA_BANDWIDTH_TIMELINE=/tmp/bw.json \\
      unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest -q -s \\
      tests/browser/test_bandwidth.py'
    .venv/bin/python -m bench.bandwidth_report /tmp/bw.json --out bench/bandwidth

writes bench/bandwidth.md (per phase: layer, bitrate, loss, estimate per receiver) and
bench/bandwidth.png (the same over time).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RECEIVERS = ("slow", "steady")
# "limiting": from the limit until the switch down has settled (older timelines call all of
# that "limited"); "limited": the window the test checks
PHASES = {"open": 0.0, "limiting": 0.5, "limited": 1.0, "lifted": 2.0}


def series(rows: list[dict[str, Any]], name: str) -> list[dict[str, float]]:
    """Per sample: time, width, received kbit/s, cumulative loss fraction, estimate kbit/s."""
    out: list[dict[str, float]] = []
    previous: tuple[float, int, int] | None = None
    for row in rows:
        view = row.get(name)
        if not view:
            continue
        t, sent_bytes, frames = float(row["t"]), int(view["bytes"]), int(view["frames"])
        kbps = fps = 0.0
        if previous is not None and t > previous[0]:
            kbps = (sent_bytes - previous[1]) * 8 / (t - previous[0]) / 1000
            fps = (frames - previous[2]) / (t - previous[0])
        previous = (t, sent_bytes, frames)
        received, lost = int(view["received"]), int(view["lost"])
        estimate = view.get("estimate")
        out.append({
            "t": t, "width": float(view["width"]), "kbps": kbps, "fps": fps,
            "received": float(received), "lost": float(lost), "frames": float(frames),
            "estimate": float(estimate) / 1000 if estimate else 0.0,
            "phase": PHASES.get(row["phase"], -1.0),
        })
    return out


def phase_table(data: dict[str, Any]) -> str:
    rows = data["rows"]
    lines = [
        "| phase | receiver | width (px) | frames/s decoded (mean) | video kbit/s (mean) | loss "
        "| estimate kbit/s (last) |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase, code in PHASES.items():
        for name in RECEIVERS:
            points = [p for p in series(rows, name) if p["phase"] == code]
            if len(points) < 2:
                continue
            widths = sorted({int(p["width"]) for p in points})
            mean = sum(p["kbps"] for p in points[1:]) / (len(points) - 1)
            fps = (points[-1]["frames"] - points[0]["frames"]) / max(
                points[-1]["t"] - points[0]["t"], 1e-9)
            got = points[-1]["received"] - points[0]["received"]
            lost = points[-1]["lost"] - points[0]["lost"]
            loss = lost / max(1.0, got + lost)
            lines.append(
                f"| {phase} | {name} | {'/'.join(map(str, widths))} | {fps:.1f} | {mean:.0f} | "
                f"{loss:.2%} | {points[-1]['estimate']:.0f} |"
            )
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for name, colour in zip(RECEIVERS, ("tab:red", "tab:blue"), strict=True):
        points = series(data["rows"], name)
        t = [p["t"] for p in points]
        axes[0].step(t, [p["width"] for p in points], where="post", color=colour, label=name)
        axes[1].plot(t, [p["kbps"] for p in points], color=colour, label=f"{name} received")
        axes[1].plot(t, [p["estimate"] for p in points], color=colour, linestyle=":",
                     label=f"{name} estimate")
        lost = [p["lost"] for p in points]
        axes[2].plot(t, lost, color=colour, label=name)
    for phase, label in (("limiting", f"limit {data.get('limit', '')}"),
                         ("limited", "settled"), ("lifted", "lifted")):
        start = next((r["t"] for r in data["rows"] if r["phase"] == phase), None)
        if start is not None:
            for ax in axes:
                ax.axvline(start, color="grey", linestyle="--", linewidth=1)
            axes[0].annotate(label, (start, 0), textcoords="offset points", xytext=(4, 6))
    axes[0].set_ylabel("width of the\nsender's video (px)")
    axes[1].set_ylabel("kbit/s")
    axes[2].set_ylabel("video packets\nlost (cumulative)")
    axes[2].set_xlabel("seconds")
    axes[0].set_title("A receiver behind a throttled link (red) and one on a good link (blue)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("timeline", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/bandwidth"))
    args = parser.parse_args()
    data = json.loads(args.timeline.read_text())
    table = phase_table(data)
    args.out.with_suffix(".md").write_text(
        f"# Throttled link ({data.get('limit')})\n\n"
        f"Back to {data.get('recovery_width', data.get('baseline_width'))} px wide "
        f"{data.get('recovery_s')} s after the limit was lifted.\n\n{table}\n\n"
        f"![timeline]({args.out.name}.png)\n"
    )
    plot(data, args.out.with_suffix(".png"))
    print(table)


if __name__ == "__main__":
    main()
