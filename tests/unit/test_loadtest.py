"""Pure parts of the load generator: media packetisation and cache format, RTP it sends,
loss/jitter accounting, schedules, its offer against the bridge's negotiation, DTLS client
against the bridge's DTLS server, and report aggregation."""

from __future__ import annotations

import struct
import time

import pytest

from tertulia.bridge.rtp.packet import RtpPacket, audio_level
from tertulia.bridge.rtp.vp8 import is_keyframe_start, keyframe_size, parse_vp8_descriptor
from tertulia.bridge.transport.dtls import DtlsCertificate, DtlsServer, DtlsState
from tertulia.loadtest.accounting import StreamStats, Totals, totals
from tertulia.loadtest.dtls import DtlsClient, DtlsError
from tertulia.loadtest.media import (
    LAYERS,
    AudioFrame,
    MediaCache,
    VideoFrame,
    audio_level_dbov,
    deserialize,
    serialize,
    split_frame,
    vp8_descriptor,
)
from tertulia.loadtest.report import (
    media_waits,
    pairs_with_media,
    percentile,
    series,
    summarize,
)
from tertulia.loadtest.schedule import check_pattern, plan, speaking
from tertulia.loadtest.sdp import (
    AUDIO_LEVEL_ID,
    MID_ID,
    RID_ID,
    OfferParams,
    build_offer,
    parse_answer,
)
from tertulia.loadtest.sender import MediaSender, SentHistory, active_layers
from tertulia.protocol.answer import build_answer
from tertulia.protocol.sdp import LocalTransport, SlotSource, negotiate, parse_offer

# -- media -------------------------------------------------------------------------------


def _keyframe(width: int, height: int, size: int) -> bytes:
    """A VP8 key frame header (RFC 6386 §9.1: frame tag with P=0, start code, sizes)."""
    head = bytes((0x10, 0x02, 0x00)) + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return head + bytes(size - len(head))


def _cache() -> MediaCache:
    layers = tuple(
        (VideoFrame(True, split_frame(_keyframe(layer.width, layer.height, 3000))),
         VideoFrame(False, (b"\x01" * 500,)),
         VideoFrame(False, (b"\x01" * 700,)))
        for layer in LAYERS
    )
    speech = (AudioFrame(20, b"\xfc" * 60), AudioFrame(127, b"\xf8\xff\xfe"))
    return MediaCache(speech, (AudioFrame(127, b"\xf8\xff\xfe"),), layers)


def test_split_frame_cuts_nearly_equal_pieces_under_the_limit() -> None:
    pieces = split_frame(bytes(range(256)) * 10, max_payload=1000)  # 2560 bytes
    assert [len(p) for p in pieces] == [854, 854, 852]
    assert b"".join(pieces) == bytes(range(256)) * 10
    assert split_frame(b"x") == (b"x",)
    with pytest.raises(ValueError):
        split_frame(b"")


def test_vp8_descriptor_reads_back_with_the_bridges_parser() -> None:
    desc = parse_vp8_descriptor(vp8_descriptor(True, 0x1234 + 0x8000, 77) + b"\x00")
    assert desc.start_of_partition and desc.partition_id == 0
    assert desc.picture_id == 0x1234 and desc.picture_id_15bit
    assert desc.tl0picidx == 77 and desc.size == 5
    assert not parse_vp8_descriptor(vp8_descriptor(False, 1, 1) + b"\x00").start_of_partition


def test_audio_level_is_minus_dbov() -> None:
    assert audio_level_dbov([0.0] * 10) == 127
    assert audio_level_dbov([]) == 127
    assert audio_level_dbov([32768.0, -32768.0]) == 0  # full scale
    assert audio_level_dbov([3276.8, -3276.8]) == 20  # -20 dBov
    assert audio_level_dbov([1.0]) == 90


