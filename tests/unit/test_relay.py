"""Relays between bridges: the pure rules (bridge/relay.py), then two conferences joined by a
real ICE check + DTLS-SRTP relay whose datagrams are carried by a list instead of a socket."""

from __future__ import annotations

import json

import pytest

from tertulia.bridge.conference import Conference
from tertulia.bridge.constraints import parse_constraints
from tertulia.bridge.endpoint import Address
from tertulia.bridge.relay import (
    MAX_MESSAGE,
    RelayMessageError,
    RelayPeer,
    constraints_message,
    describe,
    encode,
    fold_height,
    keyframe_message,
    parse_message,
    should_relay,
    source_message,
    sources_message,
)
from tertulia.bridge.relay_link import Relay, RelayedEndpoint
from tertulia.bridge.rtp.packet import RtpPacket
from tertulia.bridge.rtp.rtcp import Pli
from tertulia.bridge.transport import ice
from tertulia.bridge.transport.demux import Kind, classify
from tertulia.bridge.transport.dtls import DtlsCertificate
from tests.unit.golden import VIDEO, load, rid_ssrcs
from tests.unit.test_conference import CHROME_SIMULCAST, Client
from tests.unit.test_speaker import talker

# -- the pure rules ------------------------------------------------------------------------------


def test_only_local_unblocked_sources_cross_a_relay() -> None:
    assert should_relay(sender_relayed=False, blocked=False)
    assert not should_relay(sender_relayed=True, blocked=False)  # never relayed twice
    assert not should_relay(sender_relayed=False, blocked=True)  # a moderator's mute holds


@pytest.mark.parametrize(("local", "far", "folded"), [
    (0, None, 0),  # not sent over this relay: no change
    (180, None, 180),
    (0, 360, 360),  # nobody here watches, the far side wants 360
    (720, 180, 720),
    (180, -1, -1),  # no limit wins
    (-1, 0, -1),
    (0, 0, 0),  # nobody anywhere: the sender may pause
])
def test_far_receivers_fold_in_like_one_more_receiver(local: int, far: int | None,
                                                      folded: int) -> None:
    assert fold_height(local, far) == folded


def test_messages_round_trip_and_fit_a_datagram() -> None:
    conference = Conference("c1", bridge_ssrc=1)
    chrome = Client("chrome", conference, 0.0, offer=CHROME_SIMULCAST)
    for record in load(VIDEO)[:400]:
        conference.on_rtp(chrome.endpoint, record.data, record.t_ms / 1000)
    description = describe(chrome.endpoint)
    video = next(m for m in description.media if m.role == "video")
    rids = rid_ssrcs()
    assert video.rids == ("l", "m", "h")
    assert dict(video.ssrcs) == {rids["l"]: 0, rids["m"]: 1, rids["h"]: 2}
    for message, parsed in (
        (source_message(description), ("source", description)),
        (sources_message(["chrome", "bo"]), ("sources", ["chrome", "bo"])),
        (constraints_message({"chrome": 180}), ("constraints", {"chrome": 180})),
        (keyframe_message(rids["l"]), ("keyframe", rids["l"])),
    ):
        data = encode(message)
        assert len(data) <= MAX_MESSAGE
        assert parse_message(data) == parsed


@pytest.mark.parametrize("message", [
    b"not json", b"[]", b'{"t": "nope"}', b'{"t": "sources", "ids": "a"}',
    b'{"t": "sources", "ids": [""]}', b'{"t": "keyframe", "ssrc": 0}',
    b'{"t": "keyframe", "ssrc": true}', b'{"t": "constraints", "heights": {"a": -2}}',
    b'{"t": "source", "id": "a", "media": [{"role": "audio", "kind": "video"}]}',
    b'{"t": "source", "id": "a", "media": [{"role": "video", "kind": "video", "mid": "1",'
    b' "pt": 96, "rids": ["l"], "ssrcs": [[5, 3]]}]}',  # layer beyond the rids
    b'{"t": "source", "id": "a", "media": [{"role": "audio", "kind": "audio", "mid": "0",'
    b' "pt": 111, "rids": [], "ssrcs": [], "level": 300}]}',  # extension id out of range
])
def test_bad_relay_messages_are_refused(message: bytes) -> None:
    with pytest.raises(RelayMessageError):
        parse_message(message)


