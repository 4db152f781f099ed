"""A receiver's max frame rate through the conference: Chromium's captured L1T3 simulcast in,
a temporal subset out (contiguous, answerable by NACK), another receiver unaffected."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from tertulia.bridge.conference import Conference
from tertulia.bridge.constraints import parse_constraints
from tertulia.bridge.rtp.packet import RtpPacket
from tertulia.bridge.rtp.rtcp import GenericNack
from tertulia.bridge.rtp.vp8 import parse_vp8_descriptor
from tertulia.bridge.stats import endpoint_bandwidth
from tests.unit.golden import VIDEO, load, rid_ssrcs
from tests.unit.test_conference import CHROME_SIMULCAST, Client


def starts(packets: list[RtpPacket]) -> list[tuple[int, int, int]]:
    """(picture ID, TL0PICIDX, TID) of each frame's first packet."""
    out = []
    for p in packets:
        d = parse_vp8_descriptor(p.payload)
        if d.start_of_partition and d.partition_id == 0:
            out.append((d.picture_id or 0, d.tl0picidx or 0, d.tid or 0))
    return out


def run() -> tuple[Conference, Client, Client, Client]:
    conference = Conference("c1", bridge_ssrc=1)
    chrome = Client("chrome", conference, 0.0, offer=CHROME_SIMULCAST)
    half = Client("half", conference, 0.0)
    full = Client("full", conference, 0.0)
    half.endpoint.constraints = parse_constraints(
        {"defaultMaxFrameRate": 15}, half.endpoint.constraints)
    # up to 6 s: the capture's page switches layer h off at 6.15 s
    records = [r for r in load(VIDEO)
               if RtpPacket.parse(r.data).payload_type == 96 and r.t_ms < 6000]
    tick = 0.0
    for record in records:
        now = record.t_ms / 1000
        if now >= tick:  # the bridge's 0.25 s tick: meters, allocation, layer and TID targets
            conference.refresh_layers(now)
            tick = now + 0.25
        conference.on_rtp(chrome.endpoint, record.data, now)
    return conference, chrome, half, full


def test_max_frame_rate_15_forwards_t0_and_t1_only_contiguous() -> None:
    conference, chrome, half, full = run()
    rids = rid_ssrcs()
    media = chrome.endpoint.sending["video"]
    # measured once per packet: h's three temporal layers at ~7.5/15/30 fps
    fps = [round(f) for _bps, f in media.temporal[rids["h"]].cumulative()]
    assert fps == [8, 15, 30] or fps == [7, 15, 30], fps
    assert half.endpoint.allocation["chrome"] == (rids["h"], 1)
    assert full.endpoint.allocation["chrome"] == (rids["h"], 2)
    got_half, got_full = half.received_rtp(), full.received_rtp()
    half_frames, full_frames = starts(got_half), starts(got_full)
    # the limit holds from the first allocation (the bridge's first tick with the layers
    # known, ~0.25 s: 8 frames); frame rates not measured yet count as too high, so T0 first
    assert {tid for _p, _t, tid in half_frames[8:]} == {0, 1}
    assert {tid for _p, _t, tid in full_frames} == {0, 1, 2}
    assert 0.4 < len(half_frames) / len(full_frames) < 0.6
    for stream in (got_half, got_full):
        seqs = [p.sequence_number for p in stream]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    for (p1, t1, _), (p2, t2, tid2) in itertools.pairwise(half_frames):
        assert p2 == (p1 + 1) & 0x7FFF  # no picture ID gap the receiver would wait on
        assert t2 == (t1 + (1 if tid2 == 0 else 0)) & 0xFF
    # the choice is visible at /about/bridge/endpoints
    rows = endpoint_bandwidth_of(conference)
    assert rows["half"] == ([720], [1]) and rows["full"] == ([720], [2])


def endpoint_bandwidth_of(conference: Conference) -> dict[str, tuple[list[object], ...]]:
    bridge = SimpleNamespace(conferences={conference.id: conference})  # what the route reads
    out = {}
    rows = endpoint_bandwidth(bridge, conference.now)  # type: ignore[arg-type]
    for name, row in zip(conference.endpoints, rows, strict=True):
        out[name] = (row["layers"], row["temporal_layers"])
        if row["frame_rates"] and row["frame_rates"][0] is not None:
            assert row["frame_rates"][0] > 0
    return out


def test_a_nack_after_drops_is_answered_with_the_packet_sent_under_that_number() -> None:
    conference, _chrome, half, _full = run()
    got = half.received_rtp()
    slot_video = half.endpoint.slots[0][1]
    assert slot_video.temporal is not None and slot_video.temporal.dropped > 0
    wanted = got[-20]
    nack = GenericNack(sender_ssrc=99, media_ssrc=slot_video.ssrc,
                       lost=[wanted.sequence_number])
    conference.on_rtcp(half.endpoint, [nack], conference.now)
    rtx = half.received_rtp()[-1]
    assert rtx.ssrc == slot_video.rtx_ssrc
    assert int.from_bytes(rtx.payload[:2], "big") == wanted.sequence_number  # OSN
    assert rtx.payload[2:] == wanted.payload and rtx.timestamp == wanted.timestamp
    assert half.endpoint.stats.nack_misses == 0
