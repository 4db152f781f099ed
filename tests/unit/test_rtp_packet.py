"""RTP packet parsing/serialization against the golden Chromium 156 capture."""

from __future__ import annotations

import collections
import contextlib
import itertools
import struct

import pytest

from tertulia.bridge.rtp.packet import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    RtpPacket,
    RtpParseError,
    audio_level,
    build_extension_block,
    extension_span,
    header_fields,
    is_rtcp,
    parse_extensions,
    payload_offset,
    rewrite_header,
)
from tertulia.bridge.rtp.seqnum import seq_diff, ts_diff

from .golden import AUDIO, RTCP, VIDEO, load, rid_rtx_ssrcs, rid_ssrcs

AUDIO_SSRC = 659610133
EXT_AUDIO_LEVEL, EXT_ABS_SEND_TIME, EXT_MID, EXT_RID, EXT_RRID = 1, 2, 4, 10, 11
VP8_PT, RTX_PT, OPUS_PT = 96, 97, 111


def _packets(name: str) -> list[RtpPacket]:
    return [RtpPacket.parse(r.data) for r in load(name)]


@pytest.mark.parametrize("name", [AUDIO, VIDEO])
def test_round_trip_every_packet(name: str) -> None:
    records = load(name)
    assert records and all(r.kind == "rtp" for r in records)
    for r in records:
        pkt = RtpPacket.parse(r.data)
        assert bytes(pkt) == r.data
        assert pkt.version == 2
        assert pkt.csrcs == []
        # one-byte form everywhere: extmap-allow-mixed is offered but not in aiortc's answer
        span = extension_span(r.data)
        assert span is not None and span[2] == ONE_BYTE_PROFILE


@pytest.mark.parametrize("name", [AUDIO, VIDEO])
def test_fast_helpers_agree_with_full_parse(name: str) -> None:
    for r in load(name):
        pkt = RtpPacket.parse(r.data)
        assert header_fields(r.data) == (
            pkt.marker,
            pkt.payload_type,
            pkt.sequence_number,
            pkt.timestamp,
            pkt.ssrc,
        )
        assert parse_extensions(r.data) == pkt.extensions
        off = payload_offset(r.data)
        assert r.data[off : len(r.data) - pkt.padding_size] == pkt.payload
        span = extension_span(r.data)
        assert span is not None
        start, end, _profile = span
        assert (start, end) == (12, off)
        assert r.data[start:end] == build_extension_block(pkt.extensions)
        assert not is_rtcp(r.data)


def test_video_counts_per_ssrc() -> None:
    pkts = _packets(VIDEO)
    assert len(pkts) == 1407
    rid = rid_ssrcs()
    rtx = rid_rtx_ssrcs()
    counts = collections.Counter((p.ssrc, p.payload_type) for p in pkts)
    assert counts == {
        (rid["l"], VP8_PT): 213,
        (rid["m"], VP8_PT): 441,
        (rid["h"], VP8_PT): 710,
        (rtx["l"], RTX_PT): 17,
        (rtx["h"], RTX_PT): 26,
    }
    assert rtx["m"] not in {p.ssrc for p in pkts}
    assert max(r.length for r in load(VIDEO)) == 1198
    assert sum(r.truncated for r in load(VIDEO)) == 1394
    # no sequence gaps within any SSRC (loopback capture)
    last: dict[int, int] = {}
    for p in pkts:
        if p.ssrc in last:
            assert seq_diff(p.sequence_number, last[p.ssrc]) == 1
        last[p.ssrc] = p.sequence_number


