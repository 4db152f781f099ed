"""VP8 temporal layers: rates per TID (rtp/temporal.py) and forwarding a temporal subset with
contiguous sequence numbers and picture IDs (rtp/projection.py through SlotStream), with
synthetic L1T3 packets built byte by byte."""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from tertulia.bridge.rtp.packet import RtpPacket, payload_offset
from tertulia.bridge.rtp.temporal import TemporalMeter
from tertulia.bridge.rtp.vp8 import parse_vp8_descriptor
from tertulia.bridge.subscription import SlotStream
from tertulia.protocol.sdp import EXT_MID
from tests.unit.test_subscription import feed as subscription_feed

SSRC = 0xABCD
PATTERN = (0, 2, 1, 2)  # Chromium's L1T3 frame order


@dataclass(frozen=True)
class Frame:
    pid: int
    tl0: int
    tid: int
    sync: bool  # Y
    key: bool
    packets: tuple[bytes, ...]


def vp8_packet(seq: int, ts: int, pid: int, tl0: int, tid: int, sync: bool, *,
               start: bool, marker: bool, key: bool) -> bytes:
    """RTP (RFC 3550 §5.1, no extensions) + VP8 descriptor with X, I (15-bit), L, T
    (RFC 7741 §4.2) + a few payload bytes (a key frame's start: RFC 6386 §9.1 header)."""
    header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 96, seq & 0xFFFF,
                         ts & 0xFFFFFFFF, SSRC)
    descriptor = bytes([
        0x90 if start else 0x80, 0xE0, 0x80 | (pid >> 8) & 0x7F, pid & 0xFF, tl0 & 0xFF,
        (tid << 6) | (0x20 if sync else 0),
    ])
    if start and key:
        body = b"\x50\x02\x00\x9d\x01\x2a" + struct.pack("<HH", 320, 180) + bytes(20)
    else:
        body = b"\x51" + struct.pack("!H", seq & 0xFFFF) + bytes(28)  # P=1: inter frame
    return header + descriptor + body


