"""Coverage-guided fuzzing of SDP offer parsing, negotiation and answer building.

    python fuzz/fuzz_sdp.py NEW_INPUTS_DIR fuzz/corpus/sdp -runs=20000

Each input (decoded as UTF-8 with replacement, as aiohttp hands text frames over) is allocated
on a real ``Bridge``: ``parse_offer``, ``negotiate``, the endpoint and the SDP answer. Invariant:
only ``AllocationError`` (code ``bad-sdp``) comes out, and an accepted offer yields an answer
with one m-line per offered m-line (JSEP, RFC 8829 §5.3.1).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["tertulia"]):
    from tertulia.bridge.bridge import AllocationError, Bridge, BridgeSettings
    from tertulia.protocol.sdp import parse_offer

BRIDGE = Bridge(BridgeSettings(slots=3))


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        allocation = BRIDGE.allocate("fuzz", "endpoint", text)
    except AllocationError as exc:
        if exc.code != "bad-sdp" or not exc.message:
            raise AssertionError(f"unexpected allocation error {exc.code}") from exc
        return
    try:
        offered = len(parse_offer(text).media)
        answered = allocation.answer.count("\r\nm=")
        if offered != answered:
            raise AssertionError(f"{offered} m-lines offered, {answered} answered")
    finally:
        BRIDGE.expire("fuzz", "endpoint")
    if BRIDGE.conferences or BRIDGE.by_ufrag:
        raise AssertionError("expiring the endpoint left state behind")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
