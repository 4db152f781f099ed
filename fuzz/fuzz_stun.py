"""Coverage-guided fuzzing of STUN through the bridge's own datagram path (demux + ICE-lite).

    python fuzz/fuzz_stun.py NEW_INPUTS_DIR fuzz/corpus/stun -runs=100000

Each input goes to ``Bridge.datagram_received`` (RFC 7983 demultiplexing, STUN parsing, the
ICE-lite connectivity check of an allocated endpoint whose credentials are fixed so that the
seeds' MESSAGE-INTEGRITY is valid) and to the ICE functions directly. Invariants: the parser
raises only ``ValueError``; the bridge never counts an internal error; a datagram from an
address that did not pass a check never maps that address to an endpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

# aioice's STUN codec is the parser under test here, so it is instrumented too.
with atheris.instrument_imports(include=["tertulia", "aioice.stun"]):
    from tertulia.bridge.bridge import Bridge, BridgeSettings
    from tertulia.bridge.transport import ice

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz.seeds import CREDS

OFFER = Path(__file__).resolve().parents[1] / "tests" / "data" / "aiortc-offer-2slots.sdp"
ADDR = ("127.0.0.1", 40000)


def make_bridge() -> Bridge:
    bridge = Bridge(BridgeSettings(slots=2))
    bridge.allocate("fuzz", "endpoint", OFFER.read_text())
    endpoint = bridge.find_endpoint("fuzz", "endpoint")
    assert endpoint is not None
    del bridge.by_ufrag[endpoint.creds.local_ufrag]
    endpoint.creds = CREDS
    bridge.by_ufrag[CREDS.local_ufrag] = endpoint
    return bridge


BRIDGE = make_bridge()


def test_one_input(data: bytes) -> None:
    bridge = BRIDGE
    bridge.by_addr.clear()
    bridge.datagram_received(data, ADDR)
    if bridge.counters["dropped-internal-error"]:
        raise AssertionError("the bridge hit an internal error on this datagram")
    try:
        message = ice.parse(data)
    except ValueError:
        if ADDR in bridge.by_addr:
            raise AssertionError("a malformed datagram mapped an address") from None
        return
    ice.username_local_ufrag(message)
    result = ice.answer_check(message, CREDS, ADDR)
    if result.error is None:
        if ADDR not in bridge.by_addr:
            raise AssertionError("a valid check did not map the address")
        if not message.check_message_integrity(CREDS.local_pwd.encode()):
            raise AssertionError("a check without valid integrity was accepted")
    elif result.response is None and ADDR in bridge.by_addr:
        raise AssertionError(f"a refused check ({result.error}) mapped the address")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
