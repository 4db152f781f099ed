"""VP8 payload descriptor and key-frame detection on Chrome's L1T3 simulcast capture."""

from __future__ import annotations

import collections
import itertools

import pytest

from tertulia.bridge.rtp.packet import RtpPacket
from tertulia.bridge.rtp.vp8 import (
    Vp8Descriptor,
    after_descriptor,
    is_keyframe_start,
    keyframe_size,
    parse_vp8_descriptor,
    rewrite_picture_ids,
)

from .golden import VIDEO, Record, load, rid_ssrcs

VP8_PT = 96
DIMS = {"l": (320, 180), "m": (640, 360), "h": (1280, 720)}


def _layer(rid: str) -> list[tuple[Record, RtpPacket]]:
    ssrc = rid_ssrcs()[rid]
    out = []
    for r in load(VIDEO):
        p = RtpPacket.parse(r.data)
        if p.ssrc == ssrc and p.payload_type == VP8_PT:
            out.append((r, p))
    return out


def _frames(rid: str) -> dict[int, list[tuple[Record, RtpPacket]]]:
    frames: dict[int, list[tuple[Record, RtpPacket]]] = {}
    for r, p in _layer(rid):
        frames.setdefault(p.timestamp, []).append((r, p))
    return frames


@pytest.mark.parametrize("rid", ["l", "m", "h"])
def test_two_keyframes_per_layer_with_dimensions(rid: str) -> None:
    frames = _frames(rid)
    assert len(frames) == {"l": 211, "m": 211, "h": 180}[rid]
    keyframes = []
    for ts, pkts in frames.items():
        first = pkts[0][1]
        if is_keyframe_start(first.payload):
            keyframes.append((pkts[0][0].t_ms, ts, keyframe_size(first.payload)))
    assert len(keyframes) == 2
    assert [size for _, _, size in keyframes] == [DIMS[rid], DIMS[rid]]
    assert 220 < keyframes[0][0] < 230
    assert 2070 < keyframes[1][0] < 2080  # after aiortc's PLI at t≈2028
    # only frame starts can be key frame starts
    starts = [p for _, p in _layer(rid) if is_keyframe_start(p.payload)]
    assert len(starts) == 2


@pytest.mark.parametrize(("rid", "npkts"), [("l", 1), ("m", 2), ("h", 4)])
def test_first_keyframe_complete(rid: str, npkts: int) -> None:
    frames = _frames(rid)
    ts = next(ts for ts, pkts in frames.items() if is_keyframe_start(pkts[0][1].payload))
    pkts = frames[ts]
    assert len(pkts) == npkts
    assert all(not r.truncated for r, _ in pkts)
    assert [p.marker for _, p in pkts] == [False] * (npkts - 1) + [True]
    descs = [parse_vp8_descriptor(p.payload) for _, p in pkts]
    assert [d.start_of_partition for d in descs] == [True] + [False] * (npkts - 1)
    assert all(d.partition_id == 0 and d.tid == 0 and d.layer_sync for d in descs)
    # "90 e0 PP PP TT 20 | 70 .. .. 9d 01 2a"
    head = pkts[0][1].payload
    assert head[:2] == b"\x90\xe0" and head[5] == 0x20 and head[9:12] == b"\x9d\x01\x2a"
    assert descs[0].size == 6


@pytest.mark.parametrize(
    ("rid", "hist"),
    [
        ("h", {0: 222, 1: 146, 2: 342}),
        ("m", {0: 139, 1: 96, 2: 206}),
        ("l", {0: 55, 1: 53, 2: 105}),
    ],
)
def test_descriptor_fields(rid: str, hist: dict[int, int]) -> None:
    layer = _layer(rid)
    descs = [parse_vp8_descriptor(p.payload) for _, p in layer]
    for (_, p), d in zip(layer, descs, strict=True):
        assert p.payload[0] & 0x80  # X=1
        assert p.payload[1] & 0xE0 == 0xE0  # I=1, L=1, T=1
        assert d.picture_id is not None and d.picture_id_15bit  # M=1
        assert d.tl0picidx is not None and d.tid is not None
        assert d.keyidx is None and d.size == 6
        assert d.non_reference == (d.tid == 2)  # TL2 frames are marked discardable
    assert collections.Counter(d.tid for d in descs) == hist
    # one picture ID per frame, incrementing by one; TL0PICIDX increments on TL0 frames
    firsts = [parse_vp8_descriptor(pkts[0][1].payload) for pkts in _frames(rid).values()]
    for a, b in itertools.pairwise(firsts):
        assert a.picture_id is not None and b.picture_id is not None
        assert (b.picture_id - a.picture_id) & 0x7FFF == 1
        assert a.tl0picidx is not None and b.tl0picidx is not None
        step = (b.tl0picidx - a.tl0picidx) & 0xFF
        assert step == (1 if b.tid == 0 else 0)


