"""Conference routing with real SRTP and captured packets, I/O replaced by lists."""

from __future__ import annotations

import itertools
import os

from pylibsrtp import Policy, Session

from tertulia.bridge.conference import Conference
from tertulia.bridge.constraints import parse_constraints
from tertulia.bridge.endpoint import Address, Endpoint, Schedule
from tertulia.bridge.rtp.packet import RtpPacket, payload_offset
from tertulia.bridge.rtp.rtcp import (
    GenericNack,
    Pli,
    Sdes,
    SenderReport,
    parse_rtcp,
)
from tertulia.bridge.rtp.vp8 import is_keyframe_start, keyframe_size
from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.bridge.transport.ice import IceCredentials
from tertulia.bridge.transport.srtp import SrtpPair
from tertulia.protocol.sdp import Offer, negotiate, parse_offer
from tests.unit.golden import DATA, VIDEO, load, rid_ssrcs

CHROME_SIMULCAST = parse_offer((DATA / "chrome156-offer-audio-video-simulcast.sdp").read_text())

CERT = DtlsCertificate.generate()
OFFER = parse_offer((DATA / "aiortc-offer-2slots.sdp").read_text())


class Client:
    """The client side of an endpoint: its SRTP sessions and the datagrams it received."""

    def __init__(self, name: str, conference: Conference, now: float,
                 offer: Offer = OFFER, schedule: Schedule | None = None) -> None:
        self.addr: Address = ("127.0.0.1", 40000 + len(conference.endpoints))
        self.inbox: list[bytes] = []
        negotiation = negotiate(offer, max_slots=2)
        self.endpoint = Endpoint(
            name, conference.id, negotiation, IceCredentials.generate("u", "p" * 22), CERT,
            "AA", lambda data, addr: self.inbox.append(data), now, schedule=schedule,
        )
        rx_key, tx_key = os.urandom(30), os.urandom(30)
        # The bridge's rx key is what the client sends with, and vice versa.
        self.endpoint.srtp = SrtpPair(rx_key, tx_key)
        self.endpoint.addr = self.addr
        self.rx = Session(Policy(key=tx_key, ssrc_type=Policy.SSRC_ANY_INBOUND))
        conference.add(self.endpoint)

        self._seen = 0
        self._rtp: list[RtpPacket] = []
        self._rtcp: list[object] = []

    def _decode(self) -> None:
        """Unprotect each datagram once (SRTP refuses replays, as a real client would)."""
        for data in self.inbox[self._seen :]:
            if 192 <= data[1] <= 223:
                self._rtcp.extend(parse_rtcp(self.rx.unprotect_rtcp(data)))
            else:
                self._rtp.append(RtpPacket.parse(self.rx.unprotect(data)))
        self._seen = len(self.inbox)

    def received_rtp(self) -> list[RtpPacket]:
        self._decode()
        return self._rtp

    def received_rtcp(self) -> list[object]:
        self._decode()
        return self._rtcp

    def clear(self) -> None:
        self._decode()
        self._rtp.clear()
        self._rtcp.clear()


def video_packets() -> list[bytes]:
    ssrc = rid_ssrcs()["l"]
    return [r.data for r in load(VIDEO) if RtpPacket.parse(r.data).ssrc == ssrc]


def as_sender_pt(data: bytes, pt: int) -> bytes:
    return bytes([data[0], (data[1] & 0x80) | pt]) + data[2:]


def setup() -> tuple[Conference, Client, Client, list[bytes]]:
    conference = Conference("c1", bridge_ssrc=1)
    alice = Client("alice", conference, 0.0)
    bob = Client("bob", conference, 0.0)
    video_pt = alice.endpoint.sending["video"].payload_type
    return conference, alice, bob, [as_sender_pt(p, video_pt) for p in video_packets()]


def test_slots_are_assigned_and_freed() -> None:
    conference = Conference("c1")
    clients = [Client(n, conference, 0.0) for n in ("a", "b", "c", "d")]
    a, _b, c, d = (x.endpoint for x in clients)
    assert a.occupants == ["b", "c"]  # two slots: d waits
    assert d.occupants == ["a", "b"]
    conference.remove("b")
    assert a.occupants == ["d", "c"]  # d takes b's freed slot; c stays put
    assert c.occupants == ["a", "d"]


