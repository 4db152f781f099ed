"""Sharding behind a real HAProxy (deploy/haproxy.cfg) with two real shard processes, each in its
own network namespace with its own address (HAProxy stays in the test's namespace and reaches
them over the test bridge): rooms spread over both, a room never splits, a forced room goes
where the map says, joins for another room than the /ws parameter are refused, and a stopped
shard's rooms come back on the other."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import aiohttp
import pytest

from tests.cluster_procs import Proc, processes, wait_http
from tests.haproxy import haproxy
from tests.netlab import netlab
from tests.server import free_port
from tests.wsclient import Client

pytestmark = pytest.mark.timeout(120)

ROOMS = 24
SHARD_PORT = 8000  # each shard has its own address, so both use the deploy port
LIMITS = {"TERTULIA_JOINS_PER_SECOND_PER_ADDRESS": "1000",
          "TERTULIA_JOIN_BURST_PER_ADDRESS": "1000",
          "TERTULIA_CONNECTIONS_PER_ADDRESS": "1000"}


async def join(http: aiohttp.ClientSession, front: str, room: str, name: str) -> Client:
    client = await Client(http, f"ws://{front}/ws?room={room.lower()}", name).connect()
    welcome = await client.request({"type": "join", "room": room, "name": name})
    assert welcome["type"] == "welcome", welcome
    client.welcome = welcome
    return client


async def rejoin(http: aiohttp.ClientSession, front: str, room: str, name: str) -> Client:
    """What the web client does after losing its connection: retry with jittered backoff."""
    delay = 0.2
    for _ in range(20):  # bounded
        try:
            return await join(http, front, room, name)
        except (aiohttp.ClientError, AssertionError, TimeoutError, OSError):
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)
    raise AssertionError(f"{name} could not rejoin {room}")


async def test_rooms_are_sharded_by_name_and_survive_a_shard_stop() -> None:
    with netlab(2) as (lab, namespaces), processes() as (_, procs):
        names = ["shard1", "shard2"]
        shard_ns = dict(zip(names, namespaces, strict=True))
        # Each shard listens on its own namespace's address: "address:port" per shard.
        where = {name: f"{lab.hosts[ns]}:{SHARD_PORT}" for name, ns in shard_ns.items()}
        shards = {}
        for name, ns in shard_ns.items():
            # Behind the front every client comes from its address: lift per-address limits.
            procs.append(Proc(["shard", "--host", lab.hosts[ns], "--port", str(SHARD_PORT),
                               "--shard-id", name], prefix=lab.netns_exec(ns), env=LIMITS))
            shards[name] = procs[-1]
        for address in where.values():
            await wait_http(f"http://{address}/about/health")
        for ns in namespaces:  # not an address of the test's namespace: traffic leaves it
            with socket.socket() as s, pytest.raises(OSError):
                s.bind((lab.hosts[ns], 0))
        with haproxy(free_port(), where, {"forced-room": "shard2"}) as front:
            await wait_http(f"http://{front}/")
            async with aiohttp.ClientSession() as http:
                # The page and the socket of one room go to the same shard.
                async with http.get(f"http://{front}/Some-Room") as page:
                    assert page.status == 200
                    page_shard = page.headers["X-Tertulia-Shard"]
                probe = await join(http, front, "Some-Room", "probe")
                assert probe.welcome["shard"] == page_shard
                await probe.ws.close()  # type: ignore[union-attr]

                rooms = [f"Room-{i}" for i in range(ROOMS)] + ["forced-room"]
                clients: dict[str, list[Client]] = {}
                for room in rooms:
                    clients[room] = [await join(http, front, room, f"{room}-{n}")
                                     for n in ("a", "b")]
                placed = {room: {c.welcome["shard"] for c in cs} for room, cs in clients.items()}
                assert all(len(s) == 1 for s in placed.values()), placed  # never split
                per_shard = {name: sum(1 for s in placed.values() if s == {name})
                             for name in names}
                print(f"\nrooms per shard: {per_shard}")
                assert all(count > 0 for count in per_shard.values()), per_shard
                assert placed["forced-room"] == {"shard2"}
                # The second participant saw the first: both are in one room on one shard.
                for cs in clients.values():
                    assert [p["id"] for p in cs[1].welcome["participants"]] == [
                        cs[0].welcome["participant"]]

                # A shard refuses a join for a room other than the one the front routed on.
                direct = await Client(http, f"ws://{where['shard1']}/ws?room=a", "x").connect()
                reply = await direct.request({"type": "join", "room": "b", "name": "x"})
                assert reply["code"] == "wrong-room"
                bare = await Client(http, f"ws://{where['shard1']}/ws", "x").connect()
                reply = await bare.request({"type": "join", "room": "a", "name": "x"})
                assert reply["code"] == "room-param-required"

                # Stop shard1: its rooms come back on shard2 when their clients reconnect.
                victim, survivor = "shard1", "shard2"
                moved = [room for room, s in placed.items() if s == {victim}]
                stopped_at = time.monotonic()
                shards[victim].kill()
                await asyncio.gather(*(c.closed.wait() for r in moved for c in clients[r]))
                again = await asyncio.gather(*(
                    rejoin(http, front, room, f"{room}-{n}") for room in moved
                    for n in ("a", "b")))
                recovered = time.monotonic() - stopped_at
                print(f"shard stop to {len(moved)} rooms ({len(again)} participants) rejoined "
                      f"on the other shard: {recovered:.2f} s")
                assert {c.welcome["shard"] for c in again} == {survivor}
                by_room: dict[str, set[str]] = {}
                for client in again:
                    by_room.setdefault(client.welcome["room"], set()).add(client.welcome["shard"])
                assert set(by_room) == {r.lower() for r in moved}
                # Rooms that were on the survivor stayed there (consistent hashing).
                async with http.get(f"http://{where[survivor]}/about/health") as r:
                    health = await r.json()
                assert health["rooms"] == len(rooms)
                assert health["participants"] == 2 * len(rooms)
