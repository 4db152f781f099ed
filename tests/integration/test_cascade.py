"""Cascading: one conference on two bridges in two regions, joined by a relay.

Two bridge processes (regions eu and us), each in its own network namespace, one shard with
the region strategy, real Redis; six aiortc peers in one room, three with X-Proxy-Region of each
region. Every peer decodes every other peer's video and audio; each bridge receives one copy of
each source of the other over the relay (its relayed-in stream count equals the number of
sources on the other bridge). Then one bridge is killed: its participants move to the survivor
(existing failover) and the survivor's relay is torn down.

Prints the relay's traffic per participant and the failover time (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import aioice.ice
import pytest

from tests.cluster_procs import Proc, processes, wait_http
from tests.netlab import HUB_ADDRESS, netlab
from tests.peers import Peer, wait_until
from tests.redis_server import redis_server

pytestmark = pytest.mark.timeout(300)

REGIONS = ("eu", "us")
PER_REGION = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _hub_candidates_only() -> None:
    def hub_only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return [HUB_ADDRESS] if use_ipv4 else []

    aioice.ice.get_host_addresses = hub_only  # type: ignore[assignment]


Baseline = dict[int, tuple[int, int]]  # id of a slot counter -> (video, audio) frames


def baseline(peers: list[Peer]) -> Baseline:
    return {id(c): (c.video_frames, c.audio_frames) for p in peers for c in p.counters.values()}


def everyone_decodes(peers: list[Peer], min_frames: int, since: Baseline | None = None,
                     video_to: list[Peer] | None = None) -> bool:
    """Every peer decoded ``min_frames`` audio frames from every other, and video frames from
    every other (with ``video_to``: only those peers), counted from ``since``: a renegotiated
    peer has new counters, others keep theirs."""
    for peer in peers:
        for other in peers:
            if other is peer:
                continue
            counter = peer.frames_from(other.id)
            if counter is None:
                return False
            video, audio = (since or {}).get(id(counter), (0, 0))
            if counter.audio_frames - audio < min_frames:
                return False
            if video_to is not None and peer not in video_to:
                continue
            if counter.video_frames - video < min_frames:
                return False
    return True


async def _stats(http: aiohttp.ClientSession, address: str) -> dict[str, Any]:
    async with http.get(f"http://{address}:8080/about/bridge/stats") as response:
        data: dict[str, Any] = await response.json()
        return data


def _progress(peers: list[Peer]) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """Per peer: frames (video, audio) decoded from each other peer, by name."""
    names = {p.id: p.name for p in peers}
    out = []
    for p in peers:
        got = {}
        for slot, occupant in enumerate(p.slot_map):
            counter = p.counters.get(slot)
            if occupant is not None and counter is not None:
                got[names.get(occupant, occupant)] = (counter.video_frames, counter.audio_frames)
        out.append((p.name, got))
    return out


async def test_a_conference_spans_two_regions_through_one_relay() -> None:
    _hub_candidates_only()
    with netlab(2) as (lab, namespaces), redis_server(HUB_ADDRESS) as redis, \
            processes() as (_, procs):
        address: dict[str, str] = {}
        bridge_proc: dict[str, Proc] = {}
        for region, ns in zip(REGIONS, namespaces, strict=True):
            address[region] = lab.hosts[ns]
            procs.append(Proc(["bridge", "--host", "0.0.0.0", "--redis", redis.url,
                               "--region", region, "--bridge-id", f"jvb-{region}",
                               "--control-port", "8080", "--media-port", "10000",
                               "--public-ip", address[region]], prefix=lab.netns_exec(ns)))
            bridge_proc[region] = procs[-1]
            await wait_http(f"http://{address[region]}:8080/about/health")
        port = _free_port()
        procs.append(Proc(["shard", "--host", "127.0.0.1", "--port", str(port), "--redis",
                           redis.url, "--shard-id", "shard-1", "--bridge-selection", "region"]))
        shard = procs[-1]
        await wait_http(f"http://127.0.0.1:{port}/about/health")

        room = "cascade"
        ws = f"ws://127.0.0.1:{port}/ws?room={room}"
        # 6 peers each encode one and decode five videos in this process: 5 fps keeps that
        # within reach of two shared cores; no receive-side estimate (tests/peers.py says why)
        peers = [Peer(f"{region}{i}", ws, room, slots=5, shade=30 + 35 * (3 * r + i), fps=5,
                      receive_estimate=False,
                      frequency=300.0 + 90 * (3 * r + i), headers={"X-Proxy-Region": region})
                 for r, region in enumerate(REGIONS) for i in range(PER_REGION)]
        try:
            for peer in peers:
                await peer.join()

            def host_of(p: Peer) -> str | None:
                return p.channel._response.url.host if p.channel is not None else None

            for r, region in enumerate(REGIONS):  # each on its own region's bridge
                group = peers[r * PER_REGION:(r + 1) * PER_REGION]
                assert {host_of(p) for p in group} == {address[region]}, region
            if not await wait_until(lambda: everyone_decodes(peers, 5), timeout=90):
                async with aiohttp.ClientSession() as http:
                    stats = [await _stats(http, address[r]) for r in REGIONS]
                pytest.fail(f"{_progress(peers)}\n{stats}")

            async with aiohttp.ClientSession() as http:
                sources = 2 * PER_REGION  # audio and video of each participant
                first = {r: await _stats(http, address[r]) for r in REGIONS}
                started = time.monotonic()
                await asyncio.sleep(5.0)
                last = {r: await _stats(http, address[r]) for r in REGIONS}
                elapsed = time.monotonic() - started
                for region in REGIONS:
                    stats = last[region]
                    assert stats["relays"] == 1 and stats["relays_connected"] == 1, stats
                    assert stats["endpoints"] == PER_REGION, stats  # relayed ones apart
                    assert stats["relayed_endpoints"] == PER_REGION, stats
                    # one copy of each source of the other bridge, and of each of its own
                    assert stats["relay_streams_in"] == sources, stats
                    assert stats["relay_streams_out"] == sources, stats
                    assert stats["counters"].get("dropped-internal-error", 0) == 0, stats
                for sender, receiver in (("eu", "us"), ("us", "eu")):
                    sent = last[sender]["relay_bytes_out"] - first[sender]["relay_bytes_out"]
                    got = last[receiver]["relay_bytes_in"] - first[receiver]["relay_bytes_in"]
                    packets = (last[sender]["relay_packets_out"]
                               - first[sender]["relay_packets_out"])
                    assert sent > 0 and got > 0
                    # what one bridge sends the other receives: no copies per receiver
                    assert 0.8 * sent <= got <= 1.2 * sent, (sent, got)
                    print(f"\nrelay {sender}->{receiver}: {8 * sent / elapsed / 1000:.0f} kbit/s, "
                          f"{packets / elapsed:.0f} packets/s for {sources} sources "
                          f"({8 * sent / elapsed / 1000 / PER_REGION:.0f} kbit/s per "
                          f"participant: one audio and one video stream)")
                async with http.get(f"http://{address['eu']}:8080/metrics") as response:
                    metrics = (await response.text()).splitlines()
                assert "tertulia_bridge_relays 1.0" in metrics
                assert f"tertulia_bridge_relay_streams_in {float(sources)}" in metrics

                # A dead bridge: its participants move to the survivor, the relay goes. The
                # moved peers (new connections) must decode everyone's video and audio again;
                # the others everyone's audio. (Their video from a moved peer continues in the
                # same slot after a source switch, which aiortc peers sharing one starved
                # process sometimes do not decode again, with or without relays.)
                before = baseline(peers)
                moved = peers[PER_REGION:]
                killed_at = time.monotonic()
                bridge_proc["us"].kill()
                survivor = address["eu"]
                if not await wait_until(
                    lambda: all(p.renegotiations == 1 for p in moved)
                    and everyone_decodes(peers, 2, since=before, video_to=moved),
                    timeout=90, interval=0.05,
                ):
                    async with http.get(f"http://{survivor}:8080/about/bridge/endpoints") as r:
                        bw = await r.json()
                    pytest.fail(f"{_progress(peers)}\n{bw}\n{await _stats(http, survivor)}")
                print(f"cascaded failover (kill): to the moved peers decoding 2 new frames "
                      f"from all others on one bridge: {time.monotonic() - killed_at:.2f} s")
                assert await wait_until(
                    lambda: everyone_decodes(peers, 10, since=before, video_to=moved),
                    timeout=60), _progress(peers)
                assert {host_of(p) for p in peers} == {survivor}
                stats = await _stats(http, survivor)
                assert stats["relays"] == 0 and stats["relayed_endpoints"] == 0, stats
                assert stats["endpoints"] == 2 * PER_REGION, stats
            assert "conference extended to bridge jvb-us" in shard.output()
            assert "relay between bridges jvb-eu and jvb-us" in shard.output()
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