def test_relay_peer_parameters_are_validated() -> None:
    good = {"ip": "198.51.100.11", "port": 10000, "ufrag": "abcd", "pwd": "p" * 24,
            "fingerprint": ":".join(["AB"] * 32)}
    assert RelayPeer.from_json(good).to_json() == good
    for bad in ({**good, "port": 0}, {**good, "ufrag": "a:b"}, {**good, "fingerprint": "AB"},
                {**good, "pwd": None}, "peer"):
        with pytest.raises(RelayMessageError):
            RelayPeer.from_json(bad)


# -- two conferences joined by a relay ------------------------------------------------------


class Link:
    """Bridge A (passive) and bridge B (active) of one conference, datagrams in a list."""

    def __init__(self, a: Conference, b: Conference) -> None:
        self.queue: list[tuple[Relay, bytes, Address]] = []
        self.now = 0.0
        self.checks = 0
        self.a = Relay(a, "B", DtlsCertificate.generate(),
                       lambda data, addr: self.queue.append((self.b, data, ("10.0.0.1", 1))),
                       0.0)
        self.b = Relay(b, "A", DtlsCertificate.generate(),
                       lambda data, addr: self.queue.append((self.a, data, ("10.0.0.2", 2))),
                       0.0)
        a.relays["B"], b.relays["A"] = self.a, self.b
        self.a.connect(self._peer(self.b, "10.0.0.2", 2), active=False, now=0.0)
        self.b.connect(self._peer(self.a, "10.0.0.1", 1), active=True, now=0.0)
        self.pump()

    @staticmethod
    def _peer(relay: Relay, ip: str, port: int) -> RelayPeer:
        return RelayPeer(ip, port, relay.creds.local_ufrag, relay.creds.local_pwd,
                         relay.certificate.fingerprint)

    def pump(self) -> None:
        for _ in range(10_000):  # bounded: a handshake and a few messages
            if not self.queue:
                return
            relay, data, addr = self.queue.pop(0)
            kind = classify(data)
            if kind == Kind.STUN:
                message = ice.parse(data)
                if message.message_class == ice.stun.Class.REQUEST:
                    result = ice.answer_check(message, relay.creds, addr)
                    assert result.error is None and result.nominated  # a valid ICE check
                    self.checks += 1
                    relay.accept_check(addr, self.now)
            elif kind == Kind.DTLS:
                relay.on_dtls(data, self.now)
            elif kind == Kind.RTP:
                relay.on_rtp(data, self.now)
            elif kind == Kind.RTCP:
                relay.on_rtcp(data, self.now)
        raise AssertionError("the relay never went quiet")

    def tick(self, now: float) -> None:
        self.now = now
        for conference in (self.a.conference, self.b.conference):
            conference.refresh_layers(now)
        self.a.tick(now)
        self.b.tick(now)
        self.pump()


