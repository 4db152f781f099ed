"""Per-address limits behind a real HAProxy (deploy/haproxy.cfg, `option forwardfor`) in front
of a real shard process that trusts HAProxy's address (`trusted_proxies`). Everything talks on
loopback: HAProxy reaches the shard from 127.0.0.1, the clients come from 127.0.0.2 and
127.0.0.3 (through HAProxy) and 127.0.0.4 (straight to the shard, untrusted).

Without the forwarded address every client behind HAProxy would share 127.0.0.1's limits;
a client that is not a trusted proxy must not be able to pick its address by sending the
header itself, neither through HAProxy nor straight to the shard."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import pytest

from tests.cluster_procs import Proc, processes, wait_http
from tests.haproxy import haproxy
from tests.server import free_port
from tests.wsclient import Client

pytestmark = pytest.mark.timeout(90)

JOIN_BURST = 3  # joins per address before `rate-limited` (the refill is negligible)
CONNECTIONS = 5  # open WebSockets per address before HTTP 429
SHARD_ENV = {
    "TERTULIA_TRUSTED_PROXIES": "127.0.0.1",
    "TERTULIA_JOIN_BURST_PER_ADDRESS": str(JOIN_BURST),
    "TERTULIA_JOINS_PER_SECOND_PER_ADDRESS": "0.001",
    "TERTULIA_CONNECTIONS_PER_ADDRESS": str(CONNECTIONS),
}
ROOM = "forwarded"
# Every socket a test opens stays open until the end (an unreferenced one could be collected
# and closed, freeing its slot).
OPEN: list[object] = []


@asynccontextmanager
async def source(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from ``address`` (any of 127.0.0.0/8)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


async def join(http: aiohttp.ClientSession, where: str, name: str,
               headers: dict[str, str] | None = None) -> str:
    """Open a socket and join; the reply's type or error code."""
    client = await Client(http, f"ws://{where}/ws?room={ROOM}", name).connect(headers)
    OPEN.append(client)
    reply = await client.request({"type": "join", "room": ROOM, "name": name})
    return str(reply.get("code") or reply["type"])


async def connect_status(http: aiohttp.ClientSession, where: str,
                         headers: dict[str, str] | None = None) -> int:
    """101 when the WebSocket opens (it stays open), else the HTTP status of the refusal."""
    try:
        OPEN.append(await http.ws_connect(f"ws://{where}/ws?room={ROOM}", headers=headers))
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    return 101


async def metric(where: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://{where}/metrics") as r:
        text = await r.text()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found[1])


async def test_forwarded_addresses_get_their_own_limits_and_cannot_be_spoofed() -> None:
    shard_port = free_port()
    shard = f"127.0.0.1:{shard_port}"
    with processes() as (_, procs):
        procs.append(Proc(["shard", "--host", "127.0.0.1", "--port", str(shard_port),
                           "--shard-id", "shard1"], env=SHARD_ENV))
        await wait_http(f"http://{shard}/about/health")
        # Both of the config's servers are this one shard: every room lands on it.
        with haproxy(free_port(), {"shard1": shard, "shard2": shard}, {}) as front:
            await wait_http(f"http://{front}/about/health")
            try:
                await exercise(front, shard, procs[0])
            finally:
                OPEN.clear()


async def exercise(front: str, shard: str, proc: Proc) -> None:
    """Alice and Bob through HAProxy, Mallory straight to the shard, then a bad header."""
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(source("127.0.0.2"))
        bob = await stack.enter_async_context(source("127.0.0.3"))
        mallory = await stack.enter_async_context(source("127.0.0.4"))
        proxy = await stack.enter_async_context(source("127.0.0.1"))

        # Alice, through HAProxy, uses up her joins and then her connections.
        joins = [await join(alice, front, f"alice{i}") for i in range(JOIN_BURST + 1)]
        assert joins == ["welcome"] * JOIN_BURST + ["rate-limited"]
        assert await connect_status(alice, front) == 101  # her 5th socket
        assert await connect_status(alice, front) == 429

        # Bob, through the same HAProxy, has limits of his own, even while claiming to be
        # Alice: HAProxy appends his real address and the shard reads that.
        claim = {"X-Forwarded-For": "127.0.0.2"}
        joins = [await join(bob, front, f"bob{i}", claim) for i in range(JOIN_BURST + 1)]
        assert joins == ["welcome"] * JOIN_BURST + ["rate-limited"]

        # Mallory, straight to the shard (not a trusted proxy), names a new address in every
        # request: ignored, her own address is limited.
        joins = [await join(mallory, shard, f"mallory{i}", {"X-Forwarded-For": f"203.0.113.{i}"})
                 for i in range(JOIN_BURST + 1)]
        assert joins == ["welcome"] * JOIN_BURST + ["rate-limited"]
        # ... nor can she use up Bob's connections by claiming his address.
        as_bob = {"X-Forwarded-For": "127.0.0.3"}
        for _ in range(CONNECTIONS - JOIN_BURST - 1):
            assert await connect_status(mallory, shard, as_bob) == 101
        assert await connect_status(mallory, shard, as_bob) == 429
        assert await connect_status(bob, front) == 101

        # A trusted peer's unreadable header is ignored: no error for the client, the
        # peer's address is used, the shard counts it and logs one line for the burst.
        assert await metric(shard, "tertulia_signal_forwarded_malformed_total") == 0
        garbage = {"X-Forwarded-For": "not-an-address"}
        assert await join(proxy, shard, "odd1", garbage) == "welcome"
        assert await join(proxy, shard, "odd2", garbage) == "welcome"
        assert await metric(shard, "tertulia_signal_forwarded_malformed_total") == 2
        log = proc.output()
        assert log.count("malformed X-Forwarded-For") == 1, log[-2000:]
        assert "not-an-address" not in log  # header content is not logged

        async with proxy.get(f"http://{shard}/about/health") as r:
            health = await r.json()
        assert health["participants"] == 3 * JOIN_BURST + 2
