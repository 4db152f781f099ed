"""Memory under a flood stays bounded (a small bench/flood_memory.py run against `tertulia
serve` in its own process): after warm-up the server's RSS grows by less than a generous bound
while connections churn and garbage arrives, and every room and participant is gone once the
flood stops."""

from __future__ import annotations

import asyncio

import pytest
from bench.flood_memory import final_state, flood

from tests.server import server_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WARM_UP = 3  # rounds
GROWTH_BOUND_MIB = 25.0  # observed: about 1 MiB (bench/RESULTS.md); unbounded growth is far more


async def test_rss_levels_off_under_a_flood() -> None:
    env = {"TERTULIA_RESUME_GRACE": "1", "TERTULIA_REQUEST_TIMEOUT": "2"}
    async with server_process(env) as server:
        samples = await flood(server, rounds=9, connections=80, datagram_count=4000,
                              addresses=20, report=False)
        assert samples[-1]["ws_connections"] >= 9 * 80 * 0.9  # the flood really happened
        growth = samples[-1]["rss_mib"] - samples[WARM_UP]["rss_mib"]
        assert growth < GROWTH_BOUND_MIB, samples
        for _ in range(50):  # bounded wait for the resume grace and request timeouts
            state = await final_state(server)
            if state["rooms"] == 0 and state["participants"] == 0:
                break
            await asyncio.sleep(0.2)
        assert (state["rooms"], state["participants"]) == (0, 0), state
        assert server.process.poll() is None  # still serving