def test_video_forwarded_rewritten_with_keyframe_request_and_nack() -> None:
    conference, alice, bob, packets = setup()
    now = 1.0
    for data in packets[:40]:
        conference.on_rtp(alice.endpoint, data, now)
        now += 0.01
    # The new source prompted a keyframe request to alice (RR + PLI for her SSRC).
    pli = [p for p in alice.received_rtcp() if isinstance(p, Pli)]
    assert pli and pli[0].media_ssrc == rid_ssrcs()["l"]
    received = bob.received_rtp()
    slot_video = bob.endpoint.slots[0][1]
    assert len(received) == 40  # the capture starts on a keyframe
    assert {p.ssrc for p in received} == {slot_video.ssrc}
    assert {p.payload_type for p in received} == {slot_video.payload_type}
    seqs = [p.sequence_number for p in received]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))

    # A NACK from bob is answered from the history on bob's RTX stream (RFC 4588).
    wanted = seqs[10]
    nack = GenericNack(sender_ssrc=99, media_ssrc=slot_video.ssrc, lost=[wanted])
    conference.on_rtcp(bob.endpoint, [nack], now)
    rtx = bob.received_rtp()[-1]
    assert slot_video.rtx_ssrc is not None
    assert (rtx.ssrc, rtx.payload_type) == (slot_video.rtx_ssrc, slot_video.rtx_payload_type)
    assert int.from_bytes(rtx.payload[:2], "big") == wanted  # OSN
    assert rtx.payload[2:] == received[10].payload and rtx.timestamp == received[10].timestamp
    assert bob.endpoint.stats.retransmissions == bob.endpoint.stats.rtx_sent == 1

    # Without RTX the original packet goes again, protected anew to the very same bytes.
    original = [d for d in bob.inbox if not 192 <= d[1] <= 223][10]
    slot_video.rtx_ssrc = None
    conference.on_rtcp(bob.endpoint, [nack], now)
    assert bob.inbox[-1] == original
    bob._seen = len(bob.inbox)  # bob already has that packet: decoding it again is a replay
    assert bob.endpoint.stats.retransmissions == 2

    # A PLI from bob reaches alice, throttled.
    alice.clear()
    conference.on_rtcp(bob.endpoint, [Pli(sender_ssrc=99, media_ssrc=slot_video.ssrc)], now)
    conference.on_rtcp(bob.endpoint, [Pli(sender_ssrc=99, media_ssrc=slot_video.ssrc)], now)
    assert sum(isinstance(p, Pli) for p in alice.received_rtcp()) == 1
    conference.on_rtcp(
        bob.endpoint, [Pli(sender_ssrc=99, media_ssrc=slot_video.ssrc)], now + 0.5
    )
    assert sum(isinstance(p, Pli) for p in alice.received_rtcp()) == 2


def test_sender_report_translated_for_lip_sync() -> None:
    conference, alice, bob, packets = setup()
    for data in packets[:5]:
        conference.on_rtp(alice.endpoint, data, 1.0)
    first_in = RtpPacket.parse(packets[0])
    first_out = bob.received_rtp()[0]
    sr = SenderReport(
        ssrc=first_in.ssrc, ntp_timestamp=0xE000000012345678,
        rtp_timestamp=first_in.timestamp + 900, packet_count=5, octet_count=100, reports=[],
    )
    bob.clear()
    conference.on_rtcp(alice.endpoint, [sr, Sdes(chunks=[])], 1.1)
    reports = [p for p in bob.received_rtcp() if isinstance(p, SenderReport)]
    assert len(reports) == 1
    out = reports[0]
    assert out.ssrc == first_out.ssrc
    assert out.ntp_timestamp == sr.ntp_timestamp
    assert (out.rtp_timestamp - first_out.timestamp) & 0xFFFFFFFF == 900
    assert out.packet_count == 5
    cnames = [c for p in bob.received_rtcp() if isinstance(p, Sdes) for c in p.chunks]
    assert cnames and cnames[0][0] == first_out.ssrc


