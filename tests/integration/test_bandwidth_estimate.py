"""Receivers' estimates reach the bridge and steer what it forwards (bridge/bwe.py)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(90)


async def test_receiver_estimates_are_read_exposed_and_obeyed() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        sender = Peer("sender", server.ws, "estimates", shade=200)
        receiver = Peer("receiver", server.ws, "estimates", shade=40)
        try:
            await sender.join()
            await receiver.join()
            bridge = server.bridge
            conference = bridge.conferences[next(iter(bridge.conferences))]
            endpoint = conference.endpoints[receiver.id]
            # aiortc estimates from the bridge's abs-send-time stamps and sends REMB.
            assert await wait_until(
                lambda: endpoint.stats.remb_received > 0
                and endpoint.estimate.value(bridge.clock()) is not None,
                timeout=30,
            ), endpoint.stats
            # Its reception reports quote the sender reports the bridge regenerated for it:
            # round-trip time on loopback, well under 100 ms.
            assert await wait_until(lambda: endpoint.rtt.samples > 0, timeout=20)
            assert endpoint.rtt.rtt is not None and 0 <= endpoint.rtt.rtt < 0.1
            assert bridge.stats()["rtt_aggregate"] > 0
            url = f"http://127.0.0.1:{server.settings.port}/about/bridge/endpoints"
            async with aiohttp.ClientSession() as http, http.get(url) as resp:
                listed = (await resp.json())["endpoints"]
            assert len(listed) == 2 and all(e["conference_size"] == 2 for e in listed)
            mine = [e for e in listed if e["remb_received"] == endpoint.stats.remb_received]
            assert mine and mine[0]["estimate_bps"] > 0 and len(mine[0]["layers"]) == 1
            # aiortc offers no transport-cc: its own REMB, no send-side probing
            assert mine[0]["estimate_source"] == "remb" and mine[0]["probes"] is None
            # The sender's one camera stream is its lowest layer: it is never suspended, even
            # when the receiver reports less than it needs (else no estimate could ever rise).
            endpoint.estimate.on_remb(1_000, bridge.clock())
            conference.refresh_layers(bridge.clock())
            assert endpoint.allocation.get(sender.id) is not None
            assert sender.id in endpoint.videos
            # While the estimate holds layers back the bridge probes; here nothing is held
            # back (one layer), so it does not pad.
            assert endpoint.padding_bps == 0
        finally:
            await sender.close()
            await receiver.close()
