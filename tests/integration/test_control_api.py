"""The bridge control API over a real WebSocket: auth, allocate/expire, events, drain."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tertulia.bridge.bridge import AllocationError
from tertulia.cluster.auth import make_token
from tertulia.cluster.bridge_process import BridgeProcess
from tertulia.cluster.control_client import BridgeUnavailable, ControlClient
from tests.bridge_server import OFFER, SECRET, running_bridge
from tests.peers import wait_until

pytestmark = pytest.mark.timeout(60)

def control_url(proc: BridgeProcess) -> str:
    return f"ws://127.0.0.1:{proc.settings.control_port}/control/ws"


async def test_requests_without_or_with_wrong_credentials_are_refused() -> None:
    async with running_bridge() as proc, aiohttp.ClientSession() as http:
        url = control_url(proc)
        drain = f"http://127.0.0.1:{proc.settings.control_port}/control/drain"
        cases = {
            "none": {},
            "not bearer": {"Authorization": "Basic Zm9vOmJhcg=="},
            "wrong secret": {"Authorization": "Bearer " + make_token("x" * 32, "s1")},
            "expired": {"Authorization": "Bearer " + make_token(SECRET, "s1", now=1_000_000)},
            "garbage": {"Authorization": "Bearer abc.def.ghi"},
        }
        for name, headers in cases.items():
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(url, headers=headers)
            assert info.value.status == 401, name
            async with http.post(drain, headers=headers) as response:
                assert response.status == 401, name
        assert not proc.bridge.draining
        assert proc.control.refused == 2 * len(cases)
        # The client says plainly when the secret is wrong.
        client = ControlClient("b1", url, secret="y" * 32, shard_id="s1", session=http)
        with pytest.raises(BridgeUnavailable, match="control_secret"):
            await client.connect()


async def test_allocate_expire_events_and_drain() -> None:
    async with running_bridge() as proc, aiohttp.ClientSession() as http:
        events: list[dict[str, Any]] = []
        lost: list[str] = []
        client = ControlClient("b1", control_url(proc), secret=SECRET, shard_id="s1",
                               session=http, on_event=lambda _b, e: events.append(e),
                               on_lost=lost.append)
        await client.connect()
        try:
            allocation = await client.allocate("room~1", "p1", OFFER)
            assert allocation.answer.startswith("v=0")
            base = f"http://127.0.0.1:{proc.settings.control_port}"
            assert allocation.channel_path.startswith(base + "/bridge/ws/room~1/p1?token=")
            # the absolute channel URL opens the bridge channel on the bridge itself
            channel = await http.ws_connect(allocation.channel_path)
            first = await asyncio.wait_for(channel.receive_json(), 5)
            assert first["type"] == "slots"
            await channel.close()

            with pytest.raises(AllocationError) as info:
                await client.allocate("room~1", "p1", OFFER)
            assert info.value.code == "already-offered"
            with pytest.raises(AllocationError) as info:
                await client.allocate("room~1", "p2", "garbage")
            assert info.value.code == "bad-sdp"
            assert await client.set_blocked("room~1", "p1", "audio", True)

            # The bridge drops an endpoint on its own: the shard hears about it.
            endpoint = proc.bridge.find_endpoint("room~1", "p1")
            assert endpoint is not None
            proc.bridge._expire_and_report(endpoint, "media-timeout")
            assert await wait_until(lambda: bool(events), timeout=5)
            assert events == [{"type": "endpoint-expired", "conference": "room~1",
                               "endpoint": "p1", "reason": "media-timeout"}]
            assert not await client.expire("room~1", "p1")  # already gone: idempotent

            await client.allocate("room~2", "p1", OFFER)
            await client.drain()
            assert proc.bridge.draining and proc.record().draining
            assert proc.bridge.stats()["drain"] is True
            with pytest.raises(AllocationError) as info:
                await client.allocate("room~3", "p1", OFFER)
            assert info.value.code == "draining"
            await client.allocate("room~2", "p2", OFFER)  # existing conferences continue
            assert await client.expire("room~2", "p2")

            # Malformed requests get an error with their id, the connection stays usable.
            reply = await client.request({"type": "allocate", "conference": 5})
            assert reply["type"] == "error" and reply["code"] == "bad-message"
            assert (await client.request({"type": "ping"}))["type"] == "result"
        finally:
            await client.close()
        assert lost == []  # a deliberate close is not a lost bridge


async def test_losing_the_bridge_fails_waiting_requests_and_reports_once() -> None:
    lost: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with running_bridge() as proc:
            client = ControlClient("b1", control_url(proc), secret=SECRET, shard_id="s1",
                                   session=http, on_lost=lost.append)
            await client.connect()
        assert await wait_until(lambda: lost == ["b1"], timeout=5)
        with pytest.raises(BridgeUnavailable):
            await client.allocate("room~1", "p1", OFFER)
        await client.close()
        assert lost == ["b1"]


async def test_stats_and_health_routes() -> None:
    async with running_bridge() as proc, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{proc.settings.control_port}"
        async with http.get(base + "/about/health") as response:
            assert response.status == 200
        async with http.get(base + "/about/bridge/stats") as response:
            stats = await response.json()
        assert stats["region"] == "eu" and stats["drain"] is False
        async with http.get(base + "/metrics") as response:
            assert "tertulia_bridge_endpoints" in await response.text()
        headers = {"Authorization": "Bearer " + make_token(SECRET, "ops")}
        async with http.post(base + "/control/drain", headers=headers) as response:
            assert response.status == 200 and (await response.json())["draining"] is True
        assert proc.bridge.draining and proc.record().draining
