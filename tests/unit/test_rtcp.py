"""RTCP parsing/serialization against the golden Chromium 156 capture."""

from __future__ import annotations

import collections
import contextlib
import itertools
import random
import struct

import pytest

from tertulia.bridge.rtp.rtcp import (
    Bye,
    Fir,
    GenericNack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    Sdes,
    SenderReport,
    TransportCC,
    Unknown,
    nack_pairs,
    parse_rtcp,
    serialize_rtcp,
)

from .golden import RTCP, RTCP_TWCC, info, load, rid_ssrcs

AIORTC_VIDEO = 564747948
AUDIO_SSRC = 659610133
TWCC_INFO = "chrome156-rtcp-twcc-info.json"


def _parsed(name: str) -> list[tuple[float, list[RtcpPacket]]]:
    return [(r.t_ms, parse_rtcp(r.data)) for r in load(name)]


def _all(name: str) -> list[RtcpPacket]:
    return [p for _, pkts in _parsed(name) for p in pkts]


def _type_name(p: RtcpPacket) -> str:
    return type(p).__name__


@pytest.mark.parametrize("name", [RTCP, RTCP_TWCC])
def test_round_trip_byte_exact(name: str) -> None:
    for r in load(name):
        assert r.kind == "rtcp" and not r.truncated
        pkts = parse_rtcp(r.data)
        assert serialize_rtcp(pkts) == r.data
        for p in pkts:
            assert not isinstance(p, Unknown)
            assert bytes(type(p).parse(bytes(p))) == bytes(p)


def test_counts_by_type_main() -> None:
    parsed = _parsed(RTCP)
    assert len(parsed) == 52
    counts = collections.Counter(_type_name(p) for _, pkts in parsed for p in pkts)
    assert counts == {
        "SenderReport": 41,
        "Sdes": 41,
        "ReceiverReport": 11,
        "Pli": 2,
        "GenericNack": 1,
        "Remb": 9,
    }
    # everything is compound and starts with SR or RR (RFC 3550 §6.1)
    first = collections.Counter(_type_name(pkts[0]) for _, pkts in parsed)
    assert first == {"SenderReport": 41, "ReceiverReport": 11}


def test_sender_reports() -> None:
    rid = rid_ssrcs()
    srs = [p for p in _all(RTCP) if isinstance(p, SenderReport)]
    per = collections.Counter(sr.ssrc for sr in srs)
    assert per == {rid["l"]: 13, rid["m"]: 8, rid["h"]: 18, AUDIO_SSRC: 2}
    assert all(sr.reports == [] and sr.profile_extension == b"" for sr in srs)
    assert all(sr.ntp_timestamp >> 32 > 0 for sr in srs)  # 64-bit NTP, seconds since 1900
    # each SR is followed by the SDES for the same SSRC
    for _, pkts in _parsed(RTCP):
        if isinstance(pkts[0], SenderReport):
            sdes = pkts[1]
            assert isinstance(sdes, Sdes) and sdes.chunks[0][0] == pkts[0].ssrc


def test_sdes_cnames() -> None:
    rid = rid_ssrcs()
    cnames = {
        ssrc: dict(items).get(1)
        for p in _all(RTCP)
        if isinstance(p, Sdes)
        for ssrc, items in p.chunks
    }
    assert cnames == {
        rid["l"]: b"",
        rid["m"]: b"",
        rid["h"]: b"",
        AUDIO_SSRC: b"wY2Nqu08dYb4Hr9w",
    }
    video = next(r.data for r in load(RTCP) if r.data[4:8] == rid["l"].to_bytes(4, "big"))
    # the empty CNAME is encoded as 81ca0002 <ssrc> 01000000
    assert video[28:40] == bytes.fromhex("81ca0002") + rid["l"].to_bytes(4, "big") + bytes(
        [1, 0, 0, 0]
    )


def test_receiver_reports() -> None:
    rrs = [p for p in _all(RTCP) if isinstance(p, ReceiverReport)]
    assert len(rrs) == 11
    assert {rr.ssrc for rr in rrs} == {rid_ssrcs()["h"]}  # layer h's SSRC as sender SSRC
    assert {len(rr.reports) for rr in rrs} == {0, 1, 2}
    assert any(len(bytes(rr)) == 8 for rr in rrs)
    media = {b.ssrc for rr in rrs for b in rr.reports}
    assert AIORTC_VIDEO in media
    assert media <= {AIORTC_VIDEO, info()["aiortc_ssrcs"]["video_to_chrome_rtx"]}