def test_receiver_without_media_connection_gets_nothing_and_others_are_undisturbed() -> None:
    conference, alice, bob, packets = setup()
    carol = Client("carol", conference, 0.0)
    carol.endpoint.srtp = None  # not connected yet
    for data in packets[:10]:
        conference.on_rtp(alice.endpoint, data, 1.0)
    assert carol.inbox == []
    assert len(bob.received_rtp()) == 10
    # Unknown payload types are dropped and counted.
    conference.on_rtp(alice.endpoint, as_sender_pt(packets[0], 33), 1.0)
    assert alice.endpoint.stats.dropped == {"unknown-payload-type": 1}


def test_simulcast_receiver_gets_the_layer_its_tile_needs() -> None:
    """Chrome's three captured layers go in; the receiver gets the top layer until it asks
    for 180 px, then the 320x180 layer from its next keyframe, as one continuous stream."""
    conference = Conference("c1", bridge_ssrc=1)
    chrome = Client("chrome", conference, 0.0, offer=CHROME_SIMULCAST)
    viewer = Client("viewer", conference, 0.0)
    rids = rid_ssrcs()
    records = [r for r in load(VIDEO) if RtpPacket.parse(r.data).payload_type == 96]
    switched_at = None
    for record in records:
        now = record.t_ms / 1000
        if switched_at is None and now > 1.0:
            viewer.endpoint.constraints = parse_constraints(
                {"maxHeights": {"chrome": 180}}, viewer.endpoint.constraints
            )
            conference.refresh_layers(now)
            switched_at = now
        conference.on_rtp(chrome.endpoint, record.data, now)
    media = chrome.endpoint.sending["video"]
    assert set(media.layer_of) == set(rids.values())
    assert media.layer_height[rids["l"]] == 180 and media.layer_height[rids["h"]] == 720
    # the switch asked Chrome for a keyframe of the low layer
    plis = [p.media_ssrc for p in chrome.received_rtcp() if isinstance(p, Pli)]
    assert rids["l"] in plis
    out = viewer.received_rtp()
    by_source = [RtpPacket.parse(r.data).ssrc for r in records]
    assert out, "nothing forwarded"
    # Before the switch only layer h was forwarded, after it only layer l, in one sequence.
    seqs = [p.sequence_number for p in out]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    sizes = [keyframe_size(p.payload) for p in out if is_keyframe_start(p.payload)]
    # h from the start (its second keyframe at 2073 ms still comes through: h keeps flowing
    # until the target's keyframe), then l from its next keyframe at 2075 ms
    assert sizes == [(1280, 720), (1280, 720), (320, 180)]
    h_packets = by_source.count(rids["h"])
    assert len(out) < h_packets  # never more than one layer at a time
    stream = viewer.endpoint.slots[0][1]
    assert stream.source == ("chrome", rids["l"]) and stream.switches >= 2


def test_layer_suspension_tells_the_sender_what_is_watched() -> None:
    conference = Conference("c1", bridge_ssrc=1)
    chrome = Client("chrome", conference, 0.0, offer=CHROME_SIMULCAST)
    a = Client("a", conference, 0.0)
    b = Client("b", conference, 0.0)
    told: list[dict[str, object]] = []
    chrome.endpoint.channel_listeners.append(told.append)
    conference.refresh_layers(0.0)
    assert told[-1] == {"type": "sender-constraints", "maxHeight": -1}  # no limits yet
    for client, height in ((a, 180), (b, 360)):
        client.endpoint.constraints = parse_constraints(
            {"maxHeights": {"chrome": height}}, client.endpoint.constraints)
        conference.update_video_selection(client.endpoint, 0.0)
    conference.refresh_layers(0.1)
    assert told[-1]["maxHeight"] == 360
    b.endpoint.constraints = parse_constraints({"maxHeights": {"chrome": 0}},
                                               b.endpoint.constraints)
    conference.update_video_selection(b.endpoint, 0.2)
    conference.refresh_layers(0.2)
    assert told[-1]["maxHeight"] == 180
    a.endpoint.constraints = parse_constraints({"lastN": 0}, a.endpoint.constraints)
    conference.update_video_selection(a.endpoint, 0.3)
    conference.refresh_layers(0.3)
    assert told[-1]["maxHeight"] == 0  # nobody watches: the sender may pause its camera
    count = len(told)
    conference.refresh_layers(0.4)
    assert len(told) == count  # only changes are sent