def test_cache_file_round_trips_and_rejects_damage() -> None:
    cache = _cache()
    data = serialize(cache)
    assert deserialize(data) == cache
    with pytest.raises(ValueError):
        deserialize(b"nonsense")
    with pytest.raises(ValueError):
        deserialize(data[:-3])  # truncated record
    with pytest.raises(ValueError):
        deserialize(data[:7])  # magic only: incomplete


# -- what a sender puts on the wire ------------------------------------------------------


def test_audio_packets_carry_level_and_mid_and_advance() -> None:
    sender = MediaSender(_cache(), 1111, (1, 2, 3))
    first = RtpPacket.parse(sender.audio_packet(talking=True))
    second = RtpPacket.parse(sender.audio_packet(talking=True))
    silent = RtpPacket.parse(sender.audio_packet(talking=False))
    assert first.ssrc == 1111 and first.payload_type == 111
    assert second.sequence_number == (first.sequence_number + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 960) & 0xFFFFFFFF
    assert audio_level(first.get_extension(AUDIO_LEVEL_ID) or b"") == (True, 20)
    assert audio_level(second.get_extension(AUDIO_LEVEL_ID) or b"") == (False, 127)
    assert audio_level(silent.get_extension(AUDIO_LEVEL_ID) or b"") == (False, 127)
    assert first.get_extension(MID_ID) == b"0"
    assert first.payload == b"\xfc" * 60


def test_video_frames_have_rid_marker_picture_ids_and_restart_on_pli() -> None:
    sender = MediaSender(_cache(), 1, (10, 20, 30))
    key = [RtpPacket.parse(p) for _, p in sender.video_frame(2)]
    assert len(key) == 3 and [p.marker for p in key] == [False, False, True]
    assert all(p.ssrc == 30 and p.get_extension(RID_ID) == b"h" for p in key)
    assert all(p.get_extension(MID_ID) == b"1" for p in key)
    assert keyframe_size(key[0].payload) == (1280, 720)
    assert [p.sequence_number for p in key] == [
        (key[0].sequence_number + i) & 0xFFFF for i in range(3)]
    delta = [RtpPacket.parse(p) for _, p in sender.video_frame(2)]
    assert not is_keyframe_start(delta[0].payload)
    assert delta[0].timestamp == (key[0].timestamp + 3000) & 0xFFFFFFFF
    pid = [parse_vp8_descriptor(p.payload).picture_id for p in (key[0], delta[0])]
    assert pid[1] == (pid[0] + 1) & 0x7FFF  # type: ignore[operator]
    assert sender.request_keyframe(30, now=10.0)
    assert not sender.request_keyframe(30, now=10.1)  # within 200 ms: the same request
    assert not sender.request_keyframe(999, now=11.0)  # not one of ours
    again = RtpPacket.parse(sender.video_frame(2)[0][1])
    assert keyframe_size(again.payload) == (1280, 720)
    assert again.sequence_number == (delta[-1].sequence_number + 1) & 0xFFFF


def test_video_loop_wraps_to_its_key_frame() -> None:
    sender = MediaSender(_cache(), 1, (10, 20, 30))
    frames = [sender.video_frame(0) for _ in range(4)]
    assert keyframe_size(RtpPacket.parse(frames[3][0][1]).payload) == (320, 180)


def test_layer_suspension_matches_the_web_client() -> None:
    assert active_layers(-1) == (True, True, True)
    assert active_layers(0) == (False, False, False)
    assert active_layers(360) == (True, True, False)
    assert active_layers(100) == (True, False, False)  # the lowest stays on


def test_sent_history_answers_only_what_it_holds() -> None:
    history = SentHistory(size=4)
    history.add(5, 100, b"a")
    history.add(5, 101, b"b")
    assert history.get(5, 100) == b"a" and history.get(6, 100) is None
    history.add(5, 104, b"c")  # same ring position as 100
    assert history.get(5, 100) is None and history.get(5, 104) == b"c"


# -- accounting ----------------------------------------------------------------------------