def test_rid_and_mid_extensions_only_in_first_packets() -> None:
    pkts = _packets(VIDEO)
    expected = {"l": 38, "m": 64, "h": 116}
    for rid, ssrc in rid_ssrcs().items():
        stream = [p for p in pkts if p.ssrc == ssrc]
        has_rid = [p.get_extension(EXT_RID) is not None for p in stream]
        n = expected[rid]
        assert has_rid == [True] * n + [False] * (len(stream) - n)
        assert all(p.get_extension(EXT_RID) == rid.encode() for p in stream[:n])
        assert all(p.get_extension(EXT_MID) == b"1" for p in stream[:n])
        assert all(p.get_extension(EXT_MID) is None for p in stream[n:])
        # after the rid phase only abs-send-time (3 bytes) remains, which every packet has
        assert all([eid for eid, _ in p.extensions] == [EXT_ABS_SEND_TIME] for p in stream[n:])
        assert all(len(p.get_extension(EXT_ABS_SEND_TIME) or b"") == 3 for p in stream)
    rrid = collections.Counter(
        (p.ssrc, p.get_extension(EXT_RRID)) for p in pkts if p.get_extension(EXT_RRID)
    )
    rtx = rid_rtx_ssrcs()
    assert rrid == {(rtx["h"], b"h"): 25, (rtx["l"], b"l"): 17}


def test_rtx_padding_only_and_osn() -> None:
    rtx = rid_rtx_ssrcs()
    pad_only = []
    osn: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for r in load(VIDEO):
        p = RtpPacket.parse(r.data)
        if p.payload_type != RTX_PT:
            continue
        if p.padding_size and not p.payload:
            pad_only.append((r, p))
        else:
            osn[p.ssrc][struct.unpack_from("!H", p.payload)[0]] += 1  # RFC 4588 §4: OSN
    assert len(pad_only) == 6
    for r, p in pad_only:
        assert not r.truncated and len(r.data) == 279
        assert p.ssrc == rtx["h"] and p.padding_size == 255 and r.data[-1] == 0xFF
        assert payload_offset(r.data) == 24
        assert 220 <= r.t_ms <= 290
    assert osn == {rtx["h"]: {28125: 16, 28127: 3, 28440: 1}, rtx["l"]: {4528: 17}}


def test_opus_stream() -> None:
    pkts = _packets(AUDIO)
    assert len(pkts) == 361
    assert {(p.ssrc, p.payload_type) for p in pkts} == {(AUDIO_SSRC, OPUS_PT)}
    assert [p.marker for p in pkts] == [True] + [False] * 360
    assert all(
        seq_diff(b.sequence_number, a.sequence_number) == 1 for a, b in itertools.pairwise(pkts)
    )
    assert all(ts_diff(b.timestamp, a.timestamp) == 960 for a, b in itertools.pairwise(pkts))
    assert all(p.padding_size == 0 and 32 <= len(p.payload) <= 94 for p in pkts)
    toc = collections.Counter(p.payload[0] >> 3 for p in pkts)
    assert toc == {15: 351, 13: 10}
    mids = [p.get_extension(EXT_MID) for p in pkts]
    assert mids == [b"0"] * 61 + [None] * 300


def test_audio_levels() -> None:
    levels = []
    for p in _packets(AUDIO):
        value = p.get_extension(EXT_AUDIO_LEVEL)
        assert value is not None and len(value) == 1
        levels.append(audio_level(value))
    assert len(levels) == 361
    assert all(voice for voice, _ in levels)  # V=1 in every packet, silence included
    values = [lv for _, lv in levels]
    assert min(values) == 7 and max(values) == 127
    assert sum(v == 127 for v in values) > 40  # the silent gaps
    assert audio_level(b"\x7f") == (False, 127)
    assert audio_level(b"\x80") == (True, 0)
    with pytest.raises(ValueError):
        audio_level(b"")


def test_is_rtcp_on_golden_rtcp() -> None:
    assert all(is_rtcp(r.data) for r in load(RTCP))
    assert not is_rtcp(b"\x80")
    assert is_rtcp(bytes([0x80, 192])) and is_rtcp(bytes([0x80, 223]))
    assert not is_rtcp(bytes([0x80, 224])) and not is_rtcp(bytes([0x80, 0xE0 - 33]))


