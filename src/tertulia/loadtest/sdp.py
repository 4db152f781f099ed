"""The synthetic participant's one offer and what it needs from the bridge's answer (pure).

The offer has the web client's shape (docs/protocol.md, "negotiate once"): a sendonly
microphone (Opus with the RFC 6464 audio level and mid extensions), a sendonly camera with
three simulcast layers ``l;m;h`` announced with ``a=rid``/``a=simulcast`` (RFC 8851, RFC 8853)
and no ``a=ssrc`` lines, exactly as Chromium offers it, then ``slots`` recvonly audio+video
pairs. All bundled with rtcp-mux; ICE full agent, DTLS ``actpass``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tertulia.loadtest.media import LAYERS
from tertulia.protocol.sdp import EXT_AUDIO_LEVEL, EXT_MID, EXT_RID, EXT_RRID

OPUS_PT = 111
VP8_PT = 96
# extmap ids as Chromium numbers them (tests/data/chrome156-offer-audio-video-simulcast.sdp)
AUDIO_LEVEL_ID, MID_ID, RID_ID, RRID_ID = 1, 4, 10, 11


@dataclass(frozen=True, slots=True)
class OfferParams:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # sha-256, "AB:CD:…"
    audio_ssrc: int
    cname: str
    slots: int
    candidate: tuple[str, int] | None = None  # our host candidate (the bridge needs none)
    session_id: int = 1
    # a single video encoding with this SSRC instead of Chromium's three simulcast layers
    # (as Firefox without simulcast offers it; used by the side-by-side benchmark)
    video_ssrc: int | None = None


def build_offer(p: OfferParams) -> str:
    mids = [str(i) for i in range(2 + 2 * p.slots)]
    lines = ["v=0", f"o=- {p.session_id} 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE " + " ".join(mids), "a=msid-semantic: WMS loadtest"]

    def common(mid: str, kind: str, pt: int) -> list[str]:
        out = [f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0"]
        if p.candidate is not None:
            host, port = p.candidate
            out.append(f"a=candidate:1 1 udp 2122260223 {host} {port} typ host")
            out.append("a=end-of-candidates")
        out += [f"a=ice-ufrag:{p.ice_ufrag}", f"a=ice-pwd:{p.ice_pwd}",
                f"a=fingerprint:sha-256 {p.fingerprint}", "a=setup:actpass", f"a=mid:{mid}"]
        return out

    def audio(mid: str, direction: str) -> list[str]:
        out = common(mid, "audio", OPUS_PT)
        out += [f"a=extmap:{AUDIO_LEVEL_ID} {EXT_AUDIO_LEVEL}", f"a=extmap:{MID_ID} {EXT_MID}",
                f"a={direction}", "a=rtcp-mux", "a=rtcp-rsize",
                f"a=rtpmap:{OPUS_PT} opus/48000/2", f"a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1"]
        return out

    def video(mid: str, direction: str) -> list[str]:
        out = common(mid, "video", VP8_PT)
        out += [f"a=extmap:{MID_ID} {EXT_MID}"]
        simulcast = direction == "sendonly" and p.video_ssrc is None
        if simulcast:
            out += [f"a=extmap:{RID_ID} {EXT_RID}", f"a=extmap:{RRID_ID} {EXT_RRID}"]
        out += [f"a={direction}", "a=rtcp-mux", "a=rtcp-rsize", f"a=rtpmap:{VP8_PT} VP8/90000"]
        out += [f"a=rtcp-fb:{VP8_PT} {fb}" for fb in ("goog-remb", "ccm fir", "nack", "nack pli")]
        if simulcast:
            out += [f"a=rid:{layer.rid} send" for layer in LAYERS]
            out.append("a=simulcast:send " + ";".join(layer.rid for layer in LAYERS))
        return out

    lines += audio("0", "sendonly")
    lines += ["a=msid:loadtest mic", f"a=ssrc:{p.audio_ssrc} cname:{p.cname}",
              f"a=ssrc:{p.audio_ssrc} msid:loadtest mic"]
    lines += video("1", "sendonly")
    lines.append("a=msid:loadtest camera")
    if p.video_ssrc is not None:
        lines += [f"a=ssrc:{p.video_ssrc} cname:{p.cname}",
                  f"a=ssrc:{p.video_ssrc} msid:loadtest camera"]
    for i in range(p.slots):
        lines += audio(mids[2 + 2 * i], "recvonly")
        lines += video(mids[3 + 2 * i], "recvonly")
    return "\r\n".join(lines) + "\r\n"


class AnswerError(ValueError):
    """The bridge's answer lacks something the participant needs."""


@dataclass(frozen=True, slots=True)
class Answer:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str
    ice_lite: bool
    candidate: tuple[str, int]
    slots: tuple[tuple[int, int], ...]  # (audio SSRC, video SSRC) per accepted slot pair


def parse_answer(sdp: str) -> Answer:
    session: dict[str, str] = {}
    sections: list[dict[str, list[str]]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append({"m": [line[2:]]})
        elif line.startswith("a="):
            name, _, value = line[2:].partition(":")
            if sections:
                sections[-1].setdefault(name, []).append(value)
            else:
                session[name] = value

    def first(name: str) -> str:
        for section in sections:
            if name in section:
                return section[name][0]
        if name in session:
            return session[name]
        raise AnswerError(f"answer has no a={name}")

    candidate = first("candidate").split()
    if len(candidate) < 8 or candidate[2].lower() != "udp":
        raise AnswerError("answer has no UDP host candidate")
    slots: list[tuple[int, int]] = []
    pending_audio: int | None = None
    for section in sections:
        kind, port = section["m"][0].split()[:2]
        ssrcs = [int(v.split()[0]) for v in section.get("ssrc", [])]
        if port == "0" or "sendonly" not in section or not ssrcs:
            pending_audio = None
            continue
        if kind == "audio":
            pending_audio = ssrcs[0]
        elif kind == "video" and pending_audio is not None:
            slots.append((pending_audio, ssrcs[0]))
            pending_audio = None
    fingerprint = first("fingerprint").split()
    if len(fingerprint) != 2 or fingerprint[0].lower() != "sha-256":
        raise AnswerError("answer has no sha-256 fingerprint")
    return Answer(
        ice_ufrag=first("ice-ufrag"),
        ice_pwd=first("ice-pwd"),
        fingerprint=fingerprint[1].upper(),
        ice_lite="ice-lite" in session,
        candidate=(candidate[4], int(candidate[5])),
        slots=tuple(slots),
    )
