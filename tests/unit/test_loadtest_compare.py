"""Pure parts of the side-by-side benchmark (bench/janus_side_by_side.py): latency stamps,
the single-encoding offer against the bridge's negotiation, Janus's configuration and SDP,
and the per-run summary with its ratios."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tertulia.bridge.rtp.packet import RtpPacket
from tertulia.bridge.transport.srtp import SrtpPair
from tertulia.loadtest.compare import summarize
from tertulia.loadtest.janus import (
    build_publisher_offer,
    build_subscriber_answer,
    janus_config,
    plugin_links,
    remote_of,
)
from tertulia.loadtest.latency import (
    MARKER,
    STAMP_SIZE,
    Cost,
    percentile,
    ratio,
    read_stamp,
    stamp_payload,
)
from tertulia.loadtest.media import vp8_descriptor
from tertulia.loadtest.sdp import OfferParams, build_offer
from tertulia.protocol.sdp import negotiate, parse_offer

DATA = Path(__file__).parent.parent / "data"
FINGERPRINT = "AB:" * 31 + "CD"


def _rtp(payload: bytes, ssrc: int = 7, seq: int = 1) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq, 1234, ssrc) + payload


# -- stamps -------------------------------------------------------------------------------------


def test_stamp_replaces_only_the_payload_tail_and_reads_back() -> None:
    payload = vp8_descriptor(True, 300, 44) + bytes(range(200))
    packet = _rtp(payload)
    stamped = stamp_payload(packet, 5, 123_456_789_012)
    assert len(stamped) == len(packet)
    # header and VP8 descriptor (what a forwarding server rewrites) are untouched
    assert stamped[: len(packet) - STAMP_SIZE] == packet[: len(packet) - STAMP_SIZE]
    assert read_stamp(stamped) == (5, 123_456_789_012)


def test_a_server_rewriting_header_and_descriptor_keeps_the_stamp() -> None:
    stamped = stamp_payload(_rtp(vp8_descriptor(True, 1, 1) + bytes(100)), 3, 99)
    rewritten = struct.pack("!BBHII", 0x80, 100, 777, 5555, 42) + vp8_descriptor(True, 9, 9) + \
        stamped[12 + 5:]
    assert read_stamp(rewritten) == (3, 99)


def test_stamp_survives_srtp() -> None:
    key = bytes(range(30))
    a, b = SrtpPair(key, key), SrtpPair(key, key)
    stamped = stamp_payload(_rtp(bytes(80)), 2, 10**12)
    assert read_stamp(b.unprotect_rtp(a.protect_rtp(stamped))) == (2, 10**12)


def test_short_and_unstamped_packets_have_no_stamp() -> None:
    short = _rtp(b"\x01\x02")
    assert stamp_payload(short, 1, 2) == short
    assert read_stamp(short) is None
    assert read_stamp(_rtp(bytes(100))) is None
    assert read_stamp(_rtp(bytes(50) + MARKER + bytes(10))) is not None  # marker decides


def test_percentile_cost_and_ratio() -> None:
    assert percentile([], 50) is None
    assert percentile([5, 1, 3, 2, 4], 50) == 3.0
    assert percentile(list(range(1, 101)), 99) == 99.0
    assert Cost(0.5, 10_000).us_per_packet == pytest.approx(50.0)
    assert Cost(0.5, 0).us_per_packet is None
    assert ratio(30.0, 20.0) == pytest.approx(1.5)
    assert ratio(None, 20.0) is None and ratio(30.0, None) is None and ratio(1.0, 0.0) is None


# -- our offer with a single camera encoding --------------------------------------------------


def test_single_encoding_offer_declares_its_ssrc_and_no_simulcast() -> None:
    params = OfferParams("abcd", "p" * 24, FINGERPRINT, 4242, "cname", slots=4,
                         candidate=("127.0.0.1", 5000), video_ssrc=5353)
    text = build_offer(params)
    assert "a=simulcast" not in text and "a=rid:" not in text
    n = negotiate(parse_offer(text), max_slots=9)
    assert n.video is not None and n.audio is not None and not n.rejected
    assert n.video.ssrcs == (5353,) and n.video.rids == ()
    assert len(n.slots) == 4


def test_default_offer_is_still_simulcast() -> None:
    params = OfferParams("abcd", "p" * 24, FINGERPRINT, 4242, "cname", slots=1)
    n = negotiate(parse_offer(build_offer(params)), max_slots=9)
    assert n.video is not None and n.video.rids == ("l", "m", "h") and n.video.ssrcs == ()


# -- Janus -------------------------------------------------------------------------------------


def test_janus_config_is_loopback_ice_lite_videoroom_only(tmp_path: Path) -> None:
    files = janus_config(tmp_path, 18188, (30000, 30100))
    assert set(files) == {"janus.jcfg", "janus.plugin.videoroom.jcfg",
                          "janus.transport.websockets.jcfg"}
    assert "ice_lite = true" in files["janus.jcfg"]
    assert 'rtp_port_range = "30000-30100"' in files["janus.jcfg"]
    assert f'plugins_folder = "{tmp_path / "plugins"}"' in files["janus.jcfg"]
    ws = files["janus.transport.websockets.jcfg"]
    assert "ws_port = 18188" in ws and 'ws_ip = "127.0.0.1"' in ws
    assert 'videocodec = "vp8"' in files["janus.plugin.videoroom.jcfg"]
    links = plugin_links(tmp_path)
    assert sorted(p.name for p in links) == ["libjanus_videoroom.so", "libjanus_websockets.so"]


def test_publisher_offer_is_sendonly_opus_and_one_vp8_encoding() -> None:
    text = build_publisher_offer("ufrag", "p" * 24, FINGERPRINT, ("127.0.0.2", 4000), 11, 22,
                                 "cn")
    offer = parse_offer(text)
    assert offer.setup == "active" and offer.bundle == ("0", "1")
    kinds = [(m.kind, m.direction, m.ssrcs, m.codecs[0].name) for m in offer.media]
    assert kinds == [("audio", "sendonly", (11,), "opus"), ("video", "sendonly", (22,), "VP8")]
    assert all(m.rids == () for m in offer.media)


def test_subscriber_answer_accepts_each_stream_of_janus_offer() -> None:
    offer = (DATA / "janus-1.1.2-subscriber-offer.sdp").read_text()
    remote = remote_of(offer)
    assert remote.candidate[0] == "127.0.0.2" and len(remote.fingerprint) == 95
    answer = build_subscriber_answer(offer, "ufrag", "p" * 24, FINGERPRINT, ("127.0.0.2", 4000))
    offered = [line for line in offer.splitlines() if line.startswith("m=")]
    answered = [line for line in answer.splitlines() if line.startswith("m=")]
    assert len(answered) == len(offered)
    for o, a in zip(offered, answered, strict=True):
        assert o.split()[0] == a.split()[0]  # same kind, same order (RFC 3264 §6)
        assert a.split()[3] == o.split()[3]  # the offer's first payload type
    parsed = parse_offer(answer)  # our parser reads it as the offer-shaped SDP it is
    assert {m.direction for m in parsed.media if m.port} == {"recvonly"}
    assert parsed.setup == "active" and parsed.fingerprint == FINGERPRINT
    assert set(parsed.bundle) == {m.mid for m in parsed.media if m.port}


def test_subscriber_answer_rejects_what_it_cannot_receive() -> None:
    offer = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
             "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=rtpmap:111 opus/48000/2\r\n"
             "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:d\r\n")
    answer = build_subscriber_answer(offer, "u", "p" * 24, FINGERPRINT, ("127.0.0.1", 1))
    assert "m=application 0 UDP/DTLS/SCTP webrtc-datachannel" in answer
    assert "a=group:BUNDLE a\r\n" in answer and "a=rtpmap:111 opus/48000/2" in answer
    with pytest.raises(ValueError):
        build_subscriber_answer("v=0\r\n", "u", "p", FINGERPRINT, ("127.0.0.1", 1))


# -- summary --------------------------------------------------------------------------------------


def test_summary_divides_window_cpu_by_packets_received() -> None:
    workers = [
        {"joined": 2, "errors": [], "packets": 6000, "bytes": 1, "expected": 6100, "lost": 100,
         "sent": 3000, "latency_us": [1000, 2000, 3000], "plis": 1, "nacks": 0,
         "srtp_errors": 0},
        {"joined": 1, "errors": ["PeerFailed: x"], "packets": 4000, "bytes": 1,
         "expected": 3900, "lost": 0, "sent": 1000, "latency_us": [4000], "plis": 0,
         "nacks": 0, "srtp_errors": 0},
        {"fatal": "OSError: boom"},
    ]
    row = summarize("janus", 3, 10.0, workers, 0.5, 0.2, (1.0, 2.0))
    assert row["us_per_packet"] == pytest.approx(50.0)  # 0.5 s of CPU / 10,000 packets
    assert row["server_cpu"] == pytest.approx(0.05)
    assert row["packets_forwarded_per_s"] == 1000 and row["packets_sent_per_s"] == 400
    assert row["latency_p50_ms"] == pytest.approx(2.0)
    assert row["latency_p99_ms"] == pytest.approx(4.0)
    assert row["receive_loss"] == pytest.approx(0.01)
    assert row["joined"] == 3 and row["errors"] == ["OSError: boom", "PeerFailed: x"]
    assert summarize("tertulia", 2, 10.0, [], None, 0.0, (0, 0))["us_per_packet"] is None


def test_rtp_stamp_is_inside_what_the_bridge_parses_as_payload() -> None:
    packet = stamp_payload(_rtp(bytes(64)), 1, 2)
    assert read_stamp(b"\x00" * 12 + RtpPacket.parse(packet).payload) == (1, 2)


def test_side_by_side_ratio_uses_medians_of_the_runs() -> None:
    from bench.janus_side_by_side import compare

    ours = [{"senders": 5, "us_per_packet": u, "latency_p50_ms": 2.0, "latency_p99_ms": p}
            for u, p in ((40.0, 10.0), (30.0, None), (50.0, 30.0))]
    janus = [{"senders": 5, "us_per_packet": u, "latency_p50_ms": 1.0, "latency_p99_ms": 5.0}
             for u in (20.0, 25.0, 30.0)]
    row = compare(ours, janus)
    assert row["runs"] == 3
    assert row["cpu_per_packet_tertulia"] == 40.0 and row["cpu_per_packet_janus"] == 25.0
    assert row["cpu_per_packet_ratio"] == pytest.approx(1.6)
    assert row["latency_p50_ratio"] == pytest.approx(2.0)
    assert row["latency_p99_ratio"] == pytest.approx(4.0)  # median of 10 and 30, runs without
    assert compare([{"senders": 2}], [{"senders": 2}])["cpu_per_packet_ratio"] is None