def test_rewrite_header_keeps_extensions() -> None:
    r = next(r for r in load(VIDEO) if RtpPacket.parse(r.data).get_extension(EXT_RID))
    orig = RtpPacket.parse(r.data)
    out = rewrite_header(r.data, pt=100, seq=70000, ts=-1, ssrc=0xDEADBEEF)
    new = RtpPacket.parse(out)
    assert (new.payload_type, new.sequence_number, new.timestamp, new.ssrc) == (
        100,
        70000 & 0xFFFF,
        0xFFFFFFFF,
        0xDEADBEEF,
    )
    assert new.marker == orig.marker
    assert new.extensions == orig.extensions and new.payload == orig.payload
    assert out[12:] == r.data[12:] and len(out) == len(r.data)


def test_rewrite_header_replaces_extensions() -> None:
    marked = next(r for r in load(VIDEO) if r.data[1] & 0x80 and not r.truncated)
    orig = RtpPacket.parse(marked.data)
    abs_send = orig.get_extension(EXT_ABS_SEND_TIME)
    assert abs_send is not None
    # one-byte form
    out = rewrite_header(marked.data, pt=96, seq=1, ts=2, ssrc=3, extensions=[(3, abs_send)])
    new = RtpPacket.parse(out)
    assert new.marker and new.extensions == [(3, abs_send)] and new.payload == orig.payload
    assert extension_span(out) == (12, 20, ONE_BYTE_PROFILE)
    # a 20-byte value forces the two-byte form
    long_ext = [(EXT_ABS_SEND_TIME, abs_send), (5, b"x" * 20)]
    out2 = rewrite_header(marked.data, pt=96, seq=1, ts=2, ssrc=3, extensions=long_ext)
    span = extension_span(out2)
    assert span is not None and span[2] == TWO_BYTE_PROFILE
    assert parse_extensions(out2) == long_ext
    assert RtpPacket.parse(out2).payload == orig.payload
    # empty list removes the block and clears X
    out3 = rewrite_header(marked.data, pt=96, seq=1, ts=2, ssrc=3, extensions=[])
    assert not out3[0] & 0x10 and extension_span(out3) is None
    assert out3[12:] == orig.payload and RtpPacket.parse(out3).marker


def test_rewrite_header_preserves_padding_and_csrcs() -> None:
    pad = next(r for r in load(VIDEO) if r.data[0] & 0x20)
    out = rewrite_header(pad.data, pt=97, seq=5, ts=6, ssrc=7, extensions=[(1, b"\x01")])
    p = RtpPacket.parse(out)
    assert p.padding_size == 255 and p.payload == b"" and out[-255:] == pad.data[-255:]
    pkt = RtpPacket(payload_type=8, csrcs=[1, 2], extensions=[(1, b"a")], payload=b"pp")
    pkt.padding_size = 3
    data = bytes(pkt)
    out = rewrite_header(data, pt=9, seq=1, ts=1, ssrc=1, extensions=[(2, b"bb"), (3, b"c")])
    q = RtpPacket.parse(out)
    assert q.csrcs == [1, 2] and q.payload == b"pp" and q.padding_size == 3
    assert q.extensions == [(2, b"bb"), (3, b"c")]
    with pytest.raises(ValueError):
        rewrite_header(data, pt=128, seq=0, ts=0, ssrc=0)


def test_build_extension_block_bytes() -> None:
    assert build_extension_block([]) == b""
    assert build_extension_block([(1, b"\x87")]) == bytes.fromhex("bede0001 10870000")
    assert build_extension_block([(2, b"\x01\x02\x03")]) == bytes.fromhex("bede0001 22010203")
    # id 15 is reserved in the one-byte form, a zero-length value needs the two-byte form
    assert build_extension_block([(15, b"a")]) == bytes.fromhex("10000001 0f016100")
    assert build_extension_block([(1, b"")]) == bytes.fromhex("10000001 01000000")
    with pytest.raises(ValueError):
        build_extension_block([(256, b"a")])
    with pytest.raises(ValueError):
        build_extension_block([(1, b"a" * 256)])


