"""SDP offer parsing, negotiation and answer generation for the bridge (pure, no I/O).

Each client negotiates once (docs/protocol.md, "Design choice: negotiate once, fixed receive
slots"): its offer holds its sending microphone and camera, then ``slots`` recvonly audio+video
pairs, all BUNDLEd on one transport with rtcp-mux. The bridge answers as an ICE-lite agent
(RFC 8445 §2.5, §5.2) with one host candidate, DTLS ``passive`` (RFC 5763 §5) and the client's own
payload types and header-extension ids.

We parse SDP ourselves instead of using ``sdp-transform``: that package is untyped (every value
would be ``Any`` under ``mypy --strict``), it turns numeric-looking tokens such as ``a=mid:0``
into ints (so mid "01" and "1" collide) and it files attributes it does not know under
``invalid``. The handful of attributes needed here take a few lines each to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "EXT_ABS_SEND_TIME",
    "EXT_AUDIO_LEVEL",
    "EXT_MID",
    "EXT_RID",
    "EXT_RRID",
    "OPUS",
    "VP8",
    "Codec",
    "LocalTransport",
    "MediaSection",
    "NegotiatedMedia",
    "Negotiation",
    "Offer",
    "SdpError",
    "SlotSource",
    "negotiate",
    "parse_offer",
]


class SdpError(ValueError):
    """The offer cannot be used; the message names the problem (sent to the client as-is)."""


OPUS, VP8 = "opus", "vp8"
EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
EXT_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
EXT_RRID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
EXT_TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

# Header extensions we accept (RFC 8285 §7: the answer may only list offered ones and keeps the
# offered ids). What clients send carries transport-wide sequence numbers, which the bridge
# reports back (bridge/bwe.py). What the bridge sends carries its own transport-wide sequence
# numbers when the receiver offered them, for send-side estimation from the receiver's
# feedback (bridge/sendside.py), and abs-send-time for receivers that estimate themselves
# (REMB). red and ulpfec are not accepted.
_SEND_EXTS = {
    "audio": (EXT_AUDIO_LEVEL, EXT_MID, EXT_TWCC),
    "video": (EXT_ABS_SEND_TIME, EXT_MID, EXT_RID, EXT_RRID, EXT_TWCC),
}
_SLOT_EXTS = {
    "audio": (EXT_AUDIO_LEVEL, EXT_MID, EXT_TWCC),
    "video": (EXT_ABS_SEND_TIME, EXT_MID, EXT_TWCC),
}
_VIDEO_FB = ("nack", "nack pli", "ccm fir")  # RFC 4585 §4.2, RFC 5104 §7.1
# What the bridge sends (slots) takes transport-wide feedback (draft-holmer-01 §4: rtcp-fb
# transport-cc) where the receiver offered it, else receiver estimates (goog-remb,
# draft-alvestrand-rmcat-remb-03); see bridge/sendside.py and bridge/bwe.py.
_SLOT_VIDEO_FB = (*_VIDEO_FB, "goog-remb", "transport-cc")
_SLOT_AUDIO_FB = ("transport-cc",)
_SEND_FB = {"audio": ("transport-cc",), "video": (*_VIDEO_FB, "transport-cc")}
_WANTED = {"audio": (OPUS, 48000), "video": (VP8, 90000)}  # RFC 7587 §7, RFC 7741 §6.1
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SENDING = ("sendonly", "sendrecv")
PROTOCOL = "UDP/TLS/RTP/SAVPF"  # RFC 5764 §8
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")  # RFC 8839 §5.4 ice-char
_FINGERPRINT = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2})+")  # RFC 8122 §5


@dataclass(frozen=True, slots=True)
class Codec:
    payload_type: int
    name: str  # as written in a=rtpmap, e.g. "VP8"
    clock_rate: int
    channels: int | None
    fmtp: str | None
    rtcp_fb: tuple[str, ...]  # e.g. ("nack", "nack pli", "goog-remb")


@dataclass(frozen=True, slots=True)
class MediaSection:
    index: int
    kind: str  # "audio", "video" or anything else ("application", …)
    mid: str | None
    direction: str
    port: int
    protocol: str
    codecs: tuple[Codec, ...]  # formats that have an a=rtpmap, in m-line order
    extmaps: dict[str, int] = field(hash=False)  # uri -> id (session-level ones included)
    ssrcs: tuple[int, ...]  # from a=ssrc, in order, unique
    fid_groups: tuple[tuple[int, int], ...]  # a=ssrc-group:FID (media, rtx), RFC 4588 §8.1
    rids: tuple[str, ...]  # a=rid:<id> send (RFC 8851)
    rtcp_mux: bool
    msid: str | None
    raw_formats: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Offer:
    ice_ufrag: str
    ice_pwd: str
    fingerprint_algorithm: str  # lower case, e.g. "sha-256"
    fingerprint: str  # upper-case hex with colons
    setup: str  # "actpass" or "active"
    bundle: tuple[str, ...]  # mids of the first a=group:BUNDLE
    media: tuple[MediaSection, ...]
    ice_lite: bool


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    mid: str
    kind: str
    payload_type: int  # the client's PT for opus / VP8
    clock_rate: int
    channels: int | None
    fmtp: str | None
    rtcp_fb: tuple[str, ...]  # accepted feedback (nack, pli, fir, transport-cc, goog-remb)
    extmaps: dict[str, int] = field(hash=False)  # accepted uri -> the client's id
    ssrcs: tuple[int, ...]  # the client's media SSRCs (its RTX SSRCs are in ``fid``)
    rids: tuple[str, ...]  # the client's simulcast rids, lowest resolution first (RFC 8853)
    # RFC 4588 RTX payload type: on a slot, for what the bridge sends; on a sending video,
    # for the retransmissions the client sends when the bridge NACKs it (bridge/rtp/rtx.py)
    rtx_payload_type: int | None = None
    # (media SSRC, RTX SSRC) from a=ssrc-group:FID (RFC 4588 §8.1), when RTX was accepted
    fid: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Negotiation:
    audio: NegotiatedMedia | None  # the client's microphone
    video: NegotiatedMedia | None  # the client's camera
    slots: tuple[tuple[NegotiatedMedia, NegotiatedMedia], ...]  # (audio, video) per receive slot
    rejected: tuple[int, ...]  # m-line indexes answered with port 0
    screen: NegotiatedMedia | None = None  # the client's screen share (a second sending video)
    screen_slot: NegotiatedMedia | None = None  # where the client receives others' screens


@dataclass(frozen=True, slots=True)
class LocalTransport:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # "AB:CD:…", sha-256 of the bridge's DTLS certificate
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class SlotSource:
    ssrc: int
    cname: str
    stream_id: str
    track_id: str
    rtx_ssrc: int | None = None  # RFC 4588 retransmission stream, when RTX was negotiated


# -- parsing -----------------------------------------------------------------------------------

Attrs = list[tuple[str, str]]  # (name, value); value is "" for property attributes


def _int(text: str, what: str, limit: int = 1 << 32) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) >= limit:
        raise SdpError(f"malformed {what}: {text!r}")
    return int(text)


def _first(attrs: Attrs, name: str) -> str | None:
    return next((value for key, value in attrs if key == name), None)


def _parse_media(index: int, mline: str, attrs: Attrs, session: Attrs) -> MediaSection:
    parts = mline.split()
    if len(parts) < 3:
        raise SdpError(f"malformed m-line {index}: {mline!r}")
    kind, port_text, protocol, formats = parts[0], parts[1], parts[2], tuple(parts[3:])
    port = _int(port_text.split("/")[0], f"port in m-line {index}", 1 << 16)
    # RFC 8866 §6.7: media-level direction, else session-level, else sendrecv.
    directions = [key for key, _ in attrs if key in _DIRECTIONS]
    directions += [key for key, _ in session if key in _DIRECTIONS]
    rtpmap: dict[int, tuple[str, int, int | None]] = {}
    fmtp: dict[str, str] = {}
    fb: dict[str, list[str]] = {}
    extmaps: dict[str, int] = {}
    ssrcs: list[int] = []
    fid: list[tuple[int, int]] = []
    rids: list[str] = []
    # RFC 8285 §5: session-level extmaps apply to every m-line; media-level ones come first.
    for key, value in attrs + [a for a in session if a[0] == "extmap"]:
        head, _, rest = value.partition(" ")
        if key == "rtpmap":
            pt = _int(head, f"a=rtpmap payload type in m-line {index}", 128)
            enc = rest.strip().split("/")
            if len(enc) not in (2, 3) or not enc[0]:
                raise SdpError(f"malformed a=rtpmap in m-line {index}: {value!r}")
            channels = _int(enc[2], "a=rtpmap channels") if len(enc) == 3 else None
            rtpmap.setdefault(pt, (enc[0], _int(enc[1], "a=rtpmap clock rate"), channels))
        elif key == "fmtp":
            fmtp.setdefault(head, rest.strip())
        elif key == "rtcp-fb":  # RFC 4585 §4.2, "*" applies to every format
            fb.setdefault(head, []).append(" ".join(rest.split()))
        elif key == "extmap":  # RFC 8285 §8: "<id>[/<direction>] <uri> [<attributes>]"
            ext_id = _int(head.split("/")[0], f"a=extmap id in m-line {index}", 256)
            if rest.split():
                extmaps.setdefault(rest.split()[0], ext_id)
        elif key == "ssrc":  # RFC 5576 §4.1
            ssrc = _int(head, f"a=ssrc in m-line {index}")
            if ssrc not in ssrcs:
                ssrcs.append(ssrc)
        elif key == "ssrc-group" and head == "FID":  # RFC 5576 §4.2, RFC 4588 §8.1
            pair = [_int(s, f"a=ssrc-group:FID in m-line {index}") for s in rest.split()]
            if len(pair) == 2:
                fid.append((pair[0], pair[1]))
        elif key == "rid" and rest.split()[:1] == ["send"]:  # RFC 8851 §4
            rids.append(head)
    codecs = []
    for text in formats:
        if text.isascii() and text.isdigit() and int(text) in rtpmap:
            name, rate, channels = rtpmap[int(text)]
            rtcp_fb = tuple(fb.get("*", []) + fb.get(text, []))
            codecs.append(Codec(int(text), name, rate, channels, fmtp.get(text), rtcp_fb))
    return MediaSection(
        index=index,
        kind=kind,
        mid=_first(attrs, "mid"),
        direction=directions[0] if directions else "sendrecv",
        port=port,
        protocol=protocol,
        codecs=tuple(codecs),
        extmaps=extmaps,
        ssrcs=tuple(ssrcs),
        fid_groups=tuple(fid),
        rids=tuple(rids),
        rtcp_mux=any(key == "rtcp-mux" for key, _ in attrs),
        msid=_first(attrs, "msid"),
        raw_formats=formats,
    )


def parse_offer(sdp: str) -> Offer:
    """Parse a WebRTC offer (Chrome, aiortc, …) into an :class:`Offer`; raises :class:`SdpError`.

    ICE credentials, fingerprint and setup are taken from the offerer-tagged m-line (the first
    mid of a=group:BUNDLE, RFC 8843 §7.2.1; Chrome repeats them in every m-line), else the
    first m-line, and fall back to the session level.
    """
    lines = [line.strip() for line in sdp.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("not an SDP description (no v=0 first line)")
    session: Attrs = []
    blocks: list[tuple[str, Attrs]] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=":  # RFC 8866 §5: <type>=<value>
            raise SdpError(f"malformed SDP line {line[:60]!r}")
        if line[0] == "m":
            blocks.append((line[2:], []))
        elif line[0] == "a":
            name, _, value = line[2:].partition(":")
            (blocks[-1][1] if blocks else session).append((name, value))
    if not blocks:
        raise SdpError("no m-lines")
    media = tuple(_parse_media(i, mline, attrs, session) for i, (mline, attrs) in enumerate(blocks))
    mids = [m.mid for m in media if m.mid is not None]
    if len(set(mids)) != len(mids):  # RFC 5888 §4
        raise SdpError("duplicate a=mid values")
    bundle: tuple[str, ...] = ()
    for value in (v for k, v in session if k == "group"):
        tokens = value.split()
        if tokens[:1] == ["BUNDLE"]:
            bundle = tuple(tokens[1:])
            break
    for mid in bundle:
        if mid not in mids:
            raise SdpError(f"a=group:BUNDLE names mid {mid!r} but no m-line has a=mid:{mid}")
    tagged = next((m for m in media if bundle and m.mid == bundle[0]), media[0])
    scopes = (blocks[tagged.index][1], session)

    def pick(name: str) -> str | None:
        return next((v for scope in scopes if (v := _first(scope, name)) is not None), None)

    ufrag, pwd = pick("ice-ufrag"), pick("ice-pwd")
    if ufrag is None or pwd is None:
        raise SdpError("no a=ice-ufrag / a=ice-pwd")
    if not _ICE_CHARS.fullmatch(ufrag) or not 4 <= len(ufrag) <= 256:  # RFC 8839 §5.4
        raise SdpError(f"malformed a=ice-ufrag {ufrag!r}")
    if not _ICE_CHARS.fullmatch(pwd) or not 22 <= len(pwd) <= 256:
        raise SdpError("malformed a=ice-pwd (RFC 8839 §5.4: 22 to 256 ice-chars)")
    prints: list[str] = []
    for scope in scopes:
        prints = prints or [v for k, v in scope if k == "fingerprint"]
    if not prints:
        raise SdpError("no a=fingerprint")
    # RFC 8122 §5: several fingerprints may be given; the bridge verifies sha-256.
    pairs = [(p.split()[0].lower(), p.split()[1].upper()) for p in prints if len(p.split()) == 2]
    algorithm, digest = ([p for p in pairs if p[0] == "sha-256"] or pairs or [("", "")])[0]
    if not _FINGERPRINT.fullmatch(digest):
        raise SdpError(f"malformed a=fingerprint {prints[0]!r}")
    # RFC 4145 §4: no a=setup in an offer means active; RFC 5763 §5: offers use actpass.
    setup = (pick("setup") or "active").lower()
    if setup not in ("actpass", "active"):
        raise SdpError(f"a=setup:{setup} is not usable: the bridge is DTLS passive (RFC 5763 §5)")
    return Offer(
        ice_ufrag=ufrag,
        ice_pwd=pwd,
        fingerprint_algorithm=algorithm,
        fingerprint=digest,
        setup=setup,
        bundle=bundle,
        media=media,
        ice_lite=any(k == "ice-lite" for k, _ in session),
    )


# -- negotiation -------------------------------------------------------------------------------


def _problem(m: MediaSection, bundle: tuple[str, ...]) -> str | None:
    """Why the bridge cannot use this m-line at all, or None."""
    if m.kind not in ("audio", "video"):
        return f"{m.kind} m-lines are not supported"
    # A port-0 m-line in the BUNDLE group is bundle-only (RFC 8843 §6); outside it, disabled.
    if m.mid is None or m.mid not in bundle:
        return "not in the BUNDLE group (the bridge has one transport, RFC 8843)"
    if m.protocol != PROTOCOL:
        return f"protocol {m.protocol} is not {PROTOCOL}"
    if not m.rtcp_mux:
        return "no a=rtcp-mux (required with BUNDLE, RFC 8843 §9.3)"
    return None


def _accept(m: MediaSection, exts: tuple[str, ...], *, rtx: bool = False,
            slot: bool = False) -> NegotiatedMedia | str:
    """The negotiated parameters of one m-line, or why its codec is missing. With ``rtx``,
    the RTX payload type bound to the codec (``apt``, RFC 4588 §8.6) is accepted too."""
    name, rate = _WANTED[m.kind]
    codec = next((c for c in m.codecs if c.name.lower() == name and c.clock_rate == rate), None)
    if codec is None or m.mid is None:
        return f"{m.kind} m-line offers no {name}"
    rtx_pt = None
    if rtx:
        apt = f"apt={codec.payload_type}"
        rtx_pt = next((c.payload_type for c in m.codecs if c.name.lower() == "rtx"
                       and (c.fmtp or "").replace(" ", "") == apt), None)
    slot_fb = _SLOT_VIDEO_FB if m.kind == "video" else _SLOT_AUDIO_FB
    feedback = slot_fb if slot else _SEND_FB[m.kind]
    rtx_ssrcs = {ssrc for _, ssrc in m.fid_groups}
    return NegotiatedMedia(
        mid=m.mid,
        kind=m.kind,
        payload_type=codec.payload_type,
        clock_rate=codec.clock_rate,
        channels=codec.channels,
        fmtp=codec.fmtp if m.kind == "audio" else None,
        rtcp_fb=tuple(fb for fb in feedback if fb in codec.rtcp_fb),
        # the bridge numbers what it sends only for receivers that give feedback on it
        extmaps={uri: ext_id for uri, ext_id in m.extmaps.items() if uri in exts and not (
            slot and uri == EXT_TWCC and "transport-cc" not in codec.rtcp_fb)},
        ssrcs=tuple(s for s in m.ssrcs if s not in rtx_ssrcs),
        rids=m.rids,
        rtx_payload_type=rtx_pt,
        fid=m.fid_groups if rtx_pt is not None and not slot else (),
    )


def negotiate(offer: Offer, *, max_slots: int) -> Negotiation:
    """Decide which m-lines the bridge accepts (JSEP, RFC 8829 §5.3.1) and with what.

    The first sending (sendonly/sendrecv) audio and video m-lines are the client's microphone
    and camera, a second sending video m-line is its screen share; a recvonly audio m-line
    directly followed by a recvonly video m-line is a receive slot, up to ``max_slots``; one
    recvonly video m-line on its own is the screen slot. Everything else is rejected.
    """
    if offer.ice_lite:  # lite peers never send the checks the bridge learns addresses from
        raise SdpError("the offer is ICE-lite; the bridge is ICE-lite too (RFC 8445 §6.2)")
    if offer.fingerprint_algorithm != "sha-256":
        raise SdpError(f"no sha-256 a=fingerprint (got {offer.fingerprint_algorithm})")
    sending: dict[str, NegotiatedMedia | None] = {}
    slots: list[tuple[NegotiatedMedia, NegotiatedMedia]] = []
    screen_slot: NegotiatedMedia | None = None
    rejected: list[int] = []
    reasons: list[str] = []

    def reject(m: MediaSection, why: str) -> None:
        rejected.append(m.index)
        reasons.append(f"m-line {m.index} ({m.kind}): {why}")

    media, i = offer.media, 0
    while i < len(media):
        m = media[i]
        why = _problem(m, offer.bundle)
        nxt = media[i + 1] if i + 1 < len(media) else None
        if why is None and m.direction in _SENDING:
            role = "screen" if m.kind == "video" and "video" in sending else m.kind
            if role in sending:
                why = f"a second sending {m.kind} m-line" + (" after the screen share" * (
                    role == "screen"))
            else:
                # RTX on a sending video: the bridge asks senders to repeat lost packets
                result = _accept(m, _SEND_EXTS[m.kind], rtx=m.kind == "video")
                sending[role] = None if isinstance(result, str) else result
                why = result if isinstance(result, str) else None
        elif why is None and m.direction == "recvonly":
            if m.kind == "video":
                if screen_slot is None:
                    result = _accept(m, _SLOT_EXTS["video"], rtx=True, slot=True)
                    if isinstance(result, NegotiatedMedia):
                        screen_slot = result
                        i += 1
                        continue
                    why = result
                else:
                    why = "a second screen slot (recvonly video without audio before it)"
            elif (
                nxt is None
                or (nxt.kind, nxt.direction) != ("video", "recvonly")
                or _problem(nxt, offer.bundle) is not None
            ):
                why = "recvonly audio not followed by a usable recvonly video m-line"
            else:
                audio = _accept(m, _SLOT_EXTS["audio"], slot=True)
                video = _accept(nxt, _SLOT_EXTS["video"], rtx=True, slot=True)
                if len(slots) >= max_slots:
                    why = f"more than {max_slots} receive slots"
                elif isinstance(audio, NegotiatedMedia) and isinstance(video, NegotiatedMedia):
                    slots.append((audio, video))
                    i += 2
                    continue
                else:
                    why = audio if isinstance(audio, str) else str(video)
                reject(m, why)
                reject(nxt, why)
                i += 2
                continue
        elif why is None:
            why = f"direction {m.direction}"
        if why is not None:
            reject(m, why)
        i += 1
    audio_media, video_media = sending.get("audio"), sending.get("video")
    if audio_media is None and video_media is None and not slots:
        raise SdpError("no usable m-line: " + "; ".join(reasons))
    return Negotiation(audio_media, video_media, tuple(slots), tuple(rejected),
                       screen=sending.get("screen"), screen_slot=screen_slot)
