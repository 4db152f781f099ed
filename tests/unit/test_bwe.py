"""Bandwidth estimation pieces (bridge/bwe.py) and the send-time stamp, with virtual time."""

from __future__ import annotations

from tertulia.bridge.bwe import RateMeter, ReceiverEstimate, TwccRecorder, probe_rate
from tertulia.bridge.rtp.packet import (
    abs_send_time,
    build_extension_block,
    parse_extensions,
    set_extension_value,
)
from tertulia.bridge.rtp.rtcp import TransportCC, parse_rtcp, serialize_rtcp


def test_estimate_follows_remb_and_expires() -> None:
    est = ReceiverEstimate()
    assert est.value(0.0) is None  # no estimate: nothing is held back
    est.on_remb(800_000, 1.0)
    assert est.value(1.5) == 800_000
    est.on_remb(300_000, 2.0)
    assert est.value(2.0) == 300_000
    assert est.value(2.0 + 6.0) is None  # stale after 5 s without REMB


def test_high_loss_caps_the_estimate_and_low_loss_lifts_the_cap() -> None:
    est = ReceiverEstimate()
    est.on_remb(1_000_000, 0.0)
    est.on_loss(0.20, 0.1)  # draft-ietf-rmcat-gcc-02 §6: A * (1 - 0.5 p)
    assert est.value(0.1) == 900_000
    est.on_loss(0.05, 0.2)  # between 2% and 10%: hold
    assert est.value(0.2) == 900_000
    for step in range(1, 30):  # clean reports every second: +8%/s until the REMB again
        est.on_remb(1_000_000, 0.2 + step)
        est.on_loss(0.0, 0.2 + step)
    assert est.loss_cap is None and est.value(30.0) == 1_000_000


def test_probing_fills_the_gap_up_to_the_estimate_only_while_layers_are_held_back() -> None:
    assert probe_rate(None, 100_000, 1_000_000) == 0  # no estimate yet
    assert probe_rate(500_000, 600_000, 600_000) == 0  # nothing held back
    assert probe_rate(500_000, 150_000, 1_000_000) == 500_000 * 0.9 - 150_000
    assert probe_rate(2_000_000, 150_000, 600_000) == 600_000 - 150_000  # only up to wanted
    # during a probe: past the estimate, still never beyond what is wanted
    assert probe_rate(500_000, 150_000, 1_000_000, probing=True) == 500_000 * 1.3 - 150_000
    assert probe_rate(500_000, 150_000, 600_000, probing=True) == 600_000 - 150_000


def test_rate_meter_smooths_bits_per_second() -> None:
    meter = RateMeter()
    meter.tick(0.0)
    meter.add(12_500)  # 100 kbit in 1 s
    assert meter.tick(1.0) == 100_000
    meter.add(25_000)
    assert meter.tick(2.0) == 150_000  # halfway to the new 200 kbit/s


def _decode(packet: TransportCC) -> dict[int, float | None]:
    """Arrival times (µs) back from one feedback packet, None for lost ones."""
    parsed = parse_rtcp(serialize_rtcp([packet]))[0]
    assert isinstance(parsed, TransportCC)
    at = parsed.reference_time * 64_000
    out: dict[int, float | None] = {}
    for seq, received, delta in parsed.packets:
        if received and delta is not None:
            at += delta
            out[seq] = at
        else:
            out[seq] = None
    return out


def test_transport_feedback_reports_arrivals_losses_and_wraps() -> None:
    rec = TwccRecorder()
    t = 100.0
    arrivals = {}
    for k, seq in enumerate([65533, 65534, 0, 1, 3, 4]):  # 65535 and 2 lost; wraps
        at = t + k * 0.0071
        rec.on_packet(seq, at)
        arrivals[seq] = at
    [fb] = rec.feedback(sender_ssrc=1, media_ssrc=2, now=t + 0.05)
    assert fb.base_seq == 65533 and fb.packet_status_count == 8
    decoded = _decode(fb)
    assert decoded[65535] is None and decoded[2] is None
    for seq, at in arrivals.items():
        got = decoded[seq]
        assert got is not None and abs(got - at * 1_000_000) <= 250 * 2
    # Next feedback covers only what came after; late arrivals of reported seqs are ignored.
    rec.on_packet(2, t + 0.06)
    rec.on_packet(5, t + 0.07)
    [fb2] = rec.feedback(1, 2, t + 0.1)
    assert (fb2.base_seq, fb2.packet_status_count, fb2.fb_pkt_count) == (5, 1, 1)
    assert rec.feedback(1, 2, t + 0.15) == []  # nothing new
    # both counted: two reported as not received, one of them arrived after that
    assert (rec.reported_lost, rec.late, rec.received) == (2, 1, 7)


def test_transport_feedback_splits_long_runs_and_large_gaps() -> None:
    rec = TwccRecorder()
    for seq in range(1000):
        rec.on_packet(seq, 10.0 + seq * 0.001)
    rec.on_packet(1000, 10.0 + 1.0 + 9.0)  # 9 s later: beyond a 16-bit delta
    packets = rec.feedback(1, 2, 20.0)
    assert sum(p.packet_status_count for p in packets) == 1001
    assert all(p.packet_status_count <= 400 for p in packets)


def test_abs_send_time_is_stamped_in_place() -> None:
    header = bytes([0x90, 96, 0, 1]) + bytes(8)
    block = build_extension_block([(4, b"1"), (3, bytes(3))])
    packet = bytearray(header + block + b"payload")
    assert set_extension_value(packet, 3, abs_send_time(1.5))
    assert parse_extensions(bytes(packet)) == [(4, b"1"), (3, (3 << 17).to_bytes(3, "big"))]
    assert packet.endswith(b"payload")
    assert not set_extension_value(packet, 7, b"abc")  # absent: untouched
    assert not set_extension_value(packet, 4, b"too long")  # other size: untouched
    assert abs_send_time(64.0) == bytes(3)  # 6.18 fixed point wraps every 64 s


def test_round_trip_time_from_reception_reports() -> None:
    from tertulia.bridge.bwe import RttMeter

    meter = RttMeter()
    ntp = (3_900_000_000 << 32) | 0x8000_0000  # .5 s
    lsr = (ntp >> 16) & 0xFFFFFFFF
    meter.on_sender_report(ntp, 10.0)
    assert meter.on_block(0, 0, 10.5) is None  # LSR 0: no SR received yet
    assert meter.on_block(lsr + 1, 0, 10.5) is None  # an SR we never sent
    # the receiver held the SR 0.25 s (DLSR in 1/65536 s) and its report arrived at 10.33 s
    sample = meter.on_block(lsr, 16384, 10.33)
    assert sample is not None and abs(sample - 0.08) < 1e-9
    assert meter.rtt == sample
    meter.on_block(lsr, 16384, 10.41)  # a later, slower sample moves SRTT by 1/8
    assert meter.rtt is not None and abs(meter.rtt - (0.08 + (0.16 - 0.08) / 8)) < 1e-9
    for k in range(40):  # memory stays bounded
        meter.on_sender_report(ntp + (k << 20), 11.0 + k)
    assert len(meter.sent) <= 32