def test_extension_parsing_rules() -> None:
    # RFC 8285 §4.2: padding bytes between elements, ID 15 stops processing
    hdr = bytes.fromhex("900000010000000200000003")
    block = bytes.fromhex("bede0002 00100100 f0ffffff")
    pkt = RtpPacket.parse(hdr + block + b"pay")
    assert pkt.extensions == [(1, b"\x01")] and pkt.payload == b"pay"
    # RFC 8285 §4.3: two-byte form with appbits, zero-length element and padding
    block2 = bytes.fromhex("100f0002 0500000702aabb00")
    pkt2 = RtpPacket.parse(hdr + block2)
    assert pkt2.extensions == [(5, b""), (7, b"\xaa\xbb")]
    # an unknown profile is kept verbatim
    raw = bytes.fromhex("abcd0001 01020304")
    pkt3 = RtpPacket.parse(hdr + raw + b"x")
    assert pkt3.extensions == [] and pkt3.raw_extension == (0xABCD, b"\x01\x02\x03\x04")
    assert bytes(pkt3) == hdr + raw + b"x"
    assert parse_extensions(hdr + raw) == []


def test_serialize_constructed_packet() -> None:
    pkt = RtpPacket(
        marker=True,
        payload_type=111,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=AUDIO_SSRC,
        extensions=[(EXT_AUDIO_LEVEL, b"\xff")],
        payload=b"\x78\x01",
    )
    data = bytes(pkt)
    assert data[:2] == b"\x90\xef"
    assert RtpPacket.parse(data) == pkt
    pkt.payload_type = 200
    with pytest.raises(ValueError):
        bytes(pkt)


BASE = bytes.fromhex("800000010000000200000003")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (BASE[:11], "too short"),
        (bytes([0x40]) + BASE[1:], "version 1"),
        (bytes([0x00]) + BASE[1:], "version 0"),
        (bytes([0x82]) + BASE[1:] + b"\x00\x00\x00\x01", "CSRC"),
        (bytes([0x90]) + BASE[1:] + b"\xbe\xde", "extension header"),
        (bytes([0x90]) + BASE[1:] + bytes.fromhex("bede0002 10aa0000"), "extension length"),
        (bytes([0x90]) + BASE[1:] + bytes.fromhex("bede0001 33aa0000"), "runs past the block"),
        (bytes([0x90]) + BASE[1:] + bytes.fromhex("10000001 0105aa00"), "runs past the block"),
        (bytes([0xA0]) + BASE[1:] + b"ab\x05", "larger than"),
        (bytes([0xA0]) + BASE[1:] + b"ab\x00", "count is 0"),
        (bytes([0xA0]) + BASE[1:], "no payload"),
    ],
)
def test_malformed_rtp(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError, match=message):
        RtpPacket.parse(data)


def test_fast_helpers_reject_short_or_overlong() -> None:
    for fn in (header_fields, extension_span, payload_offset, parse_extensions):
        with pytest.raises(RtpParseError):
            fn(BASE[:11])
    bad = bytes([0x90]) + BASE[1:] + bytes.fromhex("bede0005 10aa0000")
    with pytest.raises(RtpParseError):
        extension_span(bad)
    with pytest.raises(RtpParseError):
        rewrite_header(bad, pt=1, seq=1, ts=1, ssrc=1, extensions=[])


def test_truncations_only_raise_rtp_parse_error() -> None:
    samples = [r.data for r in load(VIDEO)[:40]] + [r.data for r in load(AUDIO)[:10]]
    for data in samples:
        for cut in range(0, 40):
            with contextlib.suppress(RtpParseError):
                RtpPacket.parse(data[:cut])


def test_one_byte_id_zero_with_length_is_padding() -> None:
    """Found by the property test: an ID-0 byte with a non-zero length nibble is padding."""
    data = b"\xb0" + bytes(11) + b"\xbe\xde\x00\x01\x01\x00\x00\x00\x01"
    packet = RtpPacket.parse(data)
    assert packet.extensions == [] and packet.padding_size == 1
    assert RtpPacket.parse(bytes(packet)) == packet