def test_loss_counts_gaps_across_the_wrap_and_ignores_reordering() -> None:
    s = StreamStats(90000)
    for i, seq in enumerate([65533, 65534, 0, 65535, 3]):  # 1 and 2 lost, 65535 late
        s.add(seq, 0, 100, float(i))
    assert s.expected == 7 and s.packets == 5 and s.lost == 2 and s.bytes == 500
    assert s.gaps == [(65534, 0, 2.0), (0, 3, 4.0)]  # where the sequence jumped forward
    s.add(3, 0, 100, 9.0)  # duplicate: more received than expected is not negative loss
    s.add(0, 0, 100, 9.0)
    s.add(0, 0, 100, 9.0)
    assert s.lost == 0


def test_jitter_follows_rfc3550_a8() -> None:
    s = StreamStats(1000)  # 1 tick per ms
    s.add(0, 0, 1, 0.000)
    s.add(1, 20, 1, 0.020)  # on time: D = 0
    assert s.jitter == 0
    s.add(2, 40, 1, 0.056)  # 16 ms late: J += (16 - 0) / 16
    assert s.jitter == pytest.approx(1.0)
    s.add(3, 60, 1, 0.060)  # D = 16 again: J += (16 - 1) / 16
    assert s.jitter == pytest.approx(1.0 + 15 / 16)
    assert s.jitter_ms == pytest.approx(1.0 + 15 / 16)


def test_totals_and_intervals() -> None:
    a, b = StreamStats(48000), StreamStats(48000)
    for seq in (1, 2, 4):
        a.add(seq, 0, 10, 0.0)
    b.add(7, 0, 5, 0.0)
    t = totals([a, b])
    assert t == Totals(packets=4, bytes=35, expected=5, lost=1)
    assert t.minus(Totals(2, 20, 2, 0)) == Totals(2, 15, 3, 1)
    assert t.loss_fraction == pytest.approx(0.2)
    assert Totals().loss_fraction == 0.0


# -- schedules -------------------------------------------------------------------------------


def test_plan_spreads_rooms_senders_ramp_and_workers() -> None:
    p = plan(7, 2, ramp=2.0, senders=0.5, workers=3)
    assert [x.room for x in p] == ["load-0", "load-1"] * 3 + ["load-0"]
    assert [x.join_at for x in p] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert [x.worker for x in p] == [0, 1, 2, 0, 1, 2, 0]
    # room 0 has 4 members (2 send), room 1 has 3 (ceil(1.5) = 2 send)
    assert [x.sender for x in p if x.room == "load-0"] == [True, True, False, False]
    assert [x.sender for x in p if x.room == "load-1"] == [True, True, False]
    assert all(x.join_at == 0 for x in plan(3, 1, ramp=0, senders=1))
    for bad in ({"participants": 0, "rooms": 1}, {"participants": 2, "rooms": 3}):
        with pytest.raises(ValueError):
            plan(bad["participants"], bad["rooms"], ramp=1, senders=1)
    with pytest.raises(ValueError):
        plan(2, 1, ramp=1, senders=1.5)


def test_speaking_patterns() -> None:
    assert [speaking("rotate:5", pos, 3, 7.0) for pos in range(3)] == [False, True, False]
    assert [speaking("rotate:5", pos, 3, 16.0) for pos in range(3)] == [True, False, False]
    assert speaking("all", 4, 5, 1.0) and not speaking("none", 0, 5, 1.0)
    assert check_pattern("rotate:2.5") == "rotate:2.5"
    for bad in ("sometimes", "rotate:0", "rotate:x"):
        with pytest.raises(ValueError):
            check_pattern(bad)


# -- SDP against the bridge's own negotiation ---------------------------------------------------


