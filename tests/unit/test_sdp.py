"""SDP: parse real Chrome 156 / aiortc offers, negotiate fixed receive slots, build the answer.

tests/data/aiortc-offer-2slots.sdp was produced by aiortc 1.16 (mic sendonly, camera sendonly,
then two recvonly audio+video pairs, bundlePolicy max-bundle, host candidates on 127.0.0.1).
"""

from __future__ import annotations

import random
from pathlib import Path

import aioice.ice
import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from tertulia.protocol.answer import build_answer
from tertulia.protocol.sdp import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_RID,
    EXT_RRID,
    LocalTransport,
    MediaSection,
    Negotiation,
    Offer,
    SdpError,
    SlotSource,
    negotiate,
    parse_offer,
)

DATA = Path(__file__).parents[1] / "data"
CHROME = "chrome156-offer-audio-video-simulcast.sdp"
SCREENSHARE = "chrome156-offer-screenshare.sdp"
AIORTC_TO_CHROME = "aiortc1.16-offer-to-chrome156.sdp"
AIORTC_SLOTS = "aiortc-offer-2slots.sdp"
FINGERPRINT = ":".join(f"{b:02X}" for b in range(0xA0, 0xC0))  # 32 bytes, sha-256 shaped
LOCAL = LocalTransport("brdg", "bridgepasswordbridgepw", FINGERPRINT, "127.0.0.1", 10000)
TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def read(name: str) -> str:
    return (DATA / name).read_bytes().decode()


