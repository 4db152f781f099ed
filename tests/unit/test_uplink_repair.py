"""Uplink repair (bridge/uplink.py): the bridge NACKs a sender's losses and takes its RTX
retransmissions in place of the lost packets. Real SRTP and captured packets; I/O as lists."""

from __future__ import annotations

import struct

from tertulia.bridge import uplink
from tertulia.bridge.conference import Conference
from tertulia.bridge.endpoint import Endpoint
from tertulia.bridge.rtp.packet import RtpPacket, payload_offset
from tertulia.bridge.rtp.rtcp import GenericNack, ReceiverReport
from tertulia.bridge.rtp.rtx import unwrap_rtx
from tertulia.bridge.transport.ice import IceCredentials
from tertulia.protocol.answer import build_answer
from tertulia.protocol.sdp import LocalTransport, negotiate, parse_offer
from tests.unit.golden import DATA, VIDEO, load, rid_rtx_ssrcs, rid_ssrcs
from tests.unit.test_conference import CERT, OFFER, Client, as_sender_pt, video_packets

MEDIA_SSRC, RTX_SSRC = 945599284, 2409844248  # a=ssrc-group:FID in the aiortc offer
RTX_PT = 98  # a=fmtp:98 apt=97


def with_ssrc(data: bytes, ssrc: int) -> bytes:
    return data[:8] + struct.pack("!I", ssrc) + data[12:]


def as_rtx(original: bytes, rtx_seq: int) -> bytes:
    """RFC 4588 §4: the RTX packet a sender makes of ``original``."""
    at = payload_offset(original)
    head = bytearray(original[:at])
    head[1] = (head[1] & 0x80) | RTX_PT
    head[2:4] = rtx_seq.to_bytes(2, "big")
    head[8:12] = RTX_SSRC.to_bytes(4, "big")
    return bytes(head) + original[2:4] + original[at:]


def setup() -> tuple[Conference, Client, Client, list[bytes]]:
    conference = Conference("c1", bridge_ssrc=1)
    alice = Client("alice", conference, 0.0)
    bob = Client("bob", conference, 0.0)
    pt = alice.endpoint.sending["video"].payload_type
    return conference, alice, bob, [with_ssrc(as_sender_pt(p, pt), MEDIA_SSRC)
                                    for p in video_packets()]


def nacks_to(client: Client) -> list[GenericNack]:
    return [p for p in client.received_rtcp() if isinstance(p, GenericNack)]


def seq_of(data: bytes) -> int:
    return int.from_bytes(data[2:4], "big")


def test_sending_video_negotiates_nack_and_rtx() -> None:
    negotiation = negotiate(OFFER, max_slots=2)
    video = negotiation.video
    assert video is not None
    assert "nack" in video.rtcp_fb and video.rtx_payload_type == RTX_PT
    assert video.fid == ((MEDIA_SSRC, RTX_SSRC),)
    assert video.ssrcs == (MEDIA_SSRC,)


def test_answer_accepts_rtx_on_the_sending_video() -> None:
    conference = Conference("c1", bridge_ssrc=1)
    alice = Client("alice", conference, 0.0)
    local = LocalTransport("ufrag", "p" * 22, "AB:CD", "127.0.0.1", 10000)
    answer = build_answer(OFFER, alice.endpoint.negotiation, local,
                          alice.endpoint.slot_sources(), session_id=1)
    section = answer.split("m=video")[1]  # the sending camera, answered recvonly
    assert "a=recvonly" in section
    assert f"a=rtpmap:{RTX_PT} rtx/90000\r\na=fmtp:{RTX_PT} apt=97" in section
    assert "a=rtcp-fb:97 nack\r\n" in section
    assert alice.endpoint.rtx_media == {RTX_SSRC: MEDIA_SSRC}


def test_a_gap_is_nacked_at_once_then_retried_after_the_rtt() -> None:
    conference, alice, _bob, packets = setup()
    for data in packets[:5] + packets[7:10]:
        conference.on_rtp(alice.endpoint, data, 1.0)
    lost = [seq_of(packets[5]), seq_of(packets[6])]
    rtcp = alice.received_rtcp()
    nack = nacks_to(alice)
    assert len(nack) == 1 and nack[0].media_ssrc == MEDIA_SSRC and nack[0].lost == lost
    assert isinstance(rtcp[rtcp.index(nack[0]) - 1], ReceiverReport)  # compound: RR first
    uplink.send_nacks(alice.endpoint, conference.bridge_ssrc, 1.05)
    assert len(nacks_to(alice)) == 1  # not again within the default RTT
    uplink.send_nacks(alice.endpoint, conference.bridge_ssrc, 1.11)
    assert len(nacks_to(alice)) == 2 and nacks_to(alice)[1].lost == lost
    assert alice.endpoint.stats.nacks_sent == 2
    assert alice.endpoint.stats.nack_requested == 4


