"""Micro-benchmark of the bridge's forwarding hot path, without sockets.

One Chrome sender (the golden capture in tests/data: Opus plus three-layer VP8 simulcast,
truncated packets padded back to their captured length) and N receivers in one conference.
Every packet is SRTP-protected by the sender ahead of time; the timed part is what the bridge
does for a datagram after reading it: SRTP unprotect (as ``Bridge._on_rtp``) and
``Conference.on_rtp`` down to each receiver's SRTP protect and transmit (a no-op here).

It reports CPU (``time.process_time``) per forwarded packet and per received packet. It is a
benchmark, not a test: numbers depend on the machine and its load; compare runs made one
after the other. Run from the repository root:

    PYTHONPATH=src:. .venv/bin/python -m bench.hot_path --receivers 1 10 25

``--switched`` starts every video slot as if it had shown another source before, so VP8
picture IDs are rewritten in every packet, as in a meeting where speakers and layers changed.
``--twcc`` makes the receivers offer transport-cc on their slots (as Chrome does): the bridge
then numbers and records every packet it sends them (send-side estimation, sendside.py).
``--paced`` turns on every transport-cc receiver's pacer (bridge/pacer.py) at a rate it never
reaches, so the cost of the pacer's admission test shows without any packet waiting.
``--max-frame-rate FPS`` has every receiver ask for at most FPS of the sender's camera: the
bridge then forwards a temporal subset of the VP8 layer (rtp/projection.py), renumbering
every packet it sends (15: T0+T1; 7.5: T0 only).
``--profile FILE`` writes a cProfile dump of the timed part (``python -m pstats FILE``);
py-spy can attach to the process too (``--repeat`` makes it run longer).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import statistics
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pylibsrtp import Policy, Session

from tertulia.bridge.conference import Conference
from tertulia.bridge.constraints import parse_constraints
from tertulia.bridge.endpoint import Address, Endpoint
from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.bridge.transport.ice import IceCredentials
from tertulia.bridge.transport.srtp import SrtpPair
from tertulia.protocol.sdp import negotiate, parse_offer

DATA = Path(__file__).parents[1] / "tests" / "data"
SENDER_OFFER = "chrome156-offer-audio-video-simulcast.sdp"
RECEIVER_OFFER = "aiortc-offer-2slots.sdp"
CAPTURES = ("chrome156-opus.jsonl", "chrome156-vp8-simulcast.jsonl")
MEDIA_PTS = (96, 111)  # VP8 and Opus in the capture; RTX and others are left out
_SEQ_TS = struct.Struct("!HI")


@dataclass(frozen=True, slots=True)
class Captured:
    t: float  # seconds from the start of the capture
    data: bytes


def load_capture() -> list[Captured]:
    """The sender's media packets in arrival order, each at its captured length."""
    out: list[Captured] = []
    for name in CAPTURES:
        with open(DATA / name) as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                data = bytes.fromhex(record["hex"])
                if data[1] & 0x7F not in MEDIA_PTS:
                    continue
                length = record.get("len") or len(data)
                out.append(Captured(record["t_ms"] / 1000, data + bytes(length - len(data))))
    out.sort(key=lambda c: c.t)
    return out


def stream_of(capture: list[Captured], count: int) -> list[tuple[float, bytes]]:
    """``count`` plaintext packets: the capture played again and again, with sequence
    numbers and timestamps continuing per SSRC (SRTP refuses replays)."""
    span = capture[-1].t - capture[0].t + 0.02
    first: dict[int, tuple[int, int]] = {}
    last_ts: dict[int, int] = {}
    for c in capture:
        seq, ts = _SEQ_TS.unpack_from(c.data, 2)
        ssrc = int.from_bytes(c.data[8:12], "big")
        first.setdefault(ssrc, (seq, ts))
        last_ts[ssrc] = ts
    per_ssrc = {s: sum(1 for c in capture if int.from_bytes(c.data[8:12], "big") == s)
                for s in first}
    out: list[tuple[float, bytes]] = []
    cycle = 0
    while len(out) < count:
        for c in capture:
            if len(out) >= count:
                break
            ssrc = int.from_bytes(c.data[8:12], "big")
            seq, ts = _SEQ_TS.unpack_from(c.data, 2)
            ts_span = (last_ts[ssrc] - first[ssrc][1]) & 0xFFFFFFFF
            buf = bytearray(c.data)
            _SEQ_TS.pack_into(
                buf, 2, (seq + cycle * per_ssrc[ssrc]) & 0xFFFF,
                (ts + cycle * (ts_span + 3000)) & 0xFFFFFFFF,
            )
            out.append((1.0 + c.t + cycle * span, bytes(buf)))
        cycle += 1
    return out


TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def with_twcc(sdp: str) -> str:
    """The aiortc receiver offer with transport-cc on every m-line, as Chrome offers it."""
    out = []
    for line in sdp.splitlines():
        out.append(line)
        if line == "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid":
            out.append(f"a=extmap:5 {TWCC_URI}")
        elif line.startswith("a=rtcp-fb:") and line.endswith(" goog-remb"):
            out.append(line.replace("goog-remb", "transport-cc"))
        elif line == "a=rtpmap:96 opus/48000/2":
            out.append("a=rtcp-fb:96 transport-cc")
    return "\r\n".join(out) + "\r\n"


