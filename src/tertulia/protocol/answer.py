"""The bridge's SDP answer to a client's offer (JSEP, RFC 8829 §5.3.1).

Split from sdp.py (parsing and negotiation) to keep each module small; pure, no I/O.
"""

from __future__ import annotations

import ipaddress

from tertulia.protocol.sdp import (
    PROTOCOL,
    LocalTransport,
    NegotiatedMedia,
    Negotiation,
    Offer,
    SdpError,
    SlotSource,
)


def _rtpmap(n: NegotiatedMedia, name: str) -> str:
    channels = f"/{n.channels}" if n.channels is not None else ""
    return f"a=rtpmap:{n.payload_type} {name}/{n.clock_rate}{channels}"


def build_answer(
    offer: Offer,
    negotiation: Negotiation,
    local: LocalTransport,
    slot_sources: dict[str, SlotSource],
    *,
    session_id: int,
) -> str:
    """The bridge's SDP answer (JSEP, RFC 8829 §5.3.1), CRLF-terminated.

    Every offered m-line appears, in order. Accepted ones all carry the bridge's address and
    port (RFC 8843 §7.3), its ICE credentials, ``a=setup:passive`` (RFC 5763 §5) and the
    client's payload types and extmap ids, and the one host candidate. The candidate is repeated
    in every accepted m-line, not only the answerer-tagged one (RFC 8843 §7.1.3 allows either):
    aiortc with max-bundle takes the candidates of the *last* bundled m-line. Sending sections
    are answered recvonly, slot sections sendonly with fixed SSRCs and ``a=msid``. A camera
    offered with several rids gets them back as ``recv`` with ``a=simulcast:recv`` (RFC 8853
    §5.3): the client then sends every layer and the bridge picks per receiver. Rejected
    m-lines get port 0 and ``a=inactive`` (RFC 3264 §6); Chrome stops
    those transceivers, but aiortc 1.16 refuses such an answer (it wants ICE credentials in
    every m-line), so aiortc clients must offer no more than ``max_slots`` pairs.
    """
    ip_type = "IP6" if ipaddress.ip_address(local.ip).version == 6 else "IP4"
    accepted: dict[str, tuple[NegotiatedMedia, str]] = {}
    for sent in (negotiation.audio, negotiation.video, negotiation.screen):
        if sent is not None:
            accepted[sent.mid] = (sent, "recvonly")
    for pair in negotiation.slots:
        for slot_media in pair:
            accepted[slot_media.mid] = (slot_media, "sendonly")
    if negotiation.screen_slot is not None:
        accepted[negotiation.screen_slot.mid] = (negotiation.screen_slot, "sendonly")
    rejected = set(negotiation.rejected)
    bundle = [m.mid for m in offer.media if m.mid in accepted and m.index not in rejected]
    if not bundle:
        raise SdpError("nothing to answer: no m-line was accepted")
    lines = [
        "v=0",
        f"o=- {session_id} 2 IN {ip_type} {local.ip}",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(bundle),
        "a=ice-lite",  # RFC 8445 §5.3, RFC 8839 §5.3: a session-level attribute
        "a=msid-semantic: WMS *",
    ]
    for m in offer.media:
        if m.mid is None or m.mid not in bundle:
            first = m.raw_formats[0] if m.raw_formats else "0"
            lines += [f"m={m.kind} 0 {m.protocol} {first}", "c=IN IP4 0.0.0.0"]
            lines += [f"a=mid:{m.mid}"] if m.mid is not None else []
            lines.append("a=inactive")
            continue
        n, direction = accepted[m.mid]
        codec = next(c for c in m.codecs if c.payload_type == n.payload_type)
        formats = f"{n.payload_type} {n.rtx_payload_type}" if n.rtx_payload_type else (
            f"{n.payload_type}")
        lines += [
            f"m={m.kind} {local.port} {PROTOCOL} {formats}",
            f"c=IN {ip_type} {local.ip}",
            f"a=rtcp:{local.port} IN {ip_type} {local.ip}",
        ]
        lines += [
            f"a=candidate:1 1 udp 2130706431 {local.ip} {local.port} typ host",
            "a=end-of-candidates",
        ]
        lines += [
            f"a=ice-ufrag:{local.ice_ufrag}",
            f"a=ice-pwd:{local.ice_pwd}",
            f"a=fingerprint:sha-256 {local.fingerprint.upper()}",
            "a=setup:passive",
            f"a=mid:{m.mid}",
        ]
        lines += [f"a=extmap:{ext_id} {uri}" for uri, ext_id in n.extmaps.items()]
        lines.append(f"a={direction}")
        if direction == "recvonly" and n.kind == "video" and len(n.rids) > 1:
            # RFC 8853 §5.3 / RFC 8851 §4: accept the client's layers as offered
            lines += [f"a=rid:{rid} recv" for rid in n.rids]
            lines.append("a=simulcast:recv " + ";".join(n.rids))
        source = slot_sources.get(m.mid) if direction == "sendonly" else None
        if direction == "sendonly" and source is None:
            raise ValueError(f"no SlotSource for slot mid {m.mid!r}")
        if source is not None:
            lines.append(f"a=msid:{source.stream_id} {source.track_id}")  # RFC 8830 §2
        lines += ["a=rtcp-mux", _rtpmap(n, codec.name)]
        if n.fmtp:
            lines.append(f"a=fmtp:{n.payload_type} {n.fmtp}")
        lines += [f"a=rtcp-fb:{n.payload_type} {fb}" for fb in n.rtcp_fb]
        if n.rtx_payload_type is not None:  # RFC 4588 §8.6
            lines += [f"a=rtpmap:{n.rtx_payload_type} rtx/{n.clock_rate}",
                      f"a=fmtp:{n.rtx_payload_type} apt={n.payload_type}"]
        if source is not None:  # RFC 5576 §4.1
            ssrcs = [source.ssrc]
            if source.rtx_ssrc is not None and n.rtx_payload_type is not None:
                ssrcs.append(source.rtx_ssrc)
                lines.append(f"a=ssrc-group:FID {source.ssrc} {source.rtx_ssrc}")  # §4.2
            for ssrc in ssrcs:
                lines += [
                    f"a=ssrc:{ssrc} cname:{source.cname}",
                    f"a=ssrc:{ssrc} msid:{source.stream_id} {source.track_id}",
                ]
    return "\r\n".join(lines) + "\r\n"