def test_pli_and_nack() -> None:
    h = rid_ssrcs()["h"]
    plis = [(t, p) for t, pkts in _parsed(RTCP) for p in pkts if isinstance(p, Pli)]
    assert [t for t, _ in plis] == [50.805, 82.718]
    assert all(p.media_ssrc == AIORTC_VIDEO and p.sender_ssrc == h for _, p in plis)
    nacks = [(t, p) for t, pkts in _parsed(RTCP) for p in pkts if isinstance(p, GenericNack)]
    assert len(nacks) == 1
    t, nack = nacks[0]
    assert 2513 < t < 2515
    assert (nack.sender_ssrc, nack.media_ssrc, nack.lost) == (h, AIORTC_VIDEO, [18828])
    assert bytes(nack)[-4:] == struct.pack("!HH", 18828, 0)


def test_remb() -> None:
    l_ssrc = rid_ssrcs()["l"]
    rembs = []
    for t, pkts in _parsed(RTCP):
        for p in pkts:
            if isinstance(p, Remb):
                rembs.append(p)
                assert t > 5100
                # appended to layer l's SR+SDES compound
                assert isinstance(pkts[0], SenderReport) and pkts[0].ssrc == l_ssrc
    assert len(rembs) == 9
    rates = [p.bitrate for p in rembs]
    assert min(rates) == 505416 and max(rates) == 568540
    assert all(p.sender_ssrc == l_ssrc and p.ssrcs == [AIORTC_VIDEO] for p in rembs)
    assert all(p.media_ssrc == 0 for p in rembs)


def test_twcc_file() -> None:
    parsed = _parsed(RTCP_TWCC)
    assert len(parsed) == 172
    counts = collections.Counter(_type_name(p) for _, pkts in parsed for p in pkts)
    assert counts == {
        "ReceiverReport": 10,
        "Pli": 2,
        "TransportCC": 122,
        "SenderReport": 40,
        "Sdes": 40,
        "GenericNack": 1,
    }
    tw_info = info(TWCC_INFO)
    h = tw_info["chrome_ssrcs"]["video"]["h"]["ssrc"]
    media = {
        tw_info["aiortc_ssrcs"]["video_to_chrome"],
        tw_info["aiortc_ssrcs"]["video_to_chrome_rtx"],
    }
    fbs: list[TransportCC] = []
    for r in load(RTCP_TWCC):
        pkts = parse_rtcp(r.data)
        if any(isinstance(p, TransportCC) for p in pkts):
            assert len(pkts) == 1  # standalone, non-compound
            assert len(r.data) in (24, 28)
            assert isinstance(pkts[0], TransportCC)
            fbs.append(pkts[0])
    assert [f.fb_pkt_count for f in fbs] == list(range(122))
    assert {f.sender_ssrc for f in fbs} == {h}
    assert {f.media_ssrc for f in fbs} == media
    assert fbs[0].base_seq == 2
    assert fbs[-1].packets[-1][0] == 440
    assert {f.packet_status_count for f in fbs} == {1, 2, 3, 4, 5}
    for a, b in itertools.pairwise(fbs):  # contiguous coverage of transport seqs 2..440
        assert b.base_seq == a.base_seq + a.packet_status_count
    statuses = [(seq, rx, d) for f in fbs for seq, rx, d in f.packets]
    assert sum(rx for _, rx, _ in statuses) == 438
    lost = [seq for seq, rx, _ in statuses if not rx]
    assert len(lost) == 1
    assert all((d is None) == (not rx) for _, rx, d in statuses)
    assert all(d is None or d % 250 == 0 for _, _, d in statuses)
    assert any(d is not None and d > 255 * 250 for _, _, d in statuses)  # large deltas occur


def test_nack_pairs_wraparound() -> None:
    assert nack_pairs([]) == []
    assert nack_pairs([18828]) == [(18828, 0)]
    assert nack_pairs([65534, 65535, 0, 1, 20]) == [(65534, 0b111), (20, 0)]
    assert nack_pairs([1, 0, 65535, 65534, 1]) == [(65534, 0b111)]
    assert nack_pairs([0, 16]) == [(0, 1 << 15)]
    assert nack_pairs([0, 17]) == [(0, 0), (17, 0)]
    assert nack_pairs([65530, 5]) == [(65530, 1 << 10)]
    assert nack_pairs([100, 100 + 40000]) == [(40100, 0), (100, 0)]


