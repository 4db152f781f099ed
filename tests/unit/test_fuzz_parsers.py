"""Property tests: every parser facing the network raises only its own error type.

Seeded with real Chromium packets, then mutated (byte flips, truncation, insertion) and with
arbitrary bytes. Sizes are bounded so the default run stays quick; the examples count can be
raised with HYPOTHESIS_PROFILE=long.
"""

from __future__ import annotations

import contextlib
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tertulia.bridge.channel import handle_client_message
from tertulia.bridge.constraints import ConstraintsError, ReceiverConstraints, parse_constraints
from tertulia.bridge.rtp.packet import RtpPacket, RtpParseError, parse_extensions
from tertulia.bridge.rtp.rtcp import RtcpParseError, parse_rtcp, serialize_rtcp
from tertulia.bridge.rtp.vp8 import is_keyframe_start, keyframe_size, parse_vp8_descriptor
from tertulia.bridge.transport import ice
from tertulia.bridge.transport.demux import classify
from tertulia.protocol.messages import ProtocolError, parse_client_message
from tertulia.protocol.sdp import SdpError, negotiate, parse_offer
from tests.unit.golden import AUDIO, DATA, RTCP, RTCP_TWCC, VIDEO, load

settings.register_profile(
    "default", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

RTP_SEEDS = [r.data for r in load(VIDEO)[:200:7]] + [r.data for r in load(AUDIO)[:50:5]]
RTCP_SEEDS = [r.data for r in load(RTCP)] + [r.data for r in load(RTCP_TWCC)[:40]]
SDP_SEEDS = [(DATA / n).read_text() for n in (
    "chrome156-offer-audio-video-simulcast.sdp", "aiortc-offer-2slots.sdp",
    "chrome156-offer-screenshare.sdp",
)]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[pos] = draw(st.integers(0, 255))
    return bytes(data)


packets = st.one_of(st.binary(max_size=300), mutated(RTP_SEEDS))


@given(packets)
def test_rtp_parsing_raises_only_rtp_errors(data: bytes) -> None:
    classify(data)
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    parse_extensions(data)
    assert RtpPacket.parse(bytes(packet)) == packet
    with contextlib.suppress(ValueError):
        parse_vp8_descriptor(packet.payload)
    is_keyframe_start(packet.payload)
    keyframe_size(packet.payload)


@given(st.one_of(st.binary(max_size=300), mutated(RTCP_SEEDS)))
def test_rtcp_parsing_raises_only_rtcp_errors(data: bytes) -> None:
    try:
        parsed = parse_rtcp(data)
    except RtcpParseError:
        return
    parse_rtcp(serialize_rtcp(parsed))  # what we parsed we can write and read again


STUN_SEED = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149a"
    "eaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)


@given(st.one_of(st.binary(max_size=200), mutated([STUN_SEED])))
def test_stun_parsing_raises_only_value_error(data: bytes) -> None:
    try:
        message = ice.parse(data)
    except ValueError:
        return
    ice.username_local_ufrag(message)
    creds = ice.IceCredentials("evtj", "VOkJxbRl1RmTxUk/WvJxBt", "h6vY", "x" * 22)
    ice.answer_check(message, creds, ("127.0.0.1", 1))


@st.composite
def mutated_text(draw: st.DrawFn, seeds: list[str]) -> str:
    lines = draw(st.sampled_from(seeds)).split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        cut = draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:cut] + draw(st.text(max_size=6)) + lines[i][cut + 1:]
    return "\r\n".join(lines)


@given(st.one_of(st.text(max_size=200), mutated_text(SDP_SEEDS)))
def test_sdp_parsing_raises_only_sdp_errors(text: str) -> None:
    with contextlib.suppress(SdpError):
        negotiate(parse_offer(text), max_slots=2)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)
message_types = st.sampled_from([
    "join", "offer", "mute", "leave", "ping", "chat", "raise-hand", "lobby-admit",
    "lobby-deny", "set-lobby", "set-password", "grant-moderator", "mute-participant",
    "mute-all", "ask-unmute", "kick", "end-meeting", "nope",
])


@given(message_types, st.dictionaries(
    st.sampled_from(["room", "name", "sdp", "text", "to", "password", "kind", "participant",
                     "enabled", "raised", "audioMuted", "id", "knock", "resume", "token"]),
    json_values, max_size=5))
def test_client_messages_raise_only_protocol_errors(kind: str, fields: dict[str, object]
                                                    ) -> None:
    try:
        parse_client_message(json.dumps({"type": kind, **fields}), 64 * 1024)
    except ProtocolError as exc:
        assert exc.reply()["code"]


@given(st.dictionaries(
    st.sampled_from(["lastN", "onStage", "selected", "defaultMaxHeight", "maxHeights", "type"]),
    json_values, max_size=5))
def test_bridge_channel_messages_never_raise(fields: dict[str, object]) -> None:
    handle_client_message(json.dumps({"type": "constraints", **fields}))
    with contextlib.suppress(ConstraintsError):
        parse_constraints(fields, ReceiverConstraints())