def test_two_conferences_relay_every_layer_and_fold_constraints_back() -> None:
    """Chrome sends three layers to bridge A; bridge B's viewer watches it through the relay.
    All three layers cross once; B picks the layer per receiver; B's wish flows back to A as
    Chrome's sender-constraints; B's keyframe requests reach Chrome."""
    near, far = Conference("c1", bridge_ssrc=1), Conference("c1", bridge_ssrc=2)
    chrome = Client("chrome", near, 0.0, offer=CHROME_SIMULCAST)
    told: list[dict[str, object]] = []
    chrome.endpoint.channel_listeners.append(told.append)
    viewer = Client("viewer", far, 0.0)
    link = Link(near, far)
    assert link.a.connected and link.b.connected and link.checks == 1
    link.tick(0.0)  # sources and descriptions cross
    relayed = far.endpoints["chrome"]
    assert isinstance(relayed, RelayedEndpoint)
    assert "viewer" in near.endpoints and viewer.endpoint.occupants == ["chrome", None]

    rids = rid_ssrcs()
    records = [r for r in load(VIDEO) if RtpPacket.parse(r.data).payload_type == 96]
    switched = False
    for record in records:
        now = record.t_ms / 1000
        if not switched and now > 1.0:
            viewer.endpoint.constraints = parse_constraints(
                {"maxHeights": {"chrome": 180}}, viewer.endpoint.constraints)
            far.update_video_selection(viewer.endpoint, now)
            switched = True
        if int(now * 4) != int(link.now * 4):
            link.tick(now)
        near.on_rtp(chrome.endpoint, record.data, now)
        link.pump()
    # every layer crossed, each packet once
    assert set(link.a.stats.streams_out) == set(rids.values())
    assert link.a.stats.rtp_out == len(records) == link.b.stats.rtp_in
    assert link.b.stats.dropped == {}
    # B learnt the layers' sizes from the keyframes itself and chose the 180p one
    video = relayed.sending["video"]
    assert video.layer_height[rids["l"]] == 180 and video.layer_height[rids["h"]] == 720
    assert viewer.endpoint.slots[0][1].source == ("chrome", rids["l"])
    assert viewer.received_rtp()
    # constraint folding: no receiver on A, yet Chrome is told what B's viewer wants
    assert link.a.heights == {"chrome": 180}
    assert told[-1] == {"type": "sender-constraints", "maxHeight": 180}
    # B's switch to the low layer asked Chrome (on A) for a keyframe of it
    plis = [p.media_ssrc for p in chrome.received_rtcp() if isinstance(p, Pli)]
    assert rids["l"] in plis and link.b.stats.keyframes_requested >= 1


def test_a_participant_leaving_or_the_relay_closing_removes_it_on_the_far_side() -> None:
    near, far = Conference("c1", bridge_ssrc=1), Conference("c1", bridge_ssrc=2)
    Client("ana", near, 0.0)
    Client("bo", near, 0.0)
    Client("cy", far, 0.0)
    link = Link(near, far)
    link.tick(0.0)
    assert set(far.endpoints) == {"ana", "bo", "cy"} and set(near.endpoints) == {
        "ana", "bo", "cy"}
    near.remove("ana")
    link.tick(1.5)
    assert set(far.endpoints) == {"bo", "cy"}
    assert not link.b.expired(1.5) and link.b.expired(1.5 + 11)
    link.b.close()
    assert set(far.endpoints) == {"cy"}


def test_a_far_participant_that_moves_here_is_local_and_not_duplicated() -> None:
    near, far = Conference("c1", bridge_ssrc=1), Conference("c1", bridge_ssrc=2)
    old = Client("ana", near, 0.0)
    link = Link(near, far)
    link.tick(0.0)
    far.remove("ana")  # the relayed one goes, as Bridge.allocate does for a mover
    moved = Client("ana", far, 0.0)
    link.tick(1.5)  # A still describes ana for a moment
    assert far.endpoints["ana"] is moved.endpoint
    assert link.b.stats.dropped.get("source-is-local", 0) >= 1
    dropped = link.b.stats.dropped["source-is-local"]
    near.on_rtp(old.endpoint, _audio(old, 1, 30), 1.6)  # the old copy's media still comes
    link.pump()
    assert link.b.stats.rtp_in == 1 and link.b.stats.dropped["source-is-local"] == dropped + 1


def test_sources_messages_carry_json() -> None:
    assert json.loads(encode(sources_message(["a"]))) == {"t": "sources", "ids": ["a"]}


def _audio(client: Client, seq: int, level: int) -> bytes:
    media = client.endpoint.sending["audio"]
    ssrc = next(s for s, m in client.endpoint.media_by_ssrc.items() if m is media)
    assert media.audio_level_id is not None
    return bytes(RtpPacket(payload_type=media.payload_type, sequence_number=seq,
                           timestamp=960 * seq, ssrc=ssrc,
                           extensions=[(media.audio_level_id, bytes([level]))],
                           payload=b"\xf8\xff\xfe"))


