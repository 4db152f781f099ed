"""Coverage-guided fuzzing of RTCP compound packets and every feedback type the bridge reads.

    python fuzz/fuzz_rtcp.py NEW_INPUTS_DIR fuzz/corpus/rtcp -runs=100000

SR, RR, SDES, BYE, generic NACK, PLI, FIR, REMB, transport-cc and unknown packets. Invariant:
only ``RtcpParseError`` comes out of parsing, and what was parsed writes back to bytes that
parse to packets of the same types (feedback
messages the bridge acts on: equal).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["tertulia"]):
    from tertulia.bridge.rtp.rtcp import (
        Fir,
        Pli,
        Remb,
        RtcpParseError,
        TransportCC,
        parse_rtcp,
        serialize_rtcp,
    )
    from tertulia.bridge.transport.demux import classify


def test_one_input(data: bytes) -> None:
    classify(data)
    try:
        packets = parse_rtcp(data)
    except RtcpParseError:
        return
    again = parse_rtcp(serialize_rtcp(packets))
    if [type(p) for p in again] != [type(p) for p in packets]:
        raise AssertionError("RTCP packet types change in a round trip")
    for before, after in zip(packets, again, strict=True):
        if isinstance(before, TransportCC | Pli | Fir | Remb) and before != after:
            raise AssertionError(f"{type(before).__name__} does not survive a round trip")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