def test_padding_only_packets_are_neither_forwarded_nor_counted_as_media() -> None:
    """A sender's bandwidth probe of padding alone (RFC 3550 §5.1; Chrome sends them on a
    layer's SSRC when RTX is not negotiated on its uplink, also on a paused layer)."""
    conference, alice, bob, packets = setup()
    now = 1.0
    for data in packets[:40]:
        conference.on_rtp(alice.endpoint, data, now)
        now += 0.01
    forwarded = len(bob.received_rtp())
    media = alice.endpoint.sending["video"]
    ssrc = RtpPacket.parse(packets[40]).ssrc
    counted = media.rate[ssrc].count  # bytes since the meter's last tick
    last_packet = media.last_packet
    header = bytearray(packets[40][:payload_offset(packets[40])])
    header[0] |= 0x20  # P: the payload is all padding, its last octet the count
    for _ in range(10):
        conference.on_rtp(alice.endpoint, bytes(header) + bytes(199) + bytes([200]), now)
        now += 0.01
    assert len(bob.received_rtp()) == forwarded
    assert alice.endpoint.stats.padding_received == 10
    assert media.last_packet == last_packet
    assert media.rate[ssrc].count == counted
    # media with some padding at its end is still media
    padded = bytearray(packets[40]) + bytes(3) + bytes([4])
    padded[0] |= 0x20
    conference.on_rtp(alice.endpoint, bytes(padded), now)
    assert len(bob.received_rtp()) == forwarded + 1


def test_a_receiver_who_joins_while_the_camera_is_paused_gets_it_when_it_resumes() -> None:
    """Alone in a room, a sender is told nobody watches and pauses every layer. A receiver
    who joins then finds no live layer; when the camera resumes, the receiver's slot must be
    attached to it (seen in Chromium: a black tile until the next change of seats)."""
    conference = Conference("c1", bridge_ssrc=1)
    chrome = Client("chrome", conference, 0.0, offer=CHROME_SIMULCAST)
    records = [r for r in load(VIDEO) if RtpPacket.parse(r.data).payload_type == 96]
    for record in (r for r in records if r.t_ms < 1000):
        conference.on_rtp(chrome.endpoint, record.data, record.t_ms / 1000)
    conference.refresh_layers(3.0)  # paused since 1.0 s: no live layer
    assert chrome.endpoint.sending["video"].layers(3.0) == []
    viewer = Client("viewer", conference, 3.0)
    conference.refresh_layers(3.25)
    # the camera resumes 2.5 s after it paused (with the capture's keyframes at ~2.07 s)
    for record in (r for r in records if r.t_ms >= 2000):
        conference.on_rtp(chrome.endpoint, record.data, 1.5 + record.t_ms / 1000)
    got = viewer.received_rtp()
    assert got, "the viewer got nothing of the resumed camera"
    assert is_keyframe_start(got[0].payload)
    assert viewer.endpoint.slots[0][1].source is not None


def test_a_resumed_layer_is_measured_for_a_second_before_it_is_an_upgrade() -> None:
    """Its rate reads from ~0 upwards after a pause (the meters are smoothed per tick)."""
    conference = Conference("c1", bridge_ssrc=1)
    chrome = Client("chrome", conference, 0.0, offer=CHROME_SIMULCAST)
    media = chrome.endpoint.sending["video"]
    records = [r for r in load(VIDEO) if RtpPacket.parse(r.data).payload_type == 96]
    for record in (r for r in records if r.t_ms < 1000):
        conference.on_rtp(chrome.endpoint, record.data, record.t_ms / 1000)
    ssrcs = media.layers(1.0)
    assert ssrcs and [media.settled(s, 0.5) for s in ssrcs] == [False] * len(ssrcs)
    assert all(media.settled(s, media.live_since[s] + 1.0 + 1e-9) for s in ssrcs)
    resumed_at = 4.0  # after 3 s of silence
    for record in (r for r in records if 2000 <= r.t_ms < 3200):
        conference.on_rtp(chrome.endpoint, record.data, resumed_at - 2.0 + record.t_ms / 1000)
    again = media.layers(resumed_at + 1.0)
    assert again
    for ssrc in again:
        assert media.live_since[ssrc] >= resumed_at
        assert not media.settled(ssrc, resumed_at + 0.5)
        assert media.settled(ssrc, media.live_since[ssrc] + 1.0 + 1e-9)