def l1t3(frames: int, *, seq: int = 1000, pid: int = 100, tl0: int = 10,
         packets_per_frame: int = 2, first_key: bool = True) -> list[Frame]:
    """``frames`` frames in Chromium's pattern; Y set on the T1 and T2 frames that follow
    every second T0 frame (as in the capture), the first frame a key frame."""
    out: list[Frame] = []
    ts = 5000
    tl0 -= 1
    for index in range(frames):
        tid = PATTERN[index % 4]
        if tid == 0:
            tl0 += 1
        sync = tid > 0 and (index // 4) % 2 == 0 and index % 4 in (1, 2)
        key = first_key and index == 0
        count = 1 + (index % packets_per_frame)
        packets = tuple(
            vp8_packet(seq + k, ts, (pid + index) & 0x7FFF, tl0, tid, sync,
                       start=k == 0, marker=k == count - 1, key=key)
            for k in range(count)
        )
        seq += count
        ts += 3000
        out.append(Frame((pid + index) & 0x7FFF, tl0 & 0xFF, tid, sync, key, packets))
    return out


def packets_of(frames: list[Frame]) -> list[bytes]:
    return [p for f in frames for p in f.packets]


def slot() -> SlotStream:
    s = SlotStream(kind="video", ssrc=0x1234, payload_type=100, clock_rate=90000,
                   receiver_extmap={EXT_MID: 1}, mid="1", cname="c")
    s.attach("a", SSRC, {})
    s.last_out_seq = 0xFFF0  # the outgoing numbers wrap around 0 during the tests
    return s


def feed(s: SlotStream, packets: list[bytes], now: float = 1.0) -> list[RtpPacket]:
    return subscription_feed(s, packets, now)


def tids(out: list[RtpPacket]) -> list[int]:
    return [parse_vp8_descriptor(p.payload).tid or 0 for p in out
            if parse_vp8_descriptor(p.payload).start_of_partition]


def assert_contiguous(out: list[RtpPacket]) -> None:
    """Sequence numbers +1 per packet (mod 2^16); picture IDs +1 per frame (mod 2^15); the
    TL0PICIDX +1 per TID 0 frame."""
    for a, b in itertools.pairwise(out):
        assert (b.sequence_number - a.sequence_number) & 0xFFFF == 1, (a, b)
    starts = [parse_vp8_descriptor(p.payload) for p in out]
    starts = [d for d in starts if d.start_of_partition]
    for a, b in itertools.pairwise(starts):
        assert b.picture_id == ((a.picture_id or 0) + 1) & 0x7FFF
        assert b.tl0picidx == ((a.tl0picidx or 0) + (1 if b.tid == 0 else 0)) & 0xFF


def test_meter_counts_bytes_and_frames_per_tid_cumulatively() -> None:
    meter = TemporalMeter()
    meter.tick(0.0)
    frames = l1t3(60)  # 60 frames of one or two packets, in 2 s
    for frame in frames:
        for data in frame.packets:
            assert meter.add(data[12:], len(data)) == frame.tid
    meter.tick(2.0)
    assert meter.top == 2
    (bps0, fps0), (bps1, fps1), (bps2, fps2) = meter.cumulative()
    assert (fps0, fps1, fps2) == (7.5, 15.0, 30.0)

    def bits(top: int) -> float:
        return sum(len(p) for f in frames if f.tid <= top for p in f.packets) * 8 / 2.0

    assert (bps0, bps1, bps2) == (bits(0), bits(1), bits(2))
    # a TID not seen for a while is no layer any more; a stream without TIDs has one
    for tick in range(1, 12):
        meter.tick(2.0 + tick * 0.25)
    assert meter.top == 0 and len(meter.cumulative()) == 1
    assert meter.add(b"", 0) == 0 and meter.malformed == 1


def test_drop_t2_gives_half_the_frames_contiguous() -> None:
    s = slot()
    s.set_max_tid(1)
    frames = l1t3(40)
    out = feed(s, packets_of(frames))
    assert set(tids(out)) == {0, 1}
    assert len(tids(out)) == 20
    assert len(out) == sum(len(f.packets) for f in frames if f.tid <= 1)
    assert_contiguous(out)
    assert out[0].sequence_number == 0xFFF1  # continues the slot's line, across the wrap
    assert any(p.sequence_number < 0x100 for p in out)


def test_drop_t1_and_t2_gives_a_quarter_of_the_frames() -> None:
    s = slot()
    s.set_max_tid(0)
    out = feed(s, packets_of(l1t3(40)))
    assert tids(out) == [0] * 10
    assert_contiguous(out)


def test_switch_down_at_a_frame_boundary_and_up_at_a_layer_sync_frame() -> None:
    s = slot()
    frames = l1t3(48)
    out = feed(s, packets_of(frames[:5]))  # everything
    assert tids(out) == [0, 2, 1, 2, 0]
    s.set_max_tid(0)  # mid-frame would be fine too: applies at the next frame
    out += feed(s, packets_of(frames[5:20]))
    assert tids(out)[5:] == [0, 0, 0]  # frames 8, 12, 16
    s.set_max_tid(None)  # up: T1 only at a T1 frame with Y, then T2 at a T2 frame with Y
    up = feed(s, packets_of(frames[20:48]))
    out += up
    # frames 20-23 have no Y (second cycle of the pair); 24 T0, 25 T2 with Y (skipped: T1
    # is not there yet), 26 T1 with Y -> T1; 27 T2 without Y; 28 T0, 30 T1; 32 T0, 33 T2
    # with Y -> all from there
    assert tids(up) == [0, 0, 1, 0, 1, 0, 2, 1, 2] + [0, 2, 1, 2] * 3
    assert_contiguous(out)
    assert s.max_tid is None


def test_back_to_all_layers_returns_to_the_plain_path_without_a_jump() -> None:
    s = slot()
    s.set_max_tid(0)
    frames = l1t3(800, packets_per_frame=3)  # ~1600 packets: past SEQ_WINDOW
    out = feed(s, packets_of(frames[:40]))
    s.set_max_tid(None)
    out += feed(s, packets_of(frames[40:]))
    assert s.temporal is None  # nothing dropped within reach any more: offsets folded
    assert_contiguous(out)


def test_reordered_packets_keep_their_places() -> None:
    s = slot()
    s.set_max_tid(1)
    frames = l1t3(12, packets_per_frame=3)
    packets = packets_of(frames)
    # frames (packets): 0 T0 (0), 1 T2 (1 2), 2 T1 (3 4 5), 3 T2 (6), 4 T0 (7 8),
    # 5 T2 (9 10 11), 6 T1 (12) ...: 4 before 3 (a forwarded frame's head after a dropped
    # frame); 8 after the dropped frame 5 (a forwarded frame's tail); 11 before 10 (inside a
    # dropped frame)
    order = [0, 1, 2, 4, 3, 5, 6, 7, 9, 11, 10, 8, *range(12, len(packets))]
    out = feed(s, [packets[i] for i in order])
    wanted = [p for f in frames if f.tid <= 1 for p in f.packets]
    by_input = {RtpPacket.parse(p).sequence_number: p for p in wanted}
    assert len(out) == len(wanted)
    # sorted by output number, the packets are exactly the wanted ones, in input order
    first = out[0].sequence_number
    out.sort(key=lambda p: (p.sequence_number - first) & 0xFFFF)
    seqs = [p.sequence_number for p in out]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    # (the descriptor's picture ID is renumbered; the rest carries the input number)
    assert [p.payload[6:] for p in out] == [RtpPacket.parse(by_input[k]).payload[6:]
                                            for k in sorted(by_input)]
    assert_contiguous(out)
    assert s.temporal is not None and s.temporal.gaps == 0


def test_a_lost_packet_of_a_dropped_frame_leaves_no_gap() -> None:
    s = slot()
    s.set_max_tid(1)
    frames = l1t3(8, packets_per_frame=3)
    packets = packets_of(frames)
    t2 = next(f for f in frames[1:] if f.tid == 2 and len(f.packets) == 3)
    lost = t2.packets[1]  # its middle packet never arrives
    out = feed(s, [p for p in packets if p != lost])
    assert_contiguous(out)


def test_wrap_around_of_input_numbers_and_picture_ids() -> None:
    s = slot()
    s.set_max_tid(0)
    frames = l1t3(40, seq=0xFFE0, pid=0x7FF0)
    out = feed(s, packets_of(frames))
    assert tids(out) == [0] * 10
    assert_contiguous(out)


def test_an_ambiguous_late_packet_of_a_dropped_frame_is_counted_as_a_gap() -> None:
    """Frame 1 (T2, dropped) ends with packet 2; packet 4 of frame 2 (T1) arrives before
    2 and 3: the bridge cannot tell whose packets are missing and leaves room for them, so
    once 2 turns out to be T2 the receiver sees one missing number (Jitsi's scenario D)."""
    s = slot()
    s.set_max_tid(1)
    packets = packets_of(l1t3(12, packets_per_frame=3))
    out = feed(s, [packets[i] for i in [0, 1, 4, 3, 2, 5, *range(6, len(packets))]])
    assert s.temporal is not None and s.temporal.gaps == 1
    seqs = sorted((p.sequence_number - out[0].sequence_number) & 0xFFFF for p in out)
    assert len(set(seqs)) == len(seqs)  # no number used twice
    assert seqs == [0, *range(2, len(seqs) + 1)]  # one hole, where packet 2 would be


def test_meter_reads_the_tid_as_the_descriptor_parser_does() -> None:
    from tests.unit.golden import VIDEO, load

    meter = TemporalMeter()
    for record in load(VIDEO):
        if record.data[1] & 0x7F != 96:
            continue
        payload = record.data[payload_offset(record.data):]
        assert meter.add(payload, len(record.data)) == (parse_vp8_descriptor(payload).tid or 0)
    # every truncation of a descriptor is counted as malformed or read, never raised
    packet = vp8_packet(1, 1, 300, 7, 2, True, start=True, marker=True, key=False)[12:]
    for cut in range(6):
        before = meter.malformed
        meter.add(packet[:cut], cut)
        assert meter.malformed == before + 1
    assert meter.add(packet[:6], 6) == 2