def blocks(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Session lines and per-m-line lines of a CRLF SDP."""
    session: list[str] = []
    media: list[list[str]] = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        elif line:
            session.append(line)
    return session, [[line for line in block if line] for block in media]


def join(session: list[str], media: list[list[str]]) -> str:
    return "\r\n".join(session + [line for block in media for line in block]) + "\r\n"


def with_mid(block: list[str], mid: str) -> list[str]:
    return [f"a=mid:{mid}" if line.startswith("a=mid:") else line for line in block]


def chrome_offer_with_slots(slots: int) -> str:
    """Chrome's real offer reshaped to the protocol: mic, camera, then recvonly audio+video pairs.

    The recvonly audio m-line is Chrome's audio m-line with its direction flipped and its
    msid/ssrc lines dropped; the recvonly video m-line is Chrome's own recvonly video (mid 2).
    """
    session, (audio, video, recv_video) = blocks(read(CHROME))
    recv_audio = [
        "a=recvonly" if line == "a=sendonly" else line
        for line in audio
        if not line.startswith(("a=msid:", "a=ssrc:"))
    ]
    media = [audio, video]
    for _ in range(slots):
        media += [with_mid(recv_audio, str(len(media))), with_mid(recv_video, str(len(media) + 1))]
    mids = " ".join(str(i) for i in range(len(media)))
    session = [f"a=group:BUNDLE {mids}" if s.startswith("a=group:") else s for s in session]
    return join(session, media)


def sources(negotiation: Negotiation) -> dict[str, SlotSource]:
    """What the bridge's Endpoint.slot_sources() gives: one stream id per slot."""
    out: dict[str, SlotSource] = {}
    for i, (audio, video) in enumerate(negotiation.slots):
        out[audio.mid] = SlotSource(1000 + i, f"cname-{i}", f"slot-{i}", f"slot-{i}-audio")
        out[video.mid] = SlotSource(2000 + i, f"cname-{i}", f"slot-{i}", f"slot-{i}-video")
    if negotiation.screen_slot is not None:
        out[negotiation.screen_slot.mid] = SlotSource(3000, "cname-s", "screen", "screen-video")
    return out


def answer_for(sdp: str, max_slots: int = 9, local: LocalTransport = LOCAL) -> tuple[Offer, str]:
    offer = parse_offer(sdp)
    negotiation = negotiate(offer, max_slots=max_slots)
    return offer, build_answer(offer, negotiation, local, sources(negotiation), session_id=42)


def parse_answer(answer: str) -> Offer:
    # Our parser is offer-side and insists on actpass/active; the answer is passive by design.
    assert answer.count("a=setup:passive") == answer.count("a=ice-ufrag:")
    return parse_offer(answer.replace("a=setup:passive", "a=setup:active"))


# -- parse_offer -------------------------------------------------------------------------------


def test_parse_chrome_simulcast_offer() -> None:
    offer = parse_offer(read(CHROME))
    assert offer.ice_ufrag == "Lfa+"
    assert offer.ice_pwd == "SJZCV7C43BU1MiSu/JW3CQKg"
    assert offer.fingerprint_algorithm == "sha-256"
    assert offer.fingerprint.startswith("C1:F6:28:1C:") and offer.fingerprint.endswith(":17:7E")
    assert offer.setup == "actpass"
    assert offer.bundle == ("0", "1", "2")
    assert not offer.ice_lite
    audio, video, recv = offer.media
    assert [m.index for m in offer.media] == [0, 1, 2]
    assert (audio.kind, audio.mid, audio.direction, audio.port) == ("audio", "0", "sendonly", 42043)
    assert audio.protocol == "UDP/TLS/RTP/SAVPF" and audio.rtcp_mux
    assert audio.raw_formats == ("111", "63", "9", "0", "8", "13", "110", "126")
    assert audio.ssrcs == (659610133,)
    opus = audio.codecs[0]
    assert (opus.payload_type, opus.name, opus.clock_rate, opus.channels) == (111, "opus", 48000, 2)
    assert opus.fmtp == "minptime=10;useinbandfec=1"
    assert opus.rtcp_fb == ("transport-cc",)
    assert audio.extmaps[EXT_AUDIO_LEVEL] == 1 and audio.extmaps[EXT_MID] == 4
    assert audio.msid is not None and audio.msid.startswith("20daae52-")

    assert (video.mid, video.direction, video.rids, video.ssrcs) == (
        "1",
        "sendonly",
        ("l", "m", "h"),
        (),
    )
    vp8, rtx = video.codecs[:2]
    assert (vp8.payload_type, vp8.name, vp8.clock_rate, vp8.channels, vp8.fmtp) == (
        96,
        "VP8",
        90000,
        None,
        None,
    )
    assert vp8.rtcp_fb == ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
    assert (rtx.payload_type, rtx.name, rtx.fmtp) == (97, "rtx", "apt=96")
    assert video.extmaps[EXT_ABS_SEND_TIME] == 2
    assert video.extmaps[EXT_MID] == 4
    assert video.extmaps[EXT_RID] == 10 and video.extmaps[EXT_RRID] == 11
    assert len(video.extmaps) == 13

    assert (recv.kind, recv.mid, recv.direction, recv.msid, recv.ssrcs) == (
        "video",
        "2",
        "recvonly",
        None,
        (),
    )
    assert recv.rids == () and recv.codecs[-1].name == "flexfec-03"


def test_parse_chrome_screenshare_fid_group() -> None:
    offer = parse_offer(read(SCREENSHARE))
    (video,) = offer.media
    assert offer.bundle == ("0",)
    assert video.fid_groups == ((88555891, 4193679709),)
    assert video.ssrcs == (88555891, 4193679709)
    assert video.extmaps[EXT_MID] == 9 and video.extmaps[EXT_RRID] == 11


def test_parse_aiortc_offer_picks_sha256_of_several_fingerprints() -> None:
    offer = parse_offer(read(AIORTC_TO_CHROME))
    assert (offer.ice_ufrag, offer.setup) == ("O0pT", "actpass")
    assert offer.fingerprint_algorithm == "sha-256"
    assert offer.fingerprint.startswith("09:82:4D:D8")
    audio, video = offer.media
    assert audio.direction == video.direction == "sendrecv"
    assert audio.port == video.port == 44651
    assert (audio.codecs[0].name, audio.codecs[0].payload_type, audio.codecs[0].fmtp) == (
        "opus",
        96,
        None,
    )
    assert audio.extmaps == {EXT_MID: 1, EXT_AUDIO_LEVEL: 2}
    assert video.codecs[0].rtcp_fb == ("nack", "nack pli", "goog-remb")
    assert video.fid_groups == ((665144362, 4175701952),)


def test_parse_accepts_lf_line_endings() -> None:
    assert parse_offer(read(CHROME).replace("\r\n", "\n")) == parse_offer(read(CHROME))


def test_parse_session_level_transport_and_media_level_precedence() -> None:
    session, media = blocks(read(AIORTC_TO_CHROME))
    moved = ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:")
    stripped = [[line for line in b if not line.startswith(moved)] for b in media]
    extra = ["a=ice-ufrag:sess", "a=ice-pwd:sessionpasswordsessionpw", "a=setup:active"]
    extra.append("a=fingerprint:sha-256 " + FINGERPRINT)
    offer = parse_offer(join(session + extra, stripped))
    assert (offer.ice_ufrag, offer.setup, offer.fingerprint) == ("sess", "active", FINGERPRINT)
    # Media-level values of the first bundled m-line win over the session level (Chrome repeats
    # them per m-line).
    offer = parse_offer(join(session + extra, media))
    assert (offer.ice_ufrag, offer.setup) == ("O0pT", "actpass")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: "", "no v=0"),
        (lambda s: "hello\r\nworld\r\n", "no v=0"),
        (lambda s: s.split("m=")[0], "no m-lines"),
        (
            lambda s: "\r\n".join(x for x in s.split("\r\n") if "ice-ufrag" not in x),
            "no a=ice-ufrag",
        ),
        (lambda s: "\r\n".join(x for x in s.split("\r\n") if "ice-pwd" not in x), "a=ice-pwd"),
        (
            lambda s: "\r\n".join(x for x in s.split("\r\n") if "fingerprint" not in x),
            "no a=fingerprint",
        ),
        (lambda s: s.replace("a=setup:actpass", "a=setup:passive"), "a=setup:passive"),
        (lambda s: s.replace("a=mid:1\r\n", ""), "no m-line has a=mid:1"),
        (lambda s: s.replace("a=mid:1\r\n", "a=mid:0\r\n"), "duplicate a=mid"),
        (lambda s: s.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:abc opus/48000/2"), "a=rtpmap"),
        (lambda s: s.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus"), "a=rtpmap"),
        (lambda s: s.replace("a=extmap:4 urn", "a=extmap:x urn"), "a=extmap"),
        (lambda s: s.replace("a=ssrc:659610133 cname", "a=ssrc:-1 cname"), "a=ssrc"),
        (lambda s: s.replace("m=audio 42043 UDP", "m=audio x UDP"), "port in m-line 0"),
        (
            lambda s: s.replace(
                "m=audio 42043 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "m=audio 9"
            ),
            "m-line 0",
        ),
        (lambda s: s.replace("a=ice-pwd:SJZCV7C43BU1MiSu/JW3CQKg", "a=ice-pwd:short"), "ice-pwd"),
        (lambda s: s.replace("a=ice-ufrag:Lfa+", "a=ice-ufrag:a b"), "ice-ufrag"),
        (lambda s: s.replace("sha-256 C1:F6", "sha-256 XX:F6"), "malformed a=fingerprint"),
        (lambda s: s.replace("c=IN IP4", "cIN IP4"), "malformed SDP line"),
    ],
)
def test_parse_errors(edit: object, message: str) -> None:
    assert callable(edit)
    with pytest.raises(SdpError, match=message):
        parse_offer(edit(read(CHROME)))


