"""Endpoint expiry in virtual time: consent freshness (RFC 7675) and never-connected."""

from __future__ import annotations

from tertulia.bridge.bridge import Bridge, BridgeSettings
from tests.unit.golden import DATA


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


OFFER = (DATA / "aiortc-offer-2slots.sdp").read_text()


def test_consent_expiry_and_connect_timeout_report_to_focus() -> None:
    clock = Clock()
    bridge = Bridge(BridgeSettings(consent_timeout=30.0, connect_timeout=20.0), clock=clock)
    expired: list[tuple[str, str, str]] = []
    bridge.on_expired = lambda c, e, r: expired.append((c, e, r))
    bridge.allocate("conf", "alive", OFFER)
    bridge.allocate("conf", "silent", OFFER)
    alive = bridge.find_endpoint("conf", "alive")
    assert alive is not None
    alive.accept_check(("127.0.0.1", 5000), True, clock.now)
    clock.now += 21
    bridge.tick(clock.now)
    assert expired == [("conf", "silent", "media-timeout")]  # never connected
    clock.now += 5
    alive.accept_check(("127.0.0.1", 5000), False, clock.now)  # consent refreshed
    clock.now += 29
    bridge.tick(clock.now)
    assert len(expired) == 1
    clock.now += 2
    bridge.tick(clock.now)
    assert expired[-1] == ("conf", "alive", "media-timeout")
    assert bridge.conferences == {}
    assert bridge.counters["conferences-completed"] == 1
    assert not bridge.expire("conf", "alive")  # idempotent


def test_allocation_errors() -> None:
    bridge = Bridge(BridgeSettings())
    bridge.allocate("conf", "e1", OFFER)
    for sdp, code in ((OFFER, "already-offered"), ("garbage", "bad-sdp")):
        try:
            bridge.allocate("conf", "e1" if sdp == OFFER else "e2", sdp)
        except Exception as exc:  # AllocationError
            assert getattr(exc, "code", None) == code
        else:
            raise AssertionError("allocation should have failed")