def test_both_bridges_elect_the_same_dominant_speaker_from_the_same_levels() -> None:
    """Audio levels of relayed audio feed the far bridge's DominantSpeaker: a talker on
    either bridge is dominant on both."""
    near, far = Conference("c1", bridge_ssrc=1), Conference("c1", bridge_ssrc=2)
    ana, bo = Client("ana", near, 0.0), Client("cy", far, 0.0)
    link = Link(near, far)
    link.tick(0.0)
    ana_talks, cy_talks = talker(1, 0.0, 4.0), talker(2, 4.0, 8.0)
    dominant: dict[str, tuple[str | None, str | None]] = {}
    for seq in range(1, 401):  # 8 s of 20 ms packets: ana talks, then cy
        now = seq * 0.02
        near.on_rtp(ana.endpoint, _audio(ana, seq, ana_talks(now)), now)
        far.on_rtp(bo.endpoint, _audio(bo, seq, cy_talks(now)), now)
        link.pump()
        near.speaker_tick(now)
        far.speaker_tick(now)
        if seq % 5 == 0:
            link.tick(now)
        if seq in (195, 400):
            dominant[f"{now:.1f}"] = (near.speaker.dominant, far.speaker.dominant)
    assert dominant == {"3.9": ("ana", "ana"), "8.0": ("cy", "cy")}
    assert near.speaking_order() == far.speaking_order() == ["cy", "ana"]


def test_relay_control_requests_are_validated() -> None:
    from tertulia.cluster.control import ControlError, parse_request

    request = parse_request(json.dumps({"id": 1, "type": "relay-connect", "conference": "c",
                                        "relay": "jvb-us", "peer": {"ip": "x"},
                                        "active": True}))
    assert (request.relay, request.peer, request.active) == ("jvb-us", {"ip": "x"}, True)
    assert parse_request('{"id": 2, "type": "relay-open", "conference": "c", "relay": "b"}'
                         ).relay == "b"
    for bad in ({"type": "relay-open", "conference": "c"},
                {"type": "relay-connect", "conference": "c", "relay": "b", "peer": "p",
                 "active": True},
                {"type": "relay-connect", "conference": "c", "relay": "b", "peer": {},
                 "active": "yes"},
                {"type": "relay-close", "conference": "c", "relay": "b" * 129}):
        with pytest.raises(ControlError) as info:
            parse_request(json.dumps({"id": 3, **bad}))
        assert info.value.code == "bad-message" and info.value.request_id == 3


def test_a_screen_share_on_one_bridge_is_a_sharer_on_the_other() -> None:
    from tertulia.bridge.relay import MediaDescription, SourceDescription

    near, far = Conference("c1", bridge_ssrc=1), Conference("c1", bridge_ssrc=2)
    Client("viewer", far, 0.0)
    link = Link(near, far)
    screen = MediaDescription(role="screen", kind="video", mid="2", payload_type=96,
                              level_ext=None, mid_ext=4, rid_ext=None, rids=(),
                              ssrcs=((1234, -1),))
    for sharing in (True, False):
        link.a.send_message(encode(source_message(
            SourceDescription("sharer", (screen,), sharing))))
        link.pump()
        assert far.sharers == (["sharer"] if sharing else [])
    alone = Client("alone", near, 0.0)
    alone.endpoint.sharing = True
    assert describe(alone.endpoint).sharing  # what the near side announces


def test_garbage_on_a_relay_is_dropped_and_counted() -> None:
    near, far = Conference("c1", bridge_ssrc=1), Conference("c1", bridge_ssrc=2)
    link = Link(near, far)
    rtp_like = bytes([0x80, 96]) + bytes(10) + b"x" * 40
    rtcp_like = bytes([0x80, 200, 0, 6]) + b"y" * 24
    link.b.on_rtp(rtp_like, 1.0)
    link.b.on_rtcp(rtcp_like, 1.0)
    link.b.on_dtls(bytes([23, 0xFE, 0xFD]) + b"z" * 30, 1.0)  # not a valid record
    link.a.send_message(b'{"t": "keyframe", "ssrc": "one"}')
    link.a.send_message(b"[1, 2")
    link.pump()
    assert link.b.stats.dropped == {"srtp-auth": 1, "srtcp-auth-or-malformed": 1,
                                    "bad-message": 2}
    assert link.b.connected and link.b.stats.rtp_in == 0