# -- negotiate -----------------------------------------------------------------------------------


def test_negotiate_chrome_simulcast_offer() -> None:
    negotiation = negotiate(parse_offer(read(CHROME)), max_slots=9)
    audio, video = negotiation.audio, negotiation.video
    assert audio is not None and video is not None
    assert (audio.mid, audio.kind, audio.payload_type, audio.clock_rate, audio.channels) == (
        "0",
        "audio",
        111,
        48000,
        2,
    )
    assert audio.fmtp == "minptime=10;useinbandfec=1"
    assert audio.rtcp_fb == ("transport-cc",)  # uplink estimation (bridge/bwe.py)
    assert audio.extmaps == {EXT_AUDIO_LEVEL: 1, EXT_MID: 4, TWCC: 3}  # not abs-send-time
    assert audio.ssrcs == (659610133,)
    assert (video.mid, video.payload_type, video.clock_rate, video.fmtp) == ("1", 96, 90000, None)
    assert video.rtcp_fb == ("nack", "nack pli", "ccm fir", "transport-cc")
    assert video.extmaps == {
        EXT_ABS_SEND_TIME: 2, EXT_MID: 4, EXT_RID: 10, EXT_RRID: 11, TWCC: 3
    }
    assert video.rids == ("l", "m", "h") and video.ssrcs == ()
    # mid 2 is a recvonly video with no recvonly audio before it: the screen slot.
    assert negotiation.slots == () and negotiation.rejected == ()
    assert negotiation.screen_slot is not None and negotiation.screen_slot.mid == "2"