def test_rtx_takes_the_place_of_the_lost_packet() -> None:
    conference, alice, bob, packets = setup()
    for data in packets[:5] + packets[6:10]:
        conference.on_rtp(alice.endpoint, data, 1.0)
    assert len(bob.received_rtp()) == 9
    conference.on_rtp(alice.endpoint, as_rtx(packets[5], 500), 1.02)
    received = bob.received_rtp()
    assert len(received) == 10
    original = RtpPacket.parse(packets[5])
    repaired = received[-1]
    assert repaired.payload == original.payload
    assert repaired.sequence_number == (received[4].sequence_number + 1) & 0xFFFF
    assert repaired.timestamp - received[4].timestamp == original.timestamp - RtpPacket.parse(
        packets[4]).timestamp
    stats = alice.endpoint.stats
    assert (stats.rtx_received, stats.uplink_repaired) == (1, 1)
    uplink.send_nacks(alice.endpoint, conference.bridge_ssrc, 2.0)
    assert len(nacks_to(alice)) == 1  # repaired: not asked for again
    # the same retransmission again (or a redundant probe): nothing missing, dropped
    conference.on_rtp(alice.endpoint, as_rtx(packets[5], 501), 1.03)
    assert len(bob.received_rtp()) == 10
    assert stats.rtx_duplicates == 1


def test_padding_only_rtx_is_a_probe_not_forwarded() -> None:
    conference, alice, bob, packets = setup()
    for data in packets[:3]:
        conference.on_rtp(alice.endpoint, data, 1.0)
    head = bytearray(as_rtx(packets[3], 7)[:payload_offset(packets[3])])
    head[0] |= 0x20  # P bit: the payload is 255 bytes of padding only (RFC 3550 §5.1)
    probe = bytes(head) + bytes(254) + b"\xff"
    conference.on_rtp(alice.endpoint, probe, 1.01)
    assert len(bob.received_rtp()) == 3
    assert alice.endpoint.stats.padding_received == 1
    assert alice.endpoint.stats.rtx_received == 0
    assert not alice.endpoint.stats.dropped


def test_no_nack_without_it_in_the_offer() -> None:
    text = (DATA / "aiortc-offer-2slots.sdp").read_text().replace("a=rtcp-fb:97 nack\r\n", "")
    text = text.replace("a=rtcp-fb:97 nack\n", "")
    offer = parse_offer(text)
    conference = Conference("c1", bridge_ssrc=1)
    alice = Client("alice", conference, 0.0, offer=offer)
    Client("bob", conference, 0.0)
    assert not alice.endpoint.sending["video"].nack
    pt = alice.endpoint.sending["video"].payload_type
    packets = [with_ssrc(as_sender_pt(p, pt), MEDIA_SSRC) for p in video_packets()[:6]]
    for data in packets[:2] + packets[4:]:
        conference.on_rtp(alice.endpoint, data, 1.0)
    uplink.send_nacks(alice.endpoint, conference.bridge_ssrc, 2.0)
    assert nacks_to(alice) == []


def test_unwrap_rtx_keeps_marker_and_extensions() -> None:
    original = video_packets()[0]
    rtx = as_rtx(bytes([original[0], original[1] | 0x80]) + original[2:], 9)
    back = unwrap_rtx(rtx, payload_offset(rtx), int.from_bytes(original[8:12], "big"),
                      original[1] & 0x7F)
    assert back == bytes([original[0], original[1] | 0x80]) + original[2:]


def test_simulcast_rtx_ssrc_learned_from_repaired_rid() -> None:
    """Chrome's offer declares no SSRCs for rid layers: an RTX stream is matched to its layer
    by repaired-rtp-stream-id (RFC 8852 §3.2), once that layer has sent."""
    offer = parse_offer((DATA / "chrome156-offer-audio-video-simulcast.sdp").read_text())
    negotiation = negotiate(offer, max_slots=2)
    endpoint = Endpoint("c", "c1", negotiation, IceCredentials.generate("u", "p" * 22), CERT,
                        "AA", lambda data, addr: None, 0.0)
    video = endpoint.sending["video"]
    assert video.nack and video.rtx_payload_type == 97
    records = [r.data for r in load(VIDEO)]
    rtx_h = next(d for d in records if int.from_bytes(d[8:12], "big") == rid_rtx_ssrcs()["h"])
    media_h = next(d for d in records if int.from_bytes(d[8:12], "big") == rid_ssrcs()["h"])
    conference = Conference("c1", bridge_ssrc=1)
    conference.add(endpoint)
    conference.on_rtp(endpoint, rtx_h, 1.0)  # before its layer sent: unknown, dropped
    assert endpoint.rtx_media == {}
    conference.on_rtp(endpoint, media_h, 1.0)
    conference.on_rtp(endpoint, rtx_h, 1.0)  # a padding-only probe (as captured)
    assert endpoint.rtx_media == {rid_rtx_ssrcs()["h"]: rid_ssrcs()["h"]}
    assert endpoint.stats.padding_received == 1
