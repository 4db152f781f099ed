"""Write the seed corpus in fuzz/corpus/ from the real captures in tests/data.

Run from the repository root: ``python fuzz/make_corpus.py``. The seeds are committed; this
script says where each came from and rebuilds them when the captures change.

- rtp, rtcp: Chromium 156 packets (VP8 simulcast with RTX and header extensions, Opus with
  audio levels; SR/RR/SDES/NACK/PLI/REMB/transport-cc feedback), see tests/data.
- sdp: Chromium and aiortc offers.
- stun: an ICE connectivity check with USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE,
  MESSAGE-INTEGRITY and FINGERPRINT, keyed with the harness's fixed credentials.
- dtls: the flights of a real DTLS 1.2 handshake between pyOpenSSL and our DtlsServer.
- signal: one valid message of every client message type.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path

from aioice import stun
from OpenSSL import SSL

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from fuzz.seeds import CREDS  # noqa: E402
from tertulia.bridge.transport.dtls import (  # noqa: E402
    DtlsCertificate,
    DtlsServer,
    DtlsState,
    pack_datagrams,
    split_records,
)

CORPUS = ROOT / "fuzz" / "corpus"
DATA = ROOT / "tests" / "data"


def write(kind: str, blobs: list[bytes]) -> None:
    folder = CORPUS / kind
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for blob in blobs:
        (folder / hashlib.sha1(blob).hexdigest()).write_bytes(blob)
    print(f"{kind}: {len(blobs)} seeds, {sum(map(len, blobs))} bytes")


def capture(name: str) -> list[bytes]:
    with open(DATA / name) as f:
        return [bytes.fromhex(json.loads(line)["hex"]) for line in f if line.strip()]


def stun_seeds() -> list[bytes]:
    out = []
    for nominate in (False, True):
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{CREDS.local_ufrag}:{CREDS.remote_ufrag}"
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = 0x1234567890ABCDEF
        if nominate:
            request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(CREDS.local_pwd.encode())
        request.add_fingerprint()
        out.append(bytes(request))
    indication = stun.Message(stun.Method.BINDING, stun.Class.INDICATION)
    indication.add_fingerprint()
    out.append(bytes(indication))
    return out


def dtls_seeds() -> list[bytes]:
    server_cert, client_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    server = DtlsServer(server_cert, client_cert.fingerprint)
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(client_cert.cert)
    ctx.use_privatekey(client_cert.key)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    client = SSL.Connection(ctx, None)
    client.set_connect_state()
    seeds: list[bytes] = []
    for _ in range(10):
        with contextlib.suppress(SSL.WantReadError):
            client.do_handshake()
        flight = b""
        while True:
            try:
                flight += client.bio_read(65536)
            except SSL.WantReadError:
                break
        for datagram in pack_datagrams(split_records(flight)) if flight else []:
            seeds.append(datagram)
            for reply in server.feed(datagram):
                seeds.append(reply)
                client.bio_write(reply)
        if server.state != DtlsState.CONNECTING:
            break
    assert server.state == DtlsState.CONNECTED, server.error
    return seeds


SIGNAL = [
    {"type": "join", "room": "standup", "name": "Ana", "audioMuted": False, "id": 1},
    {"type": "join", "room": "standup", "name": "Bo", "password": "pw", "videoMuted": True,
     "token": "e30.e30.x", "resume": "r3sum3", "id": "j2"},
    {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "id": 2},
    {"type": "mute", "audioMuted": True, "videoMuted": False},
    {"type": "set-name", "name": "Ana B."},
    {"type": "chat", "text": "hello <b>all</b>", "to": "p2"},
    {"type": "raise-hand", "raised": True},
    {"type": "lobby-admit", "knock": "k1"},
    {"type": "lobby-deny", "knock": "k1", "message": "not today"},
    {"type": "set-lobby", "enabled": True},
    {"type": "set-password", "password": None},
    {"type": "grant-moderator", "participant": "p2"},
    {"type": "mute-participant", "participant": "p2", "kind": "video"},
    {"type": "mute-all", "kind": "audio"},
    {"type": "ask-unmute", "participant": "p2"},
    {"type": "kick", "participant": "p2", "message": "bye"},
    {"type": "end-meeting"},
    {"type": "ping", "id": 9},
    {"type": "leave"},
    {"type": "constraints", "lastN": 4, "onStage": ["p1"], "selected": ["p2"],
     "defaultMaxHeight": 360, "maxHeights": {"p3": 180}},
    {"type": "sharing", "screen": True},
]


def main() -> None:
    video, audio = capture("chrome156-vp8-simulcast.jsonl"), capture("chrome156-opus.jsonl")
    write("rtp", video[:400:10] + audio[:60:6])
    write("rtcp", capture("chrome156-rtcp.jsonl") + capture("chrome156-rtcp-twcc.jsonl")[:30])
    write("sdp", [(DATA / n).read_bytes() for n in (
        "chrome156-offer-audio-video-simulcast.sdp", "chrome156-offer-screenshare.sdp",
        "aiortc-offer-2slots.sdp", "aiortc1.16-offer-to-chrome156.sdp",
    )])
    write("stun", stun_seeds())
    write("dtls", dtls_seeds())
    write("signal", [json.dumps(m).encode() for m in SIGNAL])


if __name__ == "__main__":
    main()