def test_negotiate_chrome_offer_with_slots_and_cap() -> None:
    offer = parse_offer(chrome_offer_with_slots(3))
    assert [m.direction for m in offer.media] == ["sendonly", "sendonly"] + ["recvonly"] * 6
    negotiation = negotiate(offer, max_slots=9)
    assert negotiation.rejected == ()
    assert [(a.mid, v.mid) for a, v in negotiation.slots] == [("2", "3"), ("4", "5"), ("6", "7")]
    for audio, video in negotiation.slots:
        assert (audio.kind, audio.payload_type, audio.extmaps) == (
            "audio",
            111,
            {EXT_AUDIO_LEVEL: 1, TWCC: 3, EXT_MID: 4},
        )
        assert audio.rtcp_fb == ("transport-cc",)
        assert (video.kind, video.payload_type, video.rtcp_fb) == (
            "video",
            96,
            # send-side estimation from transport-wide feedback (sendside.py), REMB kept
            ("nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"),
        )
        # no rid/rrid; the bridge's own transport-wide numbers on what it sends
        assert video.extmaps == {EXT_ABS_SEND_TIME: 2, TWCC: 3, EXT_MID: 4}
        assert audio.ssrcs == video.ssrcs == ()

    capped = negotiate(offer, max_slots=2)
    assert len(capped.slots) == 2 and capped.rejected == (6, 7)
    none = negotiate(offer, max_slots=0)
    assert none.slots == () and none.rejected == (2, 3, 4, 5, 6, 7)
    assert none.audio == negotiation.audio and none.video == negotiation.video


def test_negotiate_aiortc_offer() -> None:
    offer = parse_offer(read(AIORTC_SLOTS))
    negotiation = negotiate(offer, max_slots=9)
    audio, video = negotiation.audio, negotiation.video
    assert audio is not None and video is not None
    assert (audio.payload_type, audio.fmtp, audio.extmaps) == (
        96,
        None,
        {EXT_MID: 1, EXT_AUDIO_LEVEL: 2},
    )
    assert (video.payload_type, video.rtcp_fb) == (97, ("nack", "nack pli"))  # no goog-remb
    assert video.extmaps == {EXT_MID: 1, EXT_ABS_SEND_TIME: 3}
    # The RTX SSRC of the FID group is left out: RTX is not negotiated.
    assert offer.media[1].fid_groups and video.ssrcs == (offer.media[1].fid_groups[0][0],)
    assert [(a.mid, v.mid) for a, v in negotiation.slots] == [("2", "3"), ("4", "5")]
    assert negotiation.rejected == ()
    for media in (audio, video, *[m for pair in negotiation.slots for m in pair]):
        assert TWCC not in media.extmaps  # aiortc offers no transport-wide numbers
        assert "transport-cc" not in media.rtcp_fb
    for _slot_audio, slot_video in negotiation.slots:
        assert "goog-remb" in slot_video.rtcp_fb  # aiortc estimates what it receives


