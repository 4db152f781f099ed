"""Endpoint isolation on the bridge: what one party sends can only ever be its own media.

Three real aiortc participants (Ana and Bo honest, Mal malicious) and a raw UDP socket from an
address that never passed ICE. Every forged packet carries a marker; spies on Ana's and Bo's
DTLS transports count the decrypted RTP that reaches them with that marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aioice import stun

from tertulia.bridge.endpoint import MAX_ADDRS, MAX_SSRCS, Endpoint
from tests.peers import Peer, allow_loopback_candidates, wait_until
from tests.server import running_server

pytestmark = pytest.mark.timeout(120)

MARK = b"FORGED-BY-MAL!"


def rtp(pt: int, ssrc: int, seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 960, ssrc) + MARK * 8


def dtls_of(peer: Peer) -> Any:
    assert peer.pc is not None
    return peer.pc.getTransceivers()[0].sender.transport


def spy(peer: Peer) -> list[int]:
    """SSRCs of marked RTP packets that reach ``peer`` (after SRTP, before its decoders)."""
    seen: list[int] = []
    transport = dtls_of(peer)
    original: Callable[..., Awaitable[None]] = transport._handle_rtp_data

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        if MARK in data:
            seen.append(struct.unpack_from("!I", data, 8)[0])
        await original(data, arrival_time_ms=arrival_time_ms)

    transport._handle_rtp_data = handle
    return seen


def stun_check(username: str, key: bytes) -> bytes:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 7
    request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(key)
    request.add_fingerprint()
    return bytes(request)


async def test_forged_packets_never_reach_other_participants() -> None:
    allow_loopback_candidates()
    async with running_server() as server:
        ana, bo, mal = (Peer(n, server.ws, "isolation", slots=2, shade=s)
                        for n, s in (("ana", 40), ("bo", 120), ("mal", 200)))
        peers = [ana, bo, mal]
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker.bind(("127.0.0.1", 0))
        media = ("127.0.0.1", server.settings.media_port)
        try:
            for peer in peers:
                await peer.join()

            def flowing() -> bool:
                return all((p.frames_from(q.id) or _NONE).video_frames > 3
                           for p in peers for q in peers if p is not q)

            assert await wait_until(flowing, timeout=30)
            bridge = server.bridge
            (conference,) = bridge.conferences.values()
            ep: dict[str, Endpoint] = {p.name: conference.endpoints[p.id] for p in peers}
            seen = {p.name: spy(p) for p in (ana, bo)}
            ana_addr = ep["ana"].addr
            ana_sources = dict(ep["ana"].media_by_ssrc)
            mal_tx = dtls_of(mal)._tx_srtp
            mal_audio_pt = ep["mal"].sending["audio"].payload_type
            counters = bridge.counters
            before = dict(counters)

            # 1. A foreign address: garbage, DTLS, and Mal's validly encrypted SRTP replayed.
            for seq in range(20):
                attacker.sendto(rtp(mal_audio_pt, 0xDEAD0000 + seq, seq), media)
                attacker.sendto(mal_tx.protect(rtp(mal_audio_pt, 0xABCD, 1000 + seq)), media)
            attacker.sendto(bytes([22, 0xFE, 0xFD]) + bytes(60), media)
            # 2. Hijack attempts on Ana's ufrag from the foreign address: no key, Mal's own key
            # (Mal knows its own ICE password from its SDP answer), Ana's username reversed.
            ana_user = f"{ep['ana'].creds.local_ufrag}:{ep['ana'].creds.remote_ufrag}"
            for key in (b"", b"guess" * 5, ep["mal"].creds.local_pwd.encode()):
                attacker.sendto(stun_check(ana_user, key), media)
            attacker.sendto(stun_check(f"{ep['ana'].creds.remote_ufrag}:x", b"k" * 22), media)
            # ... followed by SRTP that would be accepted had the hijack worked.
            for seq in range(5):
                attacker.sendto(mal_tx.protect(rtp(mal_audio_pt, 0xABCE, 2000 + seq)), media)
            await asyncio.sleep(0.5)
            attacker.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                reply, _ = attacker.recvfrom(2048)
                raise AssertionError(f"the bridge answered the attacker: {reply[:20]!r}")

            def grew(name: str) -> int:
                return counters[name] - before.get(name, 0)

            assert grew("dropped-unknown-address") >= 41
            assert grew("dropped-stun-bad-message-integrity") == 3
            assert grew("dropped-stun-unknown-user") == 1
            assert ("127.0.0.1", attacker.getsockname()[1]) not in bridge.by_addr
            assert ep["ana"].addr == ana_addr and bridge.by_addr[ana_addr] is ep["ana"]

            # 3. From Mal's own connection: an undeclared SSRC with a payload type it did not
            # negotiate, then Ana's declared SSRCs with Mal's audio payload type (taken as
            # Mal's own audio, never as Ana's), then more SSRCs than an endpoint may use.
            mal_dtls = dtls_of(mal)
            unused_pt = next(pt for pt in range(96, 128)
                             if pt not in {m.payload_type for m in ep["mal"].sending.values()})
            dropped_before = dict(ep["mal"].stats.dropped)
            mal_known = len(ep["mal"].media_by_ssrc)
            for seq in range(20):
                await mal_dtls._send_rtp(rtp(unused_pt, 0x0BAD0000 + seq, seq))
            for seq, ssrc in enumerate(ana_sources):
                await mal_dtls._send_rtp(rtp(mal_audio_pt, ssrc, 100 + seq))
            for seq in range(MAX_SSRCS + 10):
                await mal_dtls._send_rtp(rtp(mal_audio_pt, 0x51000000 + seq, 200 + seq))
            await asyncio.sleep(1.0)
            dropped = ep["mal"].stats.dropped
            assert dropped.get("unidentified-ssrc", 0) - dropped_before.get(
                "unidentified-ssrc", 0) >= 20 + 10
            assert len(ep["mal"].media_by_ssrc) == MAX_SSRCS
            assert ep["ana"].media_by_ssrc == ana_sources  # Ana's sources untouched

            # Nothing from the foreign address reached anyone; what Mal sent from its own
            # connection reached Bo only in the slot that shows Mal, never as Ana's.
            # Exactly the packets the bridge took as Mal's own audio arrived (one per accepted
            # SSRC): none of the foreign address's, none with the unnegotiated payload type.
            accepted = MAX_SSRCS - mal_known
            assert len(seen["bo"]) == accepted and len(seen["ana"]) == accepted, seen
            bo_ep = ep["bo"]
            mal_slot = bo_ep.occupants.index(mal.id)
            allowed = {stream.ssrc for stream in bo_ep.slots[mal_slot]}
            assert set(seen["bo"]) <= allowed, (seen["bo"], allowed)
            ana_slot = bo_ep.occupants.index(ana.id)
            assert not {s.ssrc for s in bo_ep.slots[ana_slot]} & set(seen["bo"])
            ana_ep = ep["ana"]
            allowed_at_ana = {s.ssrc for s in ana_ep.slots[ana_ep.occupants.index(mal.id)]}
            assert set(seen["ana"]) <= allowed_at_ana
            assert counters["dropped-internal-error"] == 0

            # Ana and Bo still see each other.
            frames = (ana.frames_from(bo.id) or _NONE).video_frames
            assert await wait_until(
                lambda: (ana.frames_from(bo.id) or _NONE).video_frames > frames + 5, timeout=10)
        finally:
            attacker.close()
            for peer in peers:
                await peer.close()


class _None:
    video_frames = 0


_NONE: Any = _None()


async def test_valid_checks_from_many_ports_keep_a_bounded_set_of_addresses() -> None:
    """A participant that knows its own ICE password can pass checks from any number of
    ports; the bridge keeps answering on at most MAX_ADDRS of them (the address in use
    among them), so its address table cannot be grown without bound."""
    allow_loopback_candidates()
    async with running_server() as server:
        mal = Peer("mal", server.ws, "addresses", slots=1)
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3 * MAX_ADDRS)]
        try:
            await mal.join()
            bridge = server.bridge
            assert await wait_until(lambda: any(
                e.addr is not None for c in bridge.conferences.values()
                for e in c.endpoints.values()), timeout=20)
            (conference,) = bridge.conferences.values()
            endpoint = conference.endpoints[mal.id]
            in_use = endpoint.addr
            user = f"{endpoint.creds.local_ufrag}:{endpoint.creds.remote_ufrag}"
            key = endpoint.creds.local_pwd.encode()
            media = ("127.0.0.1", server.settings.media_port)
            for s in sockets:
                s.bind(("127.0.0.1", 0))
                s.setblocking(False)
                check = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
                check.attributes["USERNAME"] = user
                check.attributes["PRIORITY"] = 1
                check.attributes["ICE-CONTROLLING"] = 7
                check.add_message_integrity(key)
                check.add_fingerprint()
                s.sendto(bytes(check), media)
            assert await wait_until(
                lambda: bridge.counters["endpoint-addresses-dropped"] >= 2 * MAX_ADDRS,
                timeout=10)
            mine = [a for a, e in bridge.by_addr.items() if e is endpoint]
            assert len(mine) == len(endpoint.valid_addrs) == MAX_ADDRS
            assert in_use in mine and endpoint.addr == in_use  # no USE-CANDIDATE: not moved
        finally:
            for s in sockets:
                s.close()
            await mal.close()
