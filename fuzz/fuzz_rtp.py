"""Coverage-guided fuzzing of RTP parsing: header, CSRCs, RFC 8285 extensions, VP8 descriptor.

    python fuzz/fuzz_rtp.py NEW_INPUTS_DIR fuzz/corpus/rtp -runs=100000

Invariants: only ``RtpParseError``/``ValueError`` may come out of the parsers; a parsed packet
writes back to bytes that parse to the same packet; rewriting the header keeps the payload.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["tertulia"]):
    from tertulia.bridge.rtp.packet import (
        RtpPacket,
        RtpParseError,
        audio_level,
        extension_span,
        header_fields,
        parse_extensions,
        payload_offset,
        rewrite_header,
    )
    from tertulia.bridge.rtp.vp8 import (
        is_keyframe_start,
        keyframe_size,
        parse_vp8_descriptor,
        rewrite_picture_ids,
    )
    from tertulia.bridge.transport.demux import classify


def test_one_input(data: bytes) -> None:
    classify(data)
    try:
        header_fields(data)
        extension_span(data)
        payload_offset(data)
    except RtpParseError:
        pass
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    elements = parse_extensions(data)
    if RtpPacket.parse(bytes(packet)) != packet:
        raise AssertionError("RTP packet does not survive a round trip")
    for eid, value in elements:
        if eid == 1 and value:
            audio_level(value)
    try:
        rewritten = rewrite_header(data, pt=96, seq=1, ts=2, ssrc=3, extensions=elements[:2])
    except ValueError:  # an element that cannot be written in either RFC 8285 form
        pass
    else:
        again = RtpPacket.parse(rewritten)
        if (again.payload, again.ssrc) != (packet.payload, 3):
            raise AssertionError("header rewrite changed the payload")
    try:
        parse_vp8_descriptor(packet.payload)
        rewrite_picture_ids(packet.payload, 1234, 7)
    except ValueError:
        pass
    is_keyframe_start(packet.payload)
    keyframe_size(packet.payload)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
