"""Dominant speaker identification (tertulia.bridge.rtp.speaker), in virtual time."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tertulia.bridge.rtp.packet import RtpPacket
from tertulia.bridge.rtp.speaker import DominantSpeaker, SpeakerChange

FRAME = 0.02  # one audio packet every 20 ms
SILENCE = 127
DATA = Path(__file__).resolve().parent.parent / "data"

# A source gives the RFC 6464 level (-dBov) of a speaker's packet at time t, or None: no packet.
Source = Callable[[float], int | None]


def talker(seed: int, start: float = 0.0, stop: float = float("inf")) -> Source:
    """Speech-like levels between start and stop, silence otherwise.

    Syllables: 200 ms of speech at -15..-35 dBov, then a 50 ms dip to the background noise
    (-68..-75 dBov), which sets the noise floor.
    """
    rng = random.Random(seed)

    def source(t: float) -> int:
        if not start <= t < stop:
            return SILENCE
        return rng.randint(68, 75) if (t - start) % 0.25 >= 0.2 else rng.randint(15, 35)

    return source


def silent(t: float) -> int:
    return SILENCE


def drive(
    det: DominantSpeaker, sources: dict[str, Source], t0: float, t1: float
) -> list[tuple[float, str | None, SpeakerChange | None]]:
    """Feed one level per speaker every 20 ms and tick after each frame: (t, dominant, change)."""
    out = []
    for i in range(round(t0 / FRAME), round(t1 / FRAME)):
        t = i * FRAME
        for name, source in sources.items():
            lvl = source(t)
            if lvl is not None:
                det.level(name, lvl, t)
        change = det.tick(t)
        out.append((t, det.dominant, change))
    return out


def test_single_talker_becomes_dominant() -> None:
    det = DominantSpeaker()
    det.add("a")
    trace = drive(det, {"a": silent}, 0.0, 1.0)
    assert det.dominant is None  # nobody has spoken yet
    assert all(change is None for _, _, change in trace)

    trace = drive(det, {"a": talker(1, start=1.0)}, 1.0, 3.0)
    changes = [c for _, _, c in trace if c is not None]
    assert len(changes) == 1
    assert changes[0].previous is None
    assert changes[0].current == "a"
    assert 1.0 < changes[0].at <= 1.7
    assert det.dominant == "a"
    assert det.changes == 1
    assert det.speaking_order() == ["a"]


def test_switch_to_second_talker() -> None:
    det = DominantSpeaker()
    for name in ("a", "b", "c"):
        det.add(name)
    sources = {"a": talker(1, 0.0, 3.0), "b": talker(2, 3.0, 6.0), "c": silent}
    trace = drive(det, sources, 0.0, 6.0)
    changes = [c for _, _, c in trace if c is not None]
    assert [(c.previous, c.current) for c in changes] == [(None, "a"), ("a", "b")]
    assert changes[0].at < 0.7
    assert 3.0 < changes[1].at < 4.5  # once a's speech has left the long window
    assert det.dominant == "b"
    assert det.speaking_order() == ["b", "a", "c"]
    assert det.changes == 2


def test_brief_cough_does_not_switch() -> None:
    det = DominantSpeaker()

    # 200 ms coughs at several phases. Two cover a decision (every 0.3 s) that falls into a's
    # 50 ms dip between syllables (2.7 s, 4.2 s): there the immediate scale favours b and only
    # the medium and long scales keep a. Between coughs b has room noise (-70..-80 dBov), so
    # its noise floor is low and the coughs count as speech.
    coughs = (1.1, 1.8, 2.6, 3.4, 4.1)
    rng = random.Random(9)

    def cough(t: float) -> int:
        return 5 if any(c <= t < c + 0.2 for c in coughs) else rng.randint(70, 80)

    trace = drive(det, {"a": talker(3), "b": cough}, 0.0, 5.0)
    assert {d for t, d, _ in trace if t >= 0.6} == {"a"}
    assert det.changes == 1
    assert det.speaking_order() == ["a", "b"]


@pytest.mark.parametrize("hum", [60, 30])  # -30 dBov would be "speech" without the noise floor
def test_constant_background_noise_never_takes_over(hum: int) -> None:
    rng = random.Random(hum)

    def noise(t: float) -> int:
        return hum + rng.randint(-3, 3)

    # A silent room's last speaker keeps the floor for longer than a noise-floor window.
    det = DominantSpeaker()
    trace = drive(det, {"a": talker(4, 0.5, 2.5), "n": noise}, 0.0, 20.0)
    assert [c.current for _, _, c in trace if c is not None] == ["a"]
    assert det.dominant == "a"

    # A real talker, pausing 0.6 s every 2 s, against the same noise.
    talker_levels = talker(5)

    def pausing(t: float) -> int | None:
        return SILENCE if t % 2.0 >= 1.4 else talker_levels(t)

    det = DominantSpeaker()
    trace = drive(det, {"n": noise, "a": pausing}, 0.0, 20.0)
    assert [c.current for _, _, c in trace if c is not None] == ["a"]
    assert det.speaking_order() == ["a", "n"]


def test_remove_dominant_promotes_next_in_speaking_order() -> None:
    det = DominantSpeaker()
    for name in ("a", "b", "c", "d"):
        det.add(name)
    drive(det, {"a": talker(1, 0.0, 2.0), "b": talker(2, 2.0, 4.0)}, 0.0, 4.0)
    assert det.speaking_order() == ["b", "a", "c", "d"]
    assert det.changes == 2

    det.remove("c")  # not dominant: nothing changes
    assert det.dominant == "b"
    assert det.tick(4.0) is None

    det.remove("b")
    assert det.dominant == "a"
    assert det.speaking_order() == ["a", "d"]
    assert det.tick(4.01) == SpeakerChange(previous="b", current="a", at=4.01)
    assert det.tick(4.02) is None

    det.remove("a")  # nobody was dominant before a but d is still there
    assert det.dominant == "d"
    assert det.speaking_order() == ["d"]
    det.remove("d")
    assert det.dominant is None
    assert det.speaking_order() == []
    assert det.tick(4.5) is None
    det.remove("unknown")
    assert det.changes == 4


def test_chrome_capture_becomes_dominant_over_silent_peer() -> None:
    events: list[tuple[float, str, int]] = []
    with (DATA / "chrome156-opus.jsonl").open() as f:
        for line in f:
            entry = json.loads(line)
            ext = RtpPacket.parse(bytes.fromhex(entry["hex"])).get_extension(1)
            assert ext is not None
            events.append((entry["t_ms"] / 1000, "chrome", ext[0] & 0x7F))
    assert len(events) == 361
    end = events[-1][0]
    events += [(i * FRAME, "quiet", SILENCE) for i in range(round(end / FRAME) + 1)]
    events.sort(key=lambda e: e[0])

    det = DominantSpeaker()
    det.add("quiet")  # joined first, so join order alone would not favour chrome
    became: float | None = None
    for t, name, lvl in events:
        det.level(name, lvl, t)
        change = det.tick(t)
        if change is not None:
            assert change == SpeakerChange(previous=None, current="chrome", at=change.at)
            became = change.at
        if became is not None:
            assert det.dominant == "chrome"
    # Decisions fall at 0.3 s steps on a 0.5 s decaying tone: the first ones hit silence or the
    # tail of a burst (below the still-settling noise floor); 1.2 s in the capture.
    assert became is not None and became < 1.5
    assert det.changes == 1
    assert det.speaking_order() == ["chrome", "quiet"]


def test_cost_twenty_speakers() -> None:
    det = DominantSpeaker()
    sources: dict[str, Source] = {
        f"s{i}": talker(i, 2.0 * (i % 5), 2.0 * (i % 5) + 2.0) for i in range(20)
    }
    start = time.perf_counter()
    drive(det, sources, 0.0, 10.0)  # 10,000 levels, 500 ticks, 33 decisions
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert det.changes >= 1
    assert len(det.speaking_order()) == 20


def test_clamping_catch_up_and_arguments() -> None:
    det = DominantSpeaker(history=2)
    det.level("x", -40, 0.0)  # louder than 0 dBov: clamped to 0
    det.level("x", 999, 0.02)  # quieter than silence: clamped to 127
    assert det.tick(0.02) is None
    start = time.perf_counter()
    assert det.tick(3600.0) is None  # an hour late: bounded catch-up, not 12,000 decisions
    assert time.perf_counter() - start < 0.1
    for name, t0 in (("p", 3600.0), ("q", 3603.0), ("r", 3606.0)):
        drive(det, {name: talker(7, t0, t0 + 2.0)}, t0, t0 + 3.0)
    assert det.dominant == "r"
    assert det.speaking_order() == ["r", "q", "x", "p"]  # history=2 keeps r, q in front
    with pytest.raises(ValueError):
        DominantSpeaker(decision_interval=0)
    with pytest.raises(ValueError):
        DominantSpeaker(history=0)
