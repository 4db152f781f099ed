"""Two in-process bridges on loopback UDP ports joined by a relay: ICE check, DTLS-SRTP, relay
messages; a relay given the wrong fingerprint never connects; closing forgets it."""

from __future__ import annotations

import asyncio

from tertulia.bridge.bridge import Bridge, BridgeSettings
from tertulia.bridge.relay import RelayPeer
from tests.peers import wait_until
from tests.server import free_port


async def _bridges() -> tuple[Bridge, Bridge]:
    import socket

    a = Bridge(BridgeSettings(media_port=free_port(socket.SOCK_DGRAM)))
    b = Bridge(BridgeSettings(media_port=free_port(socket.SOCK_DGRAM)))
    await a.start()
    await b.start()
    return a, b


async def test_two_bridges_connect_a_relay_and_close_it() -> None:
    a, b = await _bridges()
    try:
        pa, pb = a.relay_open("c1", "B"), b.relay_open("c1", "A")
        assert b.relay_connect("c1", "A", pa, active=True)
        assert a.relay_connect("c1", "B", pb, active=False)
        assert await wait_until(lambda: a.stats()["relays_connected"] == 1
                                and b.stats()["relays_connected"] == 1, timeout=5)
        assert a.counters["ice-succeeded"] == 0  # the relay's check is not an endpoint's
        # state messages flow both ways each second, authenticated and encrypted
        assert await wait_until(lambda: a.relays()[0].stats.messages_in >= 3
                                and b.relays()[0].stats.messages_in >= 3, timeout=5)
        assert a.relays()[0].stats.dropped == {} and b.relays()[0].stats.dropped == {}
        assert a.relay_close("c1", "B") and not a.relay_close("c1", "B")  # idempotent
        assert a.stats()["relays"] == 0 and a.counters["relays-closed"] == 1
    finally:
        await a.stop()
        await b.stop()


async def test_a_relay_with_the_wrong_fingerprint_never_connects() -> None:
    a, b = await _bridges()
    try:
        pa, pb = a.relay_open("c1", "B"), b.relay_open("c1", "A")
        forged = RelayPeer(pa.ip, pa.port, pa.ufrag, pa.pwd, ":".join(["AB"] * 32))
        b.relay_connect("c1", "A", forged, active=True)
        a.relay_connect("c1", "B", pb, active=False)
        await asyncio.sleep(1.5)
        # b refuses a's certificate after the handshake and says so (close_notify): neither
        # uses the keys, and no relay message crosses
        assert b.stats()["relays_connected"] == 0 and a.stats()["relays_connected"] == 0
        assert a.relays()[0].dtls is not None
        assert a.relays()[0].dtls.failed == "closed by the peer"
        assert b.relays()[0].stats.messages_in == 0 and a.relays()[0].stats.messages_in == 0
        assert b.relays()[0].dtls is not None and b.relays()[0].dtls.failed
        # another conference, where b checks a with the wrong ICE password: refused
        pa, pb = a.relay_open("c2", "B"), b.relay_open("c2", "A")
        wrong_pwd = RelayPeer(pa.ip, pa.port, pa.ufrag, "x" * 24, pa.fingerprint)
        b.relay_connect("c2", "A", wrong_pwd, active=True)
        a.relay_connect("c2", "B", pb, active=False)
        await asyncio.sleep(1.0)
        relay = next(r for r in a.relays() if r.conference.id == "c2")
        assert relay.addr is None and not relay.connected  # no check passed: no address
        assert a.counters["dropped-relay-stun-bad-message-integrity"] >= 1
    finally:
        await a.stop()
        await b.stop()


async def test_a_relay_closed_on_one_side_drops_the_far_participants_on_the_other() -> None:
    from tests.unit.test_conference import Client

    a, b = await _bridges()
    try:
        pa, pb = a.relay_open("c1", "B"), b.relay_open("c1", "A")
        b.relay_connect("c1", "A", pa, active=True)
        a.relay_connect("c1", "B", pb, active=False)
        assert await wait_until(lambda: a.stats()["relays_connected"] == 1
                                and b.stats()["relays_connected"] == 1, timeout=5)
        Client("bo", b.conferences["c1"], b.clock())  # a participant of b (I/O faked)
        assert await wait_until(lambda: "bo" in a.conferences["c1"].endpoints, timeout=5)
        b.relay_close("c1", "A")  # close_notify
        # gone at once, not after the 10 s a silent relay gets
        assert await wait_until(lambda: "bo" not in a.conferences["c1"].endpoints, timeout=5)
        assert a.stats()["relays_connected"] == 0
    finally:
        await a.stop()
        await b.stop()


async def test_a_relayed_participant_that_moves_here_becomes_local() -> None:
    from tertulia.bridge.relay_link import RelayedEndpoint
    from tests.unit.golden import DATA
    from tests.unit.test_conference import Client

    a, b = await _bridges()
    try:
        pa, pb = a.relay_open("c1", "B"), b.relay_open("c1", "A")
        b.relay_connect("c1", "A", pa, active=True)
        a.relay_connect("c1", "B", pb, active=False)
        Client("bo", b.conferences["c1"], b.clock())
        assert await wait_until(lambda: "bo" in a.conferences["c1"].endpoints, timeout=5)
        assert isinstance(a.conferences["c1"].endpoints["bo"], RelayedEndpoint)
        offer = (DATA / "aiortc-offer-2slots.sdp").read_text()
        a.allocate("c1", "bo", offer)  # bo renegotiated onto a (its old copy still on b)
        moved = a.conferences["c1"].endpoints["bo"]
        assert not isinstance(moved, RelayedEndpoint)
        relay = a.relays()[0]
        assert await wait_until(lambda: relay.stats.dropped.get("source-is-local", 0) >= 1,
                                timeout=5)  # b's next description of bo is refused
        assert a.conferences["c1"].endpoints["bo"] is moved
    finally:
        await a.stop()
        await b.stop()