def test_negotiate_sendrecv_offer() -> None:
    negotiation = negotiate(parse_offer(read(AIORTC_TO_CHROME)), max_slots=9)
    assert negotiation.audio is not None and negotiation.audio.payload_type == 96
    assert negotiation.video is not None and negotiation.video.payload_type == 97


def _edit_block(sdp: str, index: int, old: str, new: str) -> str:
    session, media = blocks(sdp)
    media[index] = [new if line == old else line for line in media[index]]
    return join(session, media)


def test_negotiate_sending_audio_without_opus_is_rejected() -> None:
    sdp = _edit_block(read(AIORTC_SLOTS), 0, "a=rtpmap:96 opus/48000/2", "a=rtpmap:96 foo/48000/2")
    negotiation = negotiate(parse_offer(sdp), max_slots=9)
    assert negotiation.audio is None and negotiation.video is not None
    assert negotiation.rejected == (0,) and len(negotiation.slots) == 2


def test_negotiate_slot_without_codec_rejects_the_pair() -> None:
    sdp = _edit_block(read(AIORTC_SLOTS), 3, "a=rtpmap:97 VP8/90000", "a=rtpmap:97 VP9/90000")
    negotiation = negotiate(parse_offer(sdp), max_slots=9)
    assert [(a.mid, v.mid) for a, v in negotiation.slots] == [("4", "5")]
    assert negotiation.rejected == (2, 3)


def test_negotiate_unpaired_recvonly_and_extra_mlines() -> None:
    session, media = blocks(read(AIORTC_SLOTS))
    # Order: mic, camera, recv audio, recv audio, recv video, recv video, a 2nd camera, data.
    datachannel = [
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=mid:9",
        "a=sctp-port:5000",
    ]
    media = [
        media[0],
        media[1],
        media[2],
        with_mid(media[4], "6"),
        media[3],
        media[5],
        with_mid(media[1], "7"),
        datachannel,
    ]
    session = ["a=group:BUNDLE 0 1 2 6 3 5 7 9" if s.startswith("a=group") else s for s in session]
    offer = parse_offer(join(session, media))
    negotiation = negotiate(offer, max_slots=9)
    assert [(a.mid, v.mid) for a, v in negotiation.slots] == [("6", "3")]
    # 2: recvonly audio followed by audio; 5: recvonly video without audio: the screen slot;
    # 6: a second sending video: the screen share; 7: application.
    assert negotiation.rejected == (2, 7)
    assert negotiation.screen_slot is not None and negotiation.screen_slot.mid == "5"
    assert negotiation.screen is not None and negotiation.screen.mid == "7"
    answer = build_answer(offer, negotiation, LOCAL, sources(negotiation), session_id=1)
    assert (
        "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:9\r\n"
        in answer
    )


def test_negotiate_rejects_mlines_outside_bundle_or_without_rtcp_mux() -> None:
    session, media = blocks(read(AIORTC_SLOTS))
    session = ["a=group:BUNDLE 0 2 3 4 5" if s.startswith("a=group") else s for s in session]
    media[2] = [line for line in media[2] if line != "a=rtcp-mux"]
    negotiation = negotiate(parse_offer(join(session, media)), max_slots=9)
    # 1 outside the BUNDLE group, 2 without rtcp-mux; 3, a recvonly video left without its
    # audio, is taken as the screen slot.
    assert negotiation.video is None and negotiation.rejected == (1, 2)
    assert negotiation.screen_slot is not None and negotiation.screen_slot.mid == "3"
    assert [(a.mid, v.mid) for a, v in negotiation.slots] == [("4", "5")]


