"""Slot streams keep one continuous RTP stream per slot across source switches."""

from __future__ import annotations

import itertools

from tertulia.bridge.rtp.packet import RtpPacket, parse_extensions, payload_offset
from tertulia.bridge.rtp.seqnum import seq_diff
from tertulia.bridge.rtp.vp8 import is_keyframe_start, parse_vp8_descriptor
from tertulia.bridge.subscription import SlotStream
from tertulia.protocol.sdp import EXT_ABS_SEND_TIME, EXT_MID
from tests.unit.golden import VIDEO, load, rid_ssrcs

SENDER_EXT = {EXT_ABS_SEND_TIME: 2, EXT_MID: 4}
RECEIVER_EXT = {EXT_ABS_SEND_TIME: 3, EXT_MID: 1}


def layer(rid: str) -> list[bytes]:
    ssrc = rid_ssrcs()[rid]
    return [r.data for r in load(VIDEO) if RtpPacket.parse(r.data).ssrc == ssrc]


def stream() -> SlotStream:
    return SlotStream(
        kind="video", ssrc=0x1234, payload_type=100, clock_rate=90000,
        receiver_extmap=RECEIVER_EXT, mid="3", cname="slot-0",
    )


def feed(s: SlotStream, packets: list[bytes], now: float) -> list[RtpPacket]:
    out = []
    for data in packets:
        p = RtpPacket.parse(data)
        fwd = s.forward(data, p.ssrc, p.sequence_number, p.timestamp, parse_extensions(data),
                        data[payload_offset(data):], now)
        if fwd is not None:
            out.append(RtpPacket.parse(fwd.packet))
    return out


def test_video_starts_on_keyframe_and_is_rewritten() -> None:
    packets = layer("l")
    s = stream()
    s.attach("a", RtpPacket.parse(packets[0]).ssrc, SENDER_EXT)
    before = s.last_out_seq
    out = feed(s, packets, now=1.0)
    assert out, "nothing forwarded"
    first = RtpPacket.parse(packets[0])
    assert is_keyframe_start(first.payload)  # capture starts with a keyframe
    assert out[0].sequence_number == (before + 1) & 0xFFFF
    assert all(p.ssrc == 0x1234 and p.payload_type == 100 for p in out)
    for a, b in itertools.pairwise(out):
        assert seq_diff(b.sequence_number, a.sequence_number) == 1
    # extensions translated to the receiver's ids; mid is the slot's, always present
    ids = dict(out[-1].extensions)
    assert ids[1] == b"3" and 3 in ids and 2 not in ids and 4 not in ids
    assert out[0].payload == first.payload


def test_switch_waits_for_keyframe_and_continues_sequence() -> None:
    low, mid = layer("l"), layer("m")
    s = stream()
    s.attach("a", RtpPacket.parse(low[0]).ssrc, SENDER_EXT)
    out1 = feed(s, low[:50], now=1.0)
    last = out1[-1]
    s.attach("b", RtpPacket.parse(mid[0]).ssrc, SENDER_EXT)
    # packets that are not a keyframe start are held back
    assert feed(s, mid[5:20], now=2.0) == []
    out2 = feed(s, mid[:3], now=2.5)
    assert out2[0].sequence_number == (last.sequence_number + 1) & 0xFFFF
    # timestamps move forward by about the wall time that passed (1.5 s at 90 kHz)
    gap = (out2[0].timestamp - last.timestamp) & 0xFFFFFFFF
    assert 0.9 * 135000 <= gap <= 1.1 * 135000


def test_simulcast_layer_switch_waits_for_target_keyframe() -> None:
    low, mid = layer("l"), layer("m")
    s = stream()
    s.attach("a", RtpPacket.parse(low[0]).ssrc, SENDER_EXT)
    out = feed(s, low[:30], now=1.0)
    # Same sender, other layer: a new target, while the low layer keeps flowing.
    s.attach("a", RtpPacket.parse(mid[0]).ssrc, SENDER_EXT)
    assert s.waiting_for_keyframe
    more = feed(s, low[30:40], now=1.2)
    assert len(more) == 10
    assert feed(s, mid[5:15], now=1.3) == []  # not a keyframe yet
    more += feed(s, low[40:42], now=1.35)
    assert len(more) == 12
    switched = feed(s, mid[:3], now=1.4)  # the capture's first keyframe of layer m
    # VP8 picture IDs and TL0PICIDX continue across the switch (RFC 7741 §4.2): the two
    # layers count independently in the capture, the receiver sees one counter.
    frames = [parse_vp8_descriptor(p.payload) for p in out + more + switched]
    starts = [d for d in frames if d.start_of_partition and d.partition_id == 0]
    pids = [d.picture_id for d in starts]
    assert all(((b or 0) - (a or 0)) % (1 << 15) == 1 for a, b in itertools.pairwise(pids))
    tl0 = [d.tl0picidx for d in starts if d.tid == 0]
    assert all(((b or 0) - (a or 0)) % 256 == 1 for a, b in itertools.pairwise(tl0))
    assert switched and not s.waiting_for_keyframe
    assert {p.ssrc for p in switched} == {0x1234}
    last = more[-1].sequence_number
    assert switched[0].sequence_number == (last + 1) & 0xFFFF  # one continuous stream
    assert feed(s, low[42:50], now=1.5) == []  # the old layer is no longer forwarded


def test_detach_stops_forwarding() -> None:
    packets = layer("l")
    s = stream()
    s.attach("a", RtpPacket.parse(packets[0]).ssrc, SENDER_EXT)
    s.detach()
    assert s.source is None and not s.waiting_for_keyframe