def test_offer_negotiates_like_the_web_client_and_the_answer_maps_slots() -> None:
    params = OfferParams("abcd", "p" * 24, "AB:" * 31 + "CD", 4242, "cname", slots=3,
                         candidate=("127.0.0.1", 5000))
    offer = parse_offer(build_offer(params))
    n = negotiate(offer, max_slots=9)
    assert n.audio is not None and n.video is not None and not n.rejected
    assert n.video.rids == ("l", "m", "h") and n.video.ssrcs == ()
    assert n.audio.ssrcs == (4242,)
    assert len(n.slots) == 3
    sources = {}
    for i, (a, v) in enumerate(n.slots):
        sources[a.mid] = SlotSource(100 + i, "c", f"slot-{i}", "a")
        sources[v.mid] = SlotSource(200 + i, "c", f"slot-{i}", "v")
    local = LocalTransport("brdg", "q" * 24, "EF:" * 31 + "01", "127.0.0.1", 10000)
    answer = parse_answer(build_answer(offer, n, local, sources, session_id=1))
    assert answer.slots == ((100, 200), (101, 201), (102, 202))
    assert answer.ice_lite and answer.candidate == ("127.0.0.1", 10000)
    assert (answer.ice_ufrag, answer.fingerprint) == ("brdg", "EF:" * 31 + "01")


def test_answer_without_candidate_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_answer("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:x\r\n")


# -- DTLS client against the bridge's server ---------------------------------------------------


def _handshake(client: DtlsClient, server: DtlsServer) -> None:
    flight = client.start()
    for _ in range(10):  # bounded: DTLS 1.2 needs two round trips
        replies = [out for d in flight for out in server.feed(d)]
        if not replies:
            break
        flight = [out for d in replies for out in client.feed(d)]
        if not flight:
            break


def test_dtls_client_agrees_keys_with_the_bridge() -> None:
    client_cert, server_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    client = DtlsClient(client_cert, server_cert.fingerprint)
    server = DtlsServer(server_cert, client_cert.fingerprint)
    _handshake(client, server)
    assert server.state == DtlsState.CONNECTED and client.keys is not None
    assert server.keys is not None
    assert client.keys.tx == server.keys.rx and client.keys.rx == server.keys.tx


def test_dtls_client_refuses_a_bridge_with_another_certificate() -> None:
    client_cert, server_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    client = DtlsClient(client_cert, DtlsCertificate.generate().fingerprint)
    server = DtlsServer(server_cert, client_cert.fingerprint)
    with pytest.raises(DtlsError):
        _handshake(client, server)


def test_dtls_client_retransmits_its_flight_when_the_timer_expires() -> None:
    client = DtlsClient(DtlsCertificate.generate(), DtlsCertificate.generate().fingerprint)
    hello = client.start()
    assert hello and hello[0][0] == 22  # a handshake record (RFC 6347 §4.1)
    timeout = client.timeout()
    assert timeout is not None and 0 < timeout <= 1.0  # RFC 6347 §4.2.4.1: initial 1 s
    time.sleep(timeout + 0.05)
    assert client.timeout() == 0  # due: the caller must act on a zero, not skip it
    again = client.handle_timeout()
    assert again and again[0][0] == 22


# -- report -------------------------------------------------------------------------------------


def _sample(t: float, joined: int, lost: int, expected: int, bitrate: float) -> dict[str, object]:
    return {"t": t, "joined": joined, "failed": 0, "joining": 0, "packets": expected - lost,
            "bytes": 0, "expected": expected, "lost": lost, "bitrate_sum": bitrate * joined,
            "bitrate_min": bitrate, "bitrate_n": joined, "jitter_sum": 2.0 * joined,
            "jitter_max": 3.0, "jitter_n": joined, "first_media": [0.1], "sent_packets": 5}


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(x) for x in range(1, 101)], 99) == 99.0
    assert percentile([5.0], 99) == 5.0