def test_negotiate_nothing_usable() -> None:
    sdp = read(AIORTC_TO_CHROME).replace("opus/48000", "foo/48000").replace("VP8/", "VP9/")
    with pytest.raises(
        SdpError, match=r"no usable m-line: m-line 0 \(audio\): audio m-line offers no opus"
    ):
        negotiate(parse_offer(sdp), max_slots=9)
    sdp = read(AIORTC_TO_CHROME).replace("a=sendrecv", "a=inactive")
    with pytest.raises(SdpError, match="direction inactive"):
        negotiate(parse_offer(sdp), max_slots=9)
    sdp = read(AIORTC_TO_CHROME).replace("a=group:BUNDLE 0 1\r\n", "")
    with pytest.raises(SdpError, match="not in the BUNDLE group"):
        negotiate(parse_offer(sdp), max_slots=9)


def test_negotiate_rejects_lite_peer_and_non_sha256_fingerprint() -> None:
    sdp = read(CHROME).replace("a=extmap-allow-mixed\r\n", "a=extmap-allow-mixed\r\na=ice-lite\r\n")
    with pytest.raises(SdpError, match="ICE-lite"):
        negotiate(parse_offer(sdp), max_slots=9)
    sha1 = ":".join(["AB"] * 20)
    sdp = "\r\n".join(
        f"a=fingerprint:sha-1 {sha1}" if line.startswith("a=fingerprint:") else line
        for line in read(CHROME).split("\r\n")
    )
    offer = parse_offer(sdp)
    assert (offer.fingerprint_algorithm, offer.fingerprint) == ("sha-1", sha1)
    with pytest.raises(SdpError, match="sha-256"):
        negotiate(offer, max_slots=9)


# -- build_answer ----------------------------------------------------------------------------------


def test_answer_for_aiortc_offer() -> None:
    offer, answer = answer_for(read(AIORTC_SLOTS))
    assert answer.endswith("\r\n") and "\n" not in answer.replace("\r\n", "")
    lines = answer.split("\r\n")
    assert lines[:7] == [
        "v=0",
        "o=- 42 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1 2 3 4 5",
        "a=ice-lite",
        "a=msid-semantic: WMS *",
    ]
    parsed = parse_answer(answer)
    assert parsed.ice_lite and parsed.bundle == offer.bundle
    assert (parsed.ice_ufrag, parsed.ice_pwd, parsed.fingerprint) == (
        LOCAL.ice_ufrag,
        LOCAL.ice_pwd,
        FINGERPRINT,
    )
    assert [m.direction for m in parsed.media] == ["recvonly", "recvonly"] + ["sendonly"] * 4
    assert [m.mid for m in parsed.media] == [m.mid for m in offer.media]
    for m in parsed.media:
        assert (m.port, m.protocol, m.rtcp_mux) == (10000, "UDP/TLS/RTP/SAVPF", True)
        assert m.raw_formats == tuple(str(c.payload_type) for c in m.codecs)
    # One codec each; video also gets RTX (RFC 4588), which aiortc offers: on the slots for
    # what the bridge sends, on the camera for what the bridge asks it to send again.
    assert [len(m.codecs) for m in parsed.media] == [1, 2, 1, 2, 1, 2]
    assert [m.codecs[1].fmtp for m in parsed.media[1::2]] == ["apt=97"] * 3
    assert [m.codecs[0].name for m in parsed.media] == ["opus", "VP8"] * 3
    assert parsed.media[1].codecs[0].rtcp_fb == ("nack", "nack pli")
    assert parsed.media[0].extmaps == {EXT_MID: 1, EXT_AUDIO_LEVEL: 2}
    assert parsed.media[3].extmaps == {EXT_MID: 1, EXT_ABS_SEND_TIME: 3}
    # Sending sections carry no SSRCs; slot sections carry the bridge's fixed ones and msid.
    assert parsed.media[0].ssrcs == parsed.media[1].ssrcs == ()
    assert parsed.media[0].msid is None
    assert [m.ssrcs for m in parsed.media[2:]] == [(1000,), (2000,), (1001,), (2001,)]
    assert [m.msid for m in parsed.media[2:]] == [
        "slot-0 slot-0-audio",
        "slot-0 slot-0-video",
        "slot-1 slot-1-audio",
        "slot-1 slot-1-video",
    ]
    assert "a=ssrc:2001 cname:cname-1\r\na=ssrc:2001 msid:slot-1 slot-1-video\r\n" in answer
    # One host candidate, repeated in every accepted m-line (aiortc max-bundle reads the last).
    _, media = blocks(answer)
    for section in media:
        assert "a=candidate:1 1 udp 2130706431 127.0.0.1 10000 typ host" in section
        assert sum(line.startswith("a=candidate:") for line in section) == 1
        assert "a=end-of-candidates" in section
    assert "c=IN IP4 127.0.0.1" in media[5] and "a=rtcp:10000 IN IP4 127.0.0.1" in media[5]