def build(receivers: int, twcc: bool = False
          ) -> tuple[Conference, Endpoint, Session, list[Endpoint]]:
    conference = Conference("bench", bridge_ssrc=1)
    cert = DtlsCertificate.generate()
    sink: list[bytes] = []

    def transmit(data: bytes, addr: Address) -> None:
        if len(sink) > 1000:
            sink.clear()
        sink.append(data)

    def join(name: str, offer_file: str) -> tuple[Endpoint, bytes]:
        text = (DATA / offer_file).read_text()
        offer = parse_offer(with_twcc(text) if twcc and offer_file == RECEIVER_OFFER else text)
        endpoint = Endpoint(
            name, conference.id, negotiate(offer, max_slots=2),
            IceCredentials.generate("u", "p" * 22), cert, "AA", transmit, 0.0,
        )
        rx_key, tx_key = os.urandom(30), os.urandom(30)
        endpoint.srtp = SrtpPair(rx_key, tx_key)
        endpoint.addr = ("127.0.0.1", 40000 + len(conference.endpoints))
        conference.add(endpoint)
        return endpoint, rx_key

    sender, sender_key = join("sender", SENDER_OFFER)
    others = [join(f"r{i}", RECEIVER_OFFER)[0] for i in range(receivers)]
    client_tx = Session(Policy(key=sender_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    return conference, sender, client_tx, others


def run(
    receivers: int, packets: int, profile: str | None, switched: bool = False,
    twcc: bool = False, paced: bool = False, max_frame_rate: float | None = None,
) -> dict[str, float | int]:
    conference, sender, client_tx, others = build(receivers, twcc)
    if max_frame_rate is not None:
        for receiver in others:
            receiver.constraints = parse_constraints(
                {"defaultMaxFrameRate": max_frame_rate}, receiver.constraints)
    assert all((getattr(r, "sendside", None) is not None) == twcc for r in others)
    if paced:
        for receiver in others:
            receiver.pacer.set_estimate(1e9)
    if switched:
        # as if each video slot had shown another source before: VP8 picture IDs continue
        # from there, so every packet's descriptor is rewritten (RFC 7741 §4.2)
        for receiver in others:
            for _audio, video in receiver.slots:
                video.last_out_pid, video.last_out_tl0 = 1000, 7
    plain = stream_of(load_capture(), packets)
    protected = [(t, client_tx.protect(p)) for t, p in plain]
    srtp = sender.srtp
    assert srtp is not None
    warm = min(len(protected) // 10, 1500)  # layers learned, keyframes seen, slots started
    tick = 0.0
    for t, data in protected[:warm]:
        if max_frame_rate is not None and t >= tick:  # rates measured, TIDs allocated
            conference.refresh_layers(t)
            tick = t + 0.25
        conference.on_rtp(sender, srtp.unprotect_rtp(data), t, t)
    if max_frame_rate is not None:
        conference.refresh_layers(t)
        assert all(video.max_tid is not None for r in others for _a, video in r.slots
                   if video.source is not None and video.source[0] == "sender"), "no limit"
    out_before = sum(r.stats.rtp_out for r in others)
    timed = protected[warm:]
    profiler = cProfile.Profile() if profile else None
    unprotect = srtp.unprotect_rtp
    on_rtp = conference.on_rtp
    start = time.process_time()
    if profiler is not None:
        profiler.enable()
    for t, data in timed:
        on_rtp(sender, unprotect(data), t, t)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile or "")
    cpu = time.process_time() - start
    forwarded = sum(r.stats.rtp_out for r in others) - out_before
    # memory the receivers' packet histories hold (objects shared among them counted once)
    seen: set[int] = set()
    held = 0
    video_streams = [video for r in others for _audio, video in r.slots if video.started]
    for stream in video_streams:
        store = stream.history._entries  # bench only: the history's own storage
        for entry in store.values() if isinstance(store, dict) else store:
            for part in entry:
                if isinstance(part, bytes) and id(part) not in seen:
                    seen.add(id(part))
                    held += sys.getsizeof(part)
    return {
        "receivers": receivers,
        "switched": switched,
        "paced": paced,
        "max_frame_rate": max_frame_rate,
        "packets_in": len(timed),
        "packets_out": forwarded,
        "cpu_s": round(cpu, 4),
        "us_per_packet_out": round(cpu / max(1, forwarded) * 1e6, 2),
        "us_per_packet_in": round(cpu / len(timed) * 1e6, 2),
        "video_history_kib_per_stream": round(held / 1024 / max(1, len(video_streams)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", type=int, nargs="+", default=[1, 10, 25])
    parser.add_argument("--packets", type=int, default=20000, help="received per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; median kept")
    parser.add_argument("--profile", help="write a cProfile dump of the last run here")
    parser.add_argument("--switched", action="store_true",
                        help="slots showed another source before: picture IDs are rewritten")
    parser.add_argument("--twcc", action="store_true",
                        help="receivers negotiate transport-cc: every packet numbered, recorded")
    parser.add_argument("--paced", action="store_true",
                        help="receivers' pacers on (never queueing): the admission cost")
    parser.add_argument("--max-frame-rate", type=float,
                        help="receivers ask for at most this frame rate: temporal subset")
    args = parser.parse_args()
    for receivers in args.receivers:
        results = [run(receivers, args.packets, args.profile, args.switched, args.twcc,
                       args.paced, args.max_frame_rate)
                   for _ in range(args.repeat)]
        best = sorted(results, key=lambda r: r["us_per_packet_out"])[len(results) // 2]
        best = dict(best)
        best["us_per_packet_out_runs"] = [r["us_per_packet_out"] for r in results]  # type: ignore[assignment]
        best["us_per_packet_out_stdev"] = round(
            statistics.pstdev(float(r["us_per_packet_out"]) for r in results), 2)
        print(json.dumps(best), flush=True)


if __name__ == "__main__":
    main()
