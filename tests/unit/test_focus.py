"""The focus with hand-written fake bridges: placement, relays between the bridges of a
conference, failure moves."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from tertulia.bridge.bridge import Allocation, AllocationError
from tertulia.focus.focus import BridgeClient, Focus, FocusError


class FakeBridge:
    def __init__(self, bridge_id: str) -> None:
        self._id = bridge_id
        self.endpoints: set[tuple[str, str]] = set()
        self.blocked: list[tuple[str, str, bool]] = []
        self.relays: dict[tuple[str, str], dict[str, Any] | None] = {}  # -> peer, once connected
        self.relay_calls: list[str] = []

    @property
    def bridge_id(self) -> str:
        return self._id

    async def allocate(self, conference_id: str, endpoint_id: str, offer_sdp: str
                       ) -> Allocation:
        if offer_sdp == "bad":
            raise AllocationError("bad-sdp", "nope")
        self.endpoints.add((conference_id, endpoint_id))
        return Allocation(f"answer from {self._id}", endpoint_id, f"http://{self._id}/ch")

    async def expire(self, conference_id: str, endpoint_id: str) -> bool:
        found = (conference_id, endpoint_id) in self.endpoints
        self.endpoints.discard((conference_id, endpoint_id))
        return found

    async def set_blocked(self, conference_id: str, endpoint_id: str, kind: str,
                          blocked: bool) -> bool:
        self.blocked.append((endpoint_id, kind, blocked))
        return True

    async def relay_open(self, conference_id: str, peer_bridge: str) -> dict[str, Any]:
        self.relay_calls.append(f"open {peer_bridge}")
        self.relays[(conference_id, peer_bridge)] = None
        return {"bridge": self._id}

    async def relay_connect(self, conference_id: str, peer_bridge: str, peer: dict[str, Any],
                            active: bool) -> bool:
        self.relay_calls.append(f"connect {peer_bridge} {'active' if active else 'passive'}")
        self.relays[(conference_id, peer_bridge)] = peer
        return True

    async def relay_close(self, conference_id: str, peer_bridge: str) -> bool:
        self.relay_calls.append(f"close {peer_bridge}")
        return self.relays.pop((conference_id, peer_bridge), 0) != 0


class FakePool:
    def __init__(self, *bridges: FakeBridge) -> None:
        self.live = {b.bridge_id: b for b in bridges}
        self.choices: list[str | None] = []
        self.seen: list[dict[str, int]] = []

    async def choose(self, region: str | None, conference: Mapping[str, int]
                     ) -> tuple[BridgeClient, str]:
        """The region's bridge, else the conference's busiest, else the first by id."""
        self.choices.append(region)
        self.seen.append(dict(conference))
        if not self.live:
            raise FocusError("no-bridge", "none")
        busiest = max(conference, key=lambda b: conference[b]) if conference else ""
        bridge = (self.live.get(region or "") or self.live.get(busiest)
                  or sorted(self.live.values(), key=lambda b: b.bridge_id)[0])
        return bridge, "test"

    def client(self, bridge_id: str) -> BridgeClient | None:
        return self.live.get(bridge_id)


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_the_pool_places_each_participant_knowing_the_conference() -> None:
    a, b = FakeBridge("a"), FakeBridge("b")
    pool = FakePool(a, b)
    focus = Focus(pool)
    first = await focus.offer("room", "p1", "sdp", region=None)
    second = await focus.offer("room", "p2", "sdp", region=None)
    assert first.answer == second.answer == "answer from a"
    assert pool.seen == [{}, {"a": 1}]  # the pool is told where the conference is
    assert focus.bridge_of("room") == "a" and len(a.endpoints) == 2 and not b.endpoints
    assert a.relay_calls == [] and b.relay_calls == []  # one bridge: no relay
    await focus.offer("other", "p3", "sdp", region=None, blocked=frozenset({"audio"}))
    assert a.blocked == [("p3", "audio", True)]


async def test_a_conference_on_two_bridges_gets_one_relay_between_them() -> None:
    a, b = FakeBridge("a"), FakeBridge("b")
    focus = Focus(FakePool(a, b))
    await focus.offer("room", "p1", "sdp", region="a")
    await focus.offer("room", "p2", "sdp", region="b")  # another region: cascaded
    await focus.offer("room", "p3", "sdp", region="b")
    await focus.offer("room", "p4", "sdp", region="a")
    cid = focus.conferences["room"].conference_id
    assert focus.bridges_of("room") == {"a": 2, "b": 2}
    # once per pair: each side opens, then each is given the other's parameters
    assert a.relay_calls == ["open b", "connect b passive"]
    assert b.relay_calls == ["open a", "connect a active"]
    assert a.relays == {(cid, "b"): {"bridge": "b"}}
    assert b.relays == {(cid, "a"): {"bridge": "a"}}

    focus.leave("room", "p2")
    await settle()
    assert a.relays  # b still holds p3
    focus.leave("room", "p3")  # b holds none of the conference now
    await settle()
    assert a.relay_calls[-1] == "close b" and not a.relays
    await focus.offer("room", "p5", "sdp", region="b")  # b again: a fresh relay
    assert a.relay_calls[-2:] == ["open b", "connect b passive"]


async def test_three_bridges_of_a_conference_form_a_full_mesh_of_relays() -> None:
    bridges = [FakeBridge(name) for name in "abc"]
    focus = Focus(FakePool(*bridges))
    for i, region in enumerate("abcab"):
        await focus.offer("room", f"p{i}", "sdp", region=region)
    cid = focus.conferences["room"].conference_id
    for bridge in bridges:  # one relay to each other bridge, each opened once
        assert set(bridge.relays) == {(cid, other.bridge_id) for other in bridges
                                      if other is not bridge}
        assert sum(call.startswith("open") for call in bridge.relay_calls) == 2
    assert focus.relays_opened == 3


async def test_a_failed_bridge_of_a_cascaded_conference_is_cut_off() -> None:
    a, b = FakeBridge("a"), FakeBridge("b")
    pool = FakePool(a, b)
    focus = Focus(pool)
    asked: list[str] = []
    focus.on_renegotiate = lambda room, pid, reason: asked.append(pid)
    await focus.offer("room", "p1", "sdp", region="a")
    await focus.offer("room", "p2", "sdp", region="b")
    del pool.live["b"]
    focus.bridge_failed("b")
    await settle()
    assert asked == ["p2"] and focus.has_media("room", "p1")  # the conference goes on
    assert a.relay_calls[-1] == "close b" and not a.relays
    await focus.offer("room", "p2", "sdp", region="b")  # b is gone: lands on a
    assert focus.bridges_of("room") == {"a": 2}


async def test_leave_expires_and_forgets_the_empty_conference() -> None:
    a = FakeBridge("a")
    focus = Focus(FakePool(a))
    await focus.offer("room", "p1", "sdp")
    focus.leave("room", "p1")
    focus.leave("room", "p1")  # idempotent
    await settle()
    assert not a.endpoints and "room" not in focus.conferences


async def test_allocation_errors_become_focus_errors_and_leave_nothing_behind() -> None:
    focus = Focus(FakePool(FakeBridge("a")))
    with pytest.raises(FocusError) as info:
        await focus.offer("room", "p1", "bad")
    assert info.value.code == "bad-sdp" and not focus.conferences
    with pytest.raises(FocusError) as info:
        await Focus(FakePool()).offer("room", "p1", "sdp")
    assert info.value.code == "no-bridge"


async def test_a_failed_bridge_asks_its_participants_to_renegotiate_elsewhere() -> None:
    a, b = FakeBridge("a"), FakeBridge("b")
    pool = FakePool(a, b)
    focus = Focus(pool)
    asked: list[tuple[str, str, str]] = []
    focus.on_renegotiate = lambda room, pid, reason: asked.append((room, pid, reason))
    for pid in ("p1", "p2", "p3"):
        await focus.offer("room", pid, "sdp")
    await focus.offer("elsewhere", "q1", "sdp", region="b")
    assert focus.bridge_of("room") == "a"

    del pool.live["a"]
    focus.bridge_failed("a")
    assert sorted(asked) == [("room", p, "bridge-failed") for p in ("p1", "p2", "p3")]
    assert focus.moved == 3
    assert not focus.has_media("room", "p1") and focus.has_media("elsewhere", "q1")
    for pid in ("p1", "p2", "p3"):  # each sends a fresh offer
        answer = await focus.offer("room", pid, "sdp")
        assert answer.answer == "answer from b"
    assert focus.bridge_of("room") == "b"
    assert {e for _, e in b.endpoints} == {"p1", "p2", "p3", "q1"}


async def test_endpoint_expired_by_the_bridge_reports_media_lost() -> None:
    a = FakeBridge("a")
    focus = Focus(FakePool(a))
    lost: list[tuple[str, str, str]] = []
    focus.on_media_lost = lambda room, pid, reason: lost.append((room, pid, reason))
    await focus.offer("room", "p1", "sdp")
    conference_id = focus.conferences["room"].conference_id
    focus.endpoint_expired(conference_id, "p1", "media-timeout")
    focus.endpoint_expired(conference_id, "p1", "media-timeout")  # once only
    assert lost == [("room", "p1", "media-timeout")]


async def test_an_answer_from_a_bridge_that_failed_meanwhile_is_refused() -> None:
    a, b = FakeBridge("a"), FakeBridge("b")
    pool = FakePool(a, b)
    focus = Focus(pool)
    original = a.allocate

    async def slow_allocate(conference_id: str, endpoint_id: str, offer_sdp: str) -> Allocation:
        answer = await original(conference_id, endpoint_id, offer_sdp)
        focus.bridge_failed("a")  # dies just after answering
        return answer

    a.allocate = slow_allocate  # type: ignore[method-assign]
    with pytest.raises(FocusError) as info:
        await focus.offer("room", "p1", "sdp")
    assert info.value.code == "bridge-unavailable"
    assert not focus.has_media("room", "p1")
    del pool.live["a"]
    assert (await focus.offer("room", "p1", "sdp")).answer == "answer from b"