def test_generic_nack_round_trip() -> None:
    lost = [65530, 65531, 65535, 0, 3, 10, 30]
    nack = GenericNack(1, 2, lost)
    data = bytes(nack)
    assert data[:4] == bytes.fromhex("81cd0004")
    back = GenericNack.parse(data)
    assert back.lost == [65530, 65531, 65535, 0, 3, 10, 30]
    assert parse_rtcp(data) == [back]
    # a BLP past the wrap decodes modulo 2**16
    assert GenericNack.parse(bytes.fromhex("81cd0003 00000001 00000002 ffff8001")).lost == [
        65535,
        0,
        15,
    ]


def test_pli_fir_bye_report_round_trips() -> None:
    pli = Pli(1, 2)
    assert bytes(pli) == bytes.fromhex("81ce0002 00000001 00000002")
    fir = Fir(7, [(100, 1), (200, 255)])
    data = bytes(fir)
    assert data == bytes.fromhex("84ce0006 00000007 00000000 00000064 01000000 000000c8 ff000000")
    assert Fir.parse(data) == fir
    bye = Bye([1, 2], b"bye now")
    data = bytes(bye)
    assert len(data) % 4 == 0 and parse_rtcp(data) == [bye]
    assert parse_rtcp(bytes(Bye([3]))) == [Bye([3], None)]
    rb = ReportBlock(5, 12, -3, 70000, 9, 10, 11)
    rr = ReceiverReport(4, [rb])
    assert parse_rtcp(bytes(rr)) == [rr]
    assert ReportBlock.parse(bytes(rb)).packets_lost == -3
    sr = SenderReport(1, 0x0123456789ABCDEF, 2, 3, 4, [rb, rb], b"\x00\x00\x00\x01")
    assert parse_rtcp(bytes(sr)) == [sr]
    sdes = Sdes([(1, [(1, b"cname"), (6, b"tool")]), (2, [])])
    assert parse_rtcp(bytes(sdes)) == [sdes]


def test_remb_encoding() -> None:
    remb = Remb(1289851351, 505416, [AIORTC_VIDEO])
    data = bytes(remb)
    # 505416 = 252708 << 1: exponent 1, mantissa 252708 (0x3db24)
    assert data[12:20] == b"REMB" + bytes([1, (1 << 2) | 0x3, 0xDB, 0x24])
    assert Remb.parse(data) == remb
    big = Remb(1, 10_000_000_000, [])
    back = Remb.parse(bytes(big))
    assert back.bitrate <= 10_000_000_000 and back.bitrate > 10_000_000_000 * (1 - 2**-17)
    assert Remb.parse(bytes(Remb(1, 0x3FFFF, []))).bitrate == 0x3FFFF


def test_unknown_kept_byte_exact() -> None:
    app = bytes.fromhex("a1cc0003 00000001 6e616d65 00000001")  # APP with padding bit
    xr = bytes.fromhex("80cf0002 00000001 04000000")
    afb = bytes.fromhex("8fce0003 00000001 00000000 41424344")  # PSFB fmt 15, not REMB
    pkts = parse_rtcp(app + xr + afb)
    assert [type(p) for p in pkts] == [Unknown, Unknown, Unknown]
    assert pkts[0] == Unknown(204, 1, app[4:], True)
    assert serialize_rtcp(pkts) == app + xr + afb


def _twcc(symbols_deltas: list[int | None], base: int = 0) -> TransportCC:
    pkts: list[tuple[int, bool, int | None]] = [
        ((base + k) & 0xFFFF, d is not None, d) for k, d in enumerate(symbols_deltas)
    ]
    return TransportCC(1, 2, base, len(pkts), -5, 9, pkts)