def test_series_merges_workers_per_second() -> None:
    rows = series([_sample(1.02, 2, 1, 100, 1000.0), _sample(0.98, 3, 0, 100, 2000.0),
                   _sample(2.0, 1, 0, 0, 500.0)])
    assert [r["t"] for r in rows] == [1, 2]
    assert rows[0]["joined"] == 5 and rows[0]["loss"] == pytest.approx(0.005)
    assert rows[0]["bitrate_mean"] == pytest.approx((2000 + 6000) / 5)
    assert rows[0]["bitrate_min"] == 1000.0 and rows[0]["first_media"] == [0.1, 0.1]
    assert rows[1]["loss"] == 0.0
    # numbered samples are merged by number, whatever their exact times
    a, b = _sample(10.49, 1, 0, 10, 1.0), _sample(9.51, 2, 0, 10, 1.0)
    a["n"] = b["n"] = 10
    assert [(r["t"], r["joined"]) for r in series([a, b])] == [(10, 3)]


def _result(index: int, pid: str, room: str, sender: bool, got: dict[str, dict[str, int]],
            state: str = "left") -> dict[str, object]:
    return {"index": index, "id": pid, "room": room, "sender": sender, "state": state,
            "error": "" if state != "failed" else "JoinFailed: x", "from": got,
            "times": {"channel": 0.1 * (index + 1), "first_media": 0.2 * (index + 1)},
            "packets": 90, "expected": 100, "lost": 10, "video_jitter_ms": 1.0,
            "audio_jitter_ms": 2.0, "sent_packets": 50, "srtp_errors": 0, "late_ticks": 0,
            "plis": 1, "nacks": 0}


def test_media_waits_start_when_another_sender_was_ready() -> None:
    def r(index: int, sender: bool, join: float, channel: float, first: float | None
          ) -> dict[str, object]:
        times = {"channel": channel} | ({"first_media": first} if first is not None else {})
        return {"index": index, "room": "r", "sender": sender, "join_wall": join,
                "times": times}

    results = [
        r(0, True, 100.0, 0.1, 5.3),  # alone until 1 was ready at 105.2: waited 0.1
        r(1, True, 105.0, 0.2, 0.3),  # 0 was ready long before: waited 0.3
        r(2, False, 100.0, 0.1, None),  # never got media: not counted
    ]
    assert media_waits(results) == pytest.approx([0.1, 0.3])


def test_pairs_and_summary() -> None:
    results = [
        _result(0, "a", "r", True, {"b": {"audio": 5, "video": 9}}),
        _result(1, "b", "r", True, {"a": {"audio": 5, "video": 0}}),  # no video from a
        _result(2, "c", "r", False, {"a": {"audio": 1, "video": 1}, "b": {"audio": 1,
                                                                          "video": 1}}),
        _result(3, "d", "other", True, {}),
        _result(4, "", "r", True, {}, state="failed"),
    ]
    assert pairs_with_media(results) == (4, 3, ["1<-0"])
    bridge = [{"t": float(t), "cpu": 0.5, "cpu_seconds": t * 0.5, "packets_out": 1000 * t,
               "packet_rate_download": 10.0, "packet_rate_upload": 20.0, "rss_mib": 70.0,
               "loadgen_cpu": 0.25, "udp_rcvbuf_errors": 10 + 3 * t} for t in range(4)]
    bridge.append({"t": 5.0, "final": True, "packets_in": 175, "udp_rcvbuf_errors": 30})
    for row in bridge[:-1]:
        row["packets_in"] = 0
    summary = summarize({"n": 5}, results, [_sample(1, 4, 0, 10, 100.0)], bridge)
    assert summary["joins_ok"] == 4 and summary["joins_failed"] == 1
    assert summary["errors"] == {"JoinFailed: x": 1}
    assert summary["receive_loss"] == pytest.approx(0.1)
    assert summary["first_media_s"]["p50"] == pytest.approx(0.4)
    assert summary["bridge"]["cpu_us_per_packet_out"] == pytest.approx(500.0)
    assert summary["bridge"]["cpu_mean"] == 0.5 and summary["loadgen_cpu_mean"] == 0.25
    assert summary["udp_rcvbuf_drops"] == 20  # the final sample counts too
    assert summary["loss_to_bridge"] == pytest.approx(0.3)  # 175 of 250 sent got in
    assert summary["bridge"]["cpu_mean"] == 0.5  # the final sample is no steady-state row
