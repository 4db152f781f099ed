"""How fast a real Chromium sender's own uplink estimate finds a free link.

Each run starts a fresh headless Chromium, joins one 1280x720 sender and one receiver (camera
off) to a fresh in-process server, and samples every 0.25 s for ``--seconds``: the sender's
``availableOutgoingBitrate`` (its send-side estimate, fed by the bridge's transport-wide
feedback), the bytes per simulcast layer, and the bridge's count of the sender's padding
probes. Prints one JSON line per run and a summary; the uplink here is loopback, so anything
short of the top layer within a few seconds is the estimator's doing, not the link's.

    unshare -n sh -c 'ip link set lo up && \
        PYTHONPATH=src:. .venv/bin/python -m bench.uplink_start --runs 8'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from playwright.async_api import async_playwright

from tests.browser.conftest import CHROMIUM, FLAGS
from tests.browser.test_bandwidth import OUTBOUND_JS
from tests.browser.test_meeting import room_url
from tests.server import running_server


async def one_run(seconds: float, period: float) -> dict[str, Any]:
    async with running_server() as server, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            ctx = await browser.new_context()
            sender = await ctx.new_page()
            await sender.goto(room_url(server.http, "uplink-start", "Ana", resolution=720))
            await sender.wait_for_function(
                "() => window.tertulia && window.tertulia.pc"
                " && window.tertulia.pc.connectionState === 'connected'", timeout=30_000)
            receiver = await ctx.new_page()
            await receiver.goto(room_url(server.http, "uplink-start", "Bo")
                                + "&config.startWithVideoMuted=true")
            me = await sender.evaluate("() => window.tertulia.me")
            start = time.monotonic()
            rows: list[dict[str, Any]] = []
            while time.monotonic() - start < seconds:  # bounded by --seconds
                row = await sender.evaluate(OUTBOUND_JS)
                conference = next(iter(server.bridge.conferences.values()), None)
                endpoint = conference.endpoints.get(me) if conference else None
                if endpoint is not None:
                    row["probes"] = endpoint.stats.padding_received
                    row["twcc_sent"] = endpoint.stats.twcc_sent
                    row["nacks"] = endpoint.stats.nacks_sent
                    row["rtx"] = endpoint.stats.rtx_received
                    row["twcc"] = (endpoint.twcc.received, endpoint.twcc.reported_lost,
                                   endpoint.twcc.late)
                row["t"] = round(time.monotonic() - start, 2)
                rows.append(row)
                await asyncio.sleep(period)
        finally:
            await browser.close()
    return summarize(rows)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def at(t: float) -> float | None:
        row = next((r for r in rows if r["t"] >= t), None)
        return round(row["available"] / 1000) if row and row["available"] else None

    reach = next((r["t"] for r in rows if (r["available"] or 0) >= 1_000_000), None)
    last = rows[-1]
    return {
        "kbps_at_1s": at(1), "kbps_at_3s": at(3), "kbps_at_6s": at(6),
        "kbps_last": round((last["available"] or 0) / 1000),
        "s_to_1000k": reach,
        "top_height": max((layer["height"] for layer in last["layers"].values()), default=0),
        "probes": last.get("probes"), "twcc": last.get("twcc"),
        "nacks": last.get("nacks"), "rtx": last.get("rtx"),
        "series": [(r["t"], round((r["available"] or 0) / 1000)) for r in rows[::4]],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        result = await one_run(args.seconds, 0.25)
        results.append(result)
        print(json.dumps(result), flush=True)
    times = [r["s_to_1000k"] for r in results]
    reached = [t for t in times if t is not None]
    print(json.dumps({
        "runs": len(results),
        "reached_1000k": len(reached),
        "median_s_to_1000k": statistics.median(reached) if reached else None,
        "slowest_s": max(reached) if reached else None,
        "kbps_at_3s": [r["kbps_at_3s"] for r in results],
    }))


if __name__ == "__main__":
    asyncio.run(main())
