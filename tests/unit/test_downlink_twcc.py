"""The bridge's own transport-wide numbers on what it sends a receiver that negotiated
transport-cc, the send records, the receiver's feedback feeding the estimate, and probing
(bridge/endpoint.py, subscription.py, bandwidth.py with sendside.py), with real SRTP."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any, cast

from tertulia.bridge import bandwidth
from tertulia.bridge.conference import Conference
from tertulia.bridge.rtp.rtcp import GenericNack, Remb, TransportCC
from tertulia.bridge.sendside import PROBE_DURATION, RING
from tertulia.bridge.stats import endpoint_bandwidth
from tertulia.protocol.sdp import EXT_TWCC, parse_offer
from tests.unit.test_conference import Client, as_sender_pt, video_packets
from tests.unit.test_sdp import chrome_offer_with_slots

CHROME_RECEIVER = parse_offer(chrome_offer_with_slots(2))


def setup() -> tuple[Conference, Client, Client, list[bytes]]:
    conference = Conference("c1", bridge_ssrc=1)
    alice = Client("alice", conference, 0.0)  # aiortc-like: REMB
    bob = Client("bob", conference, 0.0, offer=CHROME_RECEIVER)  # Chrome-like: transport-cc
    video_pt = alice.endpoint.sending["video"].payload_type
    return conference, alice, bob, [as_sender_pt(p, video_pt) for p in video_packets()]


def twcc_numbers(client: Client) -> list[int]:
    ext_id = client.endpoint.twcc_send_id
    assert ext_id is not None
    out = []
    for packet in client.received_rtp():
        value = packet.get_extension(ext_id)
        assert value is not None and len(value) == 2
        out.append(int.from_bytes(value, "big"))
    return out


def test_every_packet_to_a_transport_cc_receiver_is_numbered_and_recorded() -> None:
    conference, alice, bob, packets = setup()
    assert bob.endpoint.sendside is not None and alice.endpoint.sendside is None
    assert bob.endpoint.twcc_send_id == CHROME_RECEIVER.media[2].extmaps[EXT_TWCC]
    history = bob.endpoint.sendside.history
    history.seq = 0xFFFF - 5  # numbers wrap on the way
    now = 1.0
    for data in packets[:30]:
        conference.on_rtp(alice.endpoint, data, now)
        now += 0.01
    numbers = twcc_numbers(bob)
    assert len(numbers) == 30
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(numbers))
    assert numbers[0] == 0xFFFF - 5 and history.seq == 0xFFFF - 5 + 30
    # the send record: time and size on the wire (SRTP tag and IP/UDP included)
    last = bob.inbox[-1]
    assert history.times[(history.seq - 1) % RING] == now - 0.01
    assert history.sizes[(history.seq - 1) % RING] == len(last) + 28
    assert alice.endpoint.twcc_send_id is None  # a REMB receiver: nothing numbered

    # a retransmission on RTX gets a number of its own
    slot_video = bob.endpoint.slots[0][1]
    seq = bob.received_rtp()[5].sequence_number
    conference.on_rtcp(bob.endpoint, [GenericNack(99, slot_video.ssrc, [seq])], now)
    rtx = bob.received_rtp()[-1]
    assert rtx.ssrc == slot_video.rtx_ssrc
    assert bob.endpoint.twcc_send_id is not None
    value = rtx.get_extension(bob.endpoint.twcc_send_id)
    assert value is not None and int.from_bytes(value, "big") == (numbers[-1] + 1) & 0xFFFF


def test_feedback_drives_the_allocation_estimate_instead_of_remb() -> None:
    conference, alice, bob, packets = setup()
    now = 1.0
    for data in packets[:40]:
        conference.on_rtp(alice.endpoint, data, now)
        now += 0.01
    assert bandwidth.estimate_of(bob.endpoint, now) == (None, "none")
    conference.on_rtcp(bob.endpoint, [Remb(99, 123_000, [])], now)
    assert bandwidth.estimate_of(bob.endpoint, now) == (123_000, "remb")
    numbers = twcc_numbers(bob)
    feedback = TransportCC(99, 1, numbers[0], len(numbers), 10, 0,
                           [(n, True, 10_000) for n in numbers])
    conference.on_rtcp(bob.endpoint, [feedback], now)
    assert bob.endpoint.stats.twcc_received == 1
    sendside = bob.endpoint.sendside
    assert sendside is not None and sendside.feedbacks == 1
    # the start rate alone does not hold layers back before a probe or a few seconds
    assert bandwidth.estimate_of(bob.endpoint, now) == (None, "none")
    value, source = bandwidth.estimate_of(bob.endpoint, now + 3.1)
    assert source == "twcc" and value == sendside.value()
    # what /about/bridge/endpoints says about each
    conference.on_rtcp(alice.endpoint, [Remb(99, 123_000, [])], now)
    listed = endpoint_bandwidth(cast(Any, SimpleNamespace(conferences={"c1": conference})),
                                now + 3.1)
    by_source = {e["estimate_source"]: e for e in listed}
    assert set(by_source) == {"twcc", "remb"}
    assert by_source["twcc"]["estimate_bps"] == round(sendside.value())
    assert by_source["twcc"]["transport_feedback_received"] == 1
    assert by_source["twcc"]["probes"] == {"valid": 0, "invalid": 0, "last_bps": None}
    assert by_source["remb"]["estimate_bps"] == 123_000 and by_source["remb"]["probes"] is None
    # a receiver that did not negotiate it: its feedback is dropped and counted
    conference.on_rtcp(alice.endpoint, [feedback], now)
    assert alice.endpoint.stats.dropped["twcc-feedback-not-negotiated"] == 1


def test_probe_clusters_pad_on_rtx_up_to_their_target_only_with_send_side() -> None:
    conference, alice, bob, packets = setup()
    now = 1.0
    for data in packets[:40]:
        conference.on_rtp(alice.endpoint, data, now)
        now += 0.01
    sendside = bob.endpoint.sendside
    assert sendside is not None
    numbers = twcc_numbers(bob)
    conference.on_rtcp(bob.endpoint, [TransportCC(99, 1, numbers[0], len(numbers), 10, 0,
                                                  [(n, True, 1000) for n in numbers])], now)
    bob.endpoint.probe_wanted = 2_000_000.0  # its layers would take more than 300 kbit/s
    alice.endpoint.probe_wanted = 2_000_000.0
    sent_before = sendside.history.bytes
    for _ in range(12):  # 0.6 s of fast ticks
        bandwidth.pad(bob.endpoint, 0.05, now)
        bandwidth.pad(alice.endpoint, 0.05, now)
        now += 0.05
    cluster = sendside.clusters[-1]
    assert cluster.end is not None and sendside.probe is None  # PROBE_DURATION, then stopped
    assert cluster.target == 3 * 300_000  # the first probe: 3x the start rate
    padded = sendside.history.bytes - sent_before
    expected = cluster.target * PROBE_DURATION / 8  # with what media it sent meanwhile
    assert 0.8 * expected <= padded <= 1.2 * expected
    assert bob.endpoint.stats.padding_sent > 0
    rtx_ssrc = bob.endpoint.slots[0][1].rtx_ssrc
    assert {p.ssrc for p in bob.received_rtp()[40:]} == {rtx_ssrc}
    assert len(set(twcc_numbers(bob))) == len(bob.received_rtp())  # all numbered, once each
    assert alice.endpoint.stats.padding_sent == 0  # REMB receiver: no probing padding


def test_a_receiver_getting_all_it_wants_is_probed_only_when_its_estimate_is_thin() -> None:
    """Past a measured level the estimate rises only through probes; a receiver that gets
    every layer it wants is probed too while what it gets is within the upgrade headroom of
    its estimate, so that a layer's swings above its mean do not drop it."""
    conference, alice, bob, packets = setup()
    now = 1.0
    for data in packets[:200]:  # the low layer only: that is all bob can want of it
        conference.on_rtp(alice.endpoint, data, now)
        now += 0.01
        if int(now * 100) % 25 == 0:
            conference.refresh_layers(now)
    sendside = bob.endpoint.sendside
    assert sendside is not None
    sendside.feedbacks, sendside.first_feedback = 1, now - 100  # found its level long ago
    sendside.rate.bitrate = 50_000_000.0
    bandwidth.allocate_receiver(conference, bob.endpoint, now)
    sending = bob.endpoint.committed_bps
    assert sending > 0 and bob.endpoint.probe_wanted is None  # plenty of headroom
    sendside.rate.bitrate = sending * 1.05  # just above what it gets
    bandwidth.allocate_receiver(conference, bob.endpoint, now)
    assert bob.endpoint.probe_wanted is not None and bob.endpoint.probe_wanted > sending * 1.15