def test_answer_for_chrome_offer() -> None:
    _, answer = answer_for(chrome_offer_with_slots(2))
    parsed = parse_answer(answer)
    assert parsed.bundle == ("0", "1", "2", "3", "4", "5")
    assert answer.count("a=fmtp:111 minptime=10;useinbandfec=1\r\n") == 3  # opus fmtp copied
    assert "a=fmtp:96" not in answer  # none for VP8
    assert answer.count("a=rtcp-fb:96 ccm fir") == 3
    # RTX bound to VP8 96 (RFC 4588 §8.6) on the slots (what the bridge sends) and on the
    # camera (its retransmissions when the bridge NACKs it)
    assert answer.count("a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n") == 3
    assert "m=video 10000 UDP/TLS/RTP/SAVPF 96 97\r\n" in answer
    # transport-wide feedback both ways: the bridge reports on what it receives and the
    # receiver on what the bridge sends (every m-line); REMB stays offered on the slots
    assert answer.count("a=rtcp-fb:96 goog-remb") == 2
    assert answer.count("a=rtcp-fb:96 transport-cc") == 3
    assert answer.count("a=rtcp-fb:111 transport-cc") == 3
    assert answer.count(f"a=extmap:3 {TWCC}") == 6
    for unwanted in (
        " red/",
        "ulpfec",
    ):
        assert unwanted not in answer
    # The camera's three layers are accepted as offered (RFC 8853 §5.3); only there.
    _, media = blocks(answer)
    assert media[1][-0:] and "a=simulcast:recv l;m;h" in media[1]
    assert [x for x in media[1] if x.startswith("a=rid:")] == [
        "a=rid:l recv", "a=rid:m recv", "a=rid:h recv"]
    assert answer.count("a=simulcast:") == 1
    assert parsed.media[1].extmaps == {
        EXT_ABS_SEND_TIME: 2, EXT_MID: 4, EXT_RID: 10, EXT_RRID: 11, TWCC: 3
    }
    assert parsed.media[3].extmaps == {EXT_ABS_SEND_TIME: 2, EXT_MID: 4, TWCC: 3}


def test_answer_rejected_mlines_and_chrome_lonely_recvonly_as_screen_slot() -> None:
    offer, answer = answer_for(read(CHROME))
    assert "a=group:BUNDLE 0 1 2\r\n" in answer
    _, media = blocks(answer)
    assert "a=sendonly" in media[2] and "a=ssrc:3000 msid:screen screen-video" in media[2]
    offer, answer = answer_for(chrome_offer_with_slots(2), max_slots=1)
    parsed = parse_answer(answer)
    assert parsed.bundle == ("0", "1", "2", "3")
    assert [m.port for m in parsed.media] == [10000] * 4 + [0, 0]
    assert [m.direction for m in parsed.media[4:]] == ["inactive", "inactive"]
    assert [m.mid for m in parsed.media] == [m.mid for m in offer.media]


def test_answer_ipv6() -> None:
    local = LocalTransport(LOCAL.ice_ufrag, LOCAL.ice_pwd, FINGERPRINT.lower(), "2001:db8::7", 443)
    _, answer = answer_for(read(AIORTC_SLOTS), local=local)
    assert "o=- 42 2 IN IP6 2001:db8::7\r\n" in answer
    assert "c=IN IP6 2001:db8::7\r\n" in answer and "c=IN IP4" not in answer
    assert "a=rtcp:443 IN IP6 2001:db8::7\r\n" in answer
    assert "a=candidate:1 1 udp 2130706431 2001:db8::7 443 typ host\r\n" in answer
    assert f"a=fingerprint:sha-256 {FINGERPRINT}\r\n" in answer