@pytest.mark.parametrize(
    ("deltas", "chunks"),
    [
        ([250] * 20, [0x2014]),  # run length, small deltas
        ([250, None] * 4 + [250], [0xAAA0]),  # 1-bit vector, last chunk of 9
        ([250] * 13 + [None], [0xBFFE]),  # full 1-bit vector of 14
        ([-250, 250, 250], [0xE500]),  # 2-bit vector: large, small, small
        ([250] * 3 + [70000] + [250] * 10, [0xD595, 0x2007]),  # 2-bit of 7, then a run of 7
        ([None] * 3 + [250], [0xC040]),
    ],
)
def test_twcc_chunk_encoding(deltas: list[int | None], chunks: list[int]) -> None:
    fb = _twcc(deltas, base=65534)
    data = bytes(fb)
    n_chunks = len(chunks)
    assert data[20 : 20 + 2 * n_chunks] == b"".join(c.to_bytes(2, "big") for c in chunks)
    assert len(data) % 4 == 0
    assert bool(data[0] & 0x20) == (data[-1] != 0 and len(data) > 20 + 2 * n_chunks)
    back = TransportCC.parse(data)
    assert back == fb
    assert back.reference_time == -5 and back.packets[2][0] == 0  # seq wrapped


def test_twcc_random_round_trip() -> None:
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randrange(1, 60)
        deltas: list[int | None] = [rng.randrange(-20, 20) * 250]
        for _ in range(n - 1):
            kind = rng.random()
            if kind < 0.2:
                deltas.append(None)
            elif kind < 0.3:
                deltas.append(rng.randrange(-8000, 30000) * 250)
            else:
                deltas.append(rng.randrange(0, 256) * 250)
        fb = _twcc(deltas, base=rng.randrange(65536))
        data = bytes(fb)
        assert TransportCC.parse(data) == fb
        assert parse_rtcp(data) == [fb]


def test_twcc_long_run() -> None:
    fb = _twcc([500] * 9000)
    data = bytes(fb)
    assert data[20:24] == bytes.fromhex("3fff 2329")  # 8191 + 809
    assert TransportCC.parse(data) == fb


def test_twcc_rejects_bad_input() -> None:
    fb = _twcc([250])
    fb.packet_status_count = 2
    with pytest.raises(ValueError):
        bytes(fb)
    with pytest.raises(ValueError):
        bytes(_twcc([250 * 40000]))


GOOD = bytes.fromhex("80c9000147f67d44")  # empty RR


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (GOOD[:3], "too short"),
        (GOOD + b"\x80\xc9", "trailing"),
        (bytes([0x40]) + GOOD[1:], "version 1"),
        (bytes.fromhex("80c90002") + GOOD[4:], "claims 12 bytes"),
        (GOOD + bytes.fromhex("80c8000200000001 00000000"), "SR: body"),
        (bytes.fromhex("81c90001 00000001"), "report blocks do not fit"),
        (bytes.fromhex("81ca0002 00000001 01050000"), "SDES"),
        (bytes.fromhex("81ca0001 00000001"), "not terminated"),
        (bytes.fromhex("81cd0002 00000001 00000002"), "NACK"),
        (bytes.fromhex("81ce0003 00000001 00000002 00000000"), "PLI"),
        (bytes.fromhex("84ce0003 00000001 00000000 00000005"), "FIR"),
        (bytes.fromhex("8fce0005 00000001 00000000 52454d42 02000001 00000001"), "REMB"),
        (bytes.fromhex("8fcd0004 00000001 00000002 00000005 01271500"), "end before"),
        (bytes.fromhex("8fcd0005 00000001 00000002 00000003 01271500 20030000"), "past the end"),
        (bytes.fromhex("8fcd0005 00000001 00000002 00000001 01271500 60010000"), "reserved"),
        (bytes.fromhex("a1c90001 00000000"), "padding"),
        (bytes.fromhex("a1c90001 00000009"), "padding"),
        (bytes.fromhex("82cb0001 00000001"), "BYE: 2 sources"),
        (bytes.fromhex("81cb0002 00000001 05616263"), "reason do not fit"),
    ],
)
def test_malformed_rtcp(data: bytes, message: str) -> None:
    with pytest.raises(RtcpParseError, match=message):
        parse_rtcp(data)


def test_fuzz_only_rtcp_parse_error() -> None:
    """Truncated and bit-flipped golden datagrams raise RtcpParseError or parse; nothing else."""
    rng = random.Random(5)
    samples = [r.data for r in load(RTCP)] + [r.data for r in load(RTCP_TWCC)[:40]]
    for data in samples:
        for cut in range(len(data)):
            with contextlib.suppress(RtcpParseError):
                parse_rtcp(data[:cut])
        for _ in range(20):
            mutated = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                serialize_rtcp(parse_rtcp(bytes(mutated)))
            except RtcpParseError:
                pass
            except ValueError as exc:  # only serialization may refuse what parse accepted
                raise AssertionError(f"{mutated.hex()}: {exc}") from exc