def test_parse_descriptor_synthetic() -> None:
    assert parse_vp8_descriptor(b"\x10") == Vp8Descriptor(
        True, 0, None, False, None, None, False, None, 1
    )
    d = parse_vp8_descriptor(bytes([0xA3, 0x90, 0x05, 0x3A]))  # N=1, PID=3; I (7 bit), K
    assert (d.partition_id, d.non_reference, d.start_of_partition) == (3, True, False)
    assert (d.picture_id, d.picture_id_15bit, d.keyidx, d.tid, d.size) == (5, False, 26, None, 4)
    d = parse_vp8_descriptor(bytes([0x90, 0x30, 0x7F]))  # T and K
    assert (d.tid, d.layer_sync, d.keyidx) == (1, True, 31)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x80", b"\x90\x80", b"\x90\x80\x80", b"\x90\x40", b"\x90\x20", b"\x90\xe0\x80\x01\x05"],
)
def test_truncated_descriptor_raises(payload: bytes) -> None:
    with pytest.raises(ValueError):
        parse_vp8_descriptor(payload)
    assert not is_keyframe_start(payload)
    assert keyframe_size(payload) is None


def test_keyframe_helpers_negative_cases() -> None:
    key = bytes.fromhex("10 5000009d012a4001b400")  # minimal descriptor, key frame 320x180
    assert is_keyframe_start(key) and keyframe_size(key) == (320, 180)
    assert keyframe_size(key[:9]) is None  # start code cut off
    assert not is_keyframe_start(bytes([0x00]) + key[1:])  # S=0
    assert not is_keyframe_start(bytes([0x11]) + key[1:])  # PID=1
    assert not is_keyframe_start(b"\x10\x51")  # P=1: inter frame
    assert not is_keyframe_start(b"\x10")  # no payload header
    scaled = key[:7] + bytes([0x40, 0x41, 0xB4, 0xC0])  # scaling bits are masked off
    assert keyframe_size(scaled) == (320, 180)


def test_rewrite_picture_ids_real_payload() -> None:
    _, p = _layer("h")[10]
    before = parse_vp8_descriptor(p.payload)
    out = rewrite_picture_ids(p.payload, 0x7FFE + 5, 300)
    after = parse_vp8_descriptor(out)
    assert after.picture_id == (0x7FFE + 5) & 0x7FFF and after.picture_id_15bit
    assert after.tl0picidx == 300 & 0xFF
    assert (after.tid, after.layer_sync, after.size) == (before.tid, before.layer_sync, 6)
    assert out[:2] == p.payload[:2] and out[6:] == p.payload[6:]
    assert rewrite_picture_ids(p.payload, None, None) == p.payload
    only_tl0 = rewrite_picture_ids(p.payload, None, 7)
    assert parse_vp8_descriptor(only_tl0).picture_id == before.picture_id
    assert parse_vp8_descriptor(only_tl0).tl0picidx == 7


def test_rewrite_picture_ids_widths() -> None:
    seven = bytes([0x90, 0xC0, 0x05, 0x09, 0xAA])  # I (7-bit) and L
    out = rewrite_picture_ids(seven, 200, 1)
    assert out == bytes([0x90, 0xC0, 200 & 0x7F, 0x01, 0xAA])
    no_ids = bytes([0x10, 0x9D])  # no X: nothing to rewrite
    assert rewrite_picture_ids(no_ids, 5, 5) == no_ids
    only_l = bytes([0x90, 0x40, 0x03, 0x00])
    assert rewrite_picture_ids(only_l, 9, 4) == bytes([0x90, 0x40, 0x04, 0x00])
    with pytest.raises(ValueError):
        rewrite_picture_ids(b"\x90\x80", 1, 1)


def test_parse_and_rest_of_one_payload_are_shared_and_correct() -> None:
    payloads = [p.payload for _, p in _layer("h")[:20]]
    for payload in payloads:
        desc = parse_vp8_descriptor(payload)
        assert parse_vp8_descriptor(payload) is desc  # asked again for the same packet
        rest = after_descriptor(payload)
        assert rest == payload[desc.size :] and after_descriptor(payload) is rest
    # a mutable buffer is parsed afresh every time: it may have changed
    buffer = bytearray(payloads[0])
    first = parse_vp8_descriptor(buffer)  # type: ignore[arg-type]
    buffer[0] &= ~0x10  # clear S
    assert first.start_of_partition and not parse_vp8_descriptor(buffer).start_of_partition  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        after_descriptor(b"\x90\x80")