def test_answer_needs_a_source_per_slot() -> None:
    offer = parse_offer(read(AIORTC_SLOTS))
    negotiation = negotiate(offer, max_slots=9)
    with pytest.raises(ValueError, match="SlotSource"):
        build_answer(offer, negotiation, LOCAL, {}, session_id=1)


def test_media_section_type_is_public() -> None:
    assert isinstance(parse_offer(read(CHROME)).media[0], MediaSection)


# -- a real aiortc peer accepts the answer -------------------------------------------------------


@pytest.fixture
def loopback_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    )


@pytest.mark.usefixtures("loopback_candidates")
@pytest.mark.parametrize(
    "policy", [RTCBundlePolicy.MAX_BUNDLE, RTCBundlePolicy.BALANCED, RTCBundlePolicy.MAX_COMPAT]
)
async def test_aiortc_accepts_answer(policy: RTCBundlePolicy) -> None:
    slots = 2
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=policy))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver("video", direction="sendonly")
        for _ in range(slots):
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = parse_offer(pc.localDescription.sdp)
        negotiation = negotiate(offer, max_slots=9)
        assert len(negotiation.slots) == slots and negotiation.rejected == ()
        answer = build_answer(offer, negotiation, LOCAL, sources(negotiation), session_id=7)

        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        assert pc.signalingState == "stable"
        transceivers = pc.getTransceivers()
        assert [t.direction for t in transceivers] == ["sendonly"] * 2 + ["recvonly"] * 4
        assert [t.currentDirection for t in transceivers] == ["sendonly"] * 2 + ["recvonly"] * 4
        assert [t.mid for t in transceivers] == ["0", "1", "2", "3", "4", "5"]
        # aiortc kept only the codecs we answered (VP8 and its RTX, for the bridge's NACKs),
        # and the slots' msid track ids.
        assert [c.mimeType for c in transceivers[1]._codecs] == ["video/VP8", "video/rtx"]
        assert [t.receiver.track.id for t in transceivers[2:]] == [
            "slot-0-audio",
            "slot-0-video",
            "slot-1-audio",
            "slot-1-video",
        ]
        remote = pc.remoteDescription
        assert remote is not None and remote.type == "answer"  # aiortc re-serialises the SDP
    finally:
        await pc.close()


def test_bundle_only_port_zero_is_usable() -> None:
    # RFC 8843 §6: a port-0 m-line listed in the BUNDLE group is bundle-only, not disabled.
    sdp = _edit_block(
        read(AIORTC_SLOTS),
        5,
        blocks(read(AIORTC_SLOTS))[1][5][0],
        "m=video 0 UDP/TLS/RTP/SAVPF 97 98 99 100 101 102",
    )
    offer = parse_offer(sdp)
    assert offer.media[5].port == 0
    assert len(negotiate(offer, max_slots=9).slots) == 2


def test_mangled_offers_raise_only_sdp_error() -> None:
    rng = random.Random(8829)
    bases = [read(CHROME), read(SCREENSHARE), read(AIORTC_TO_CHROME), read(AIORTC_SLOTS)]
    junk = ["", " ", ":", "/", "x", "-1", "²", "99999999999", "a=", "m=", "*"]
    for _ in range(3000):
        lines = rng.choice(bases).split("\r\n")
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + rng.choice(junk) + lines[i][cut + rng.randint(0, 3) :]
        try:
            offer = parse_offer("\r\n".join(lines))
            negotiation = negotiate(offer, max_slots=rng.randint(0, 2))
            build_answer(offer, negotiation, LOCAL, sources(negotiation), session_id=1)
        except SdpError:
            pass
