"""Dominant speaker identification from RFC 6464 audio levels.

This is the method of Volfin & Cohen, "Dominant speaker identification for multipoint
videoconferencing" (Computer Speech & Language 27(4), 2013, pp. 895-910), adapted the way
Jitsi's bridge adapts it (jitsi-utils ``DominantSpeakerIdentification``). It is pure: no clock,
no I/O. The caller passes ``now`` (seconds) to :meth:`DominantSpeaker.level` for each audio
packet and to :meth:`DominantSpeaker.tick`, which makes one decision per ``decision_interval``
(300 ms).

Local processing (paper, section "Local processing": speech activity evaluation)
    Levels are converted from -dBov (0 loudest, 127 silence) to loudness ``127 - level``
    (0 = silence), as Jitsi's bridge does. One audio packet, normally 20 ms, is one *immediate*
    frame. The paper counts the active frequency sub-bands of a frame (N1 = 13). A packet only
    carries one level, so the level range is cut into 13 sub-units of 10, and a frame has
    ``loudness // 10`` (0..12) "active sub-bands". Frames below the speaker's noise floor + 10
    count as 0. A *medium* block is the last N2 = 5 frames; its activity is the number of frames
    with more than 7 active sub-bands. The *long* interval is the last N3 = 10 medium blocks
    (50 frames, about 1 s); its activity is the number of blocks with more than 4 active frames.
    Blocks slide with the newest frame, as in Jitsi.

Speech activity score (paper, same section: the likelihood model)
    At each time scale, k active units out of n are scored by the log-likelihood ratio of a
    binomial speech model (p = 0.5) against an exponential non-speech model with rate λ:
    ``log C(n,k) + k·log p + (n-k)·log(1-p) - log λ + λ·k``. The score is floored at 1e-10 and
    λ = 0.78, 24 and 47 for the immediate, medium and long scales (Jitsi's values). Immediate
    uses only the newest frame (n = 13 sub-bands), medium the newest block (n = 5) and long the
    whole window (n = 10). All scores are tabulated once, at import.

Global decision (paper, section "Global decision": dominant speaker selection)
    Every decision, each other speaker is compared with the current dominant speaker by the three
    relative activities ``log(score_challenger / score_dominant)``. A challenger wins only if
    all three exceed C1 = 3, C2 = 2 and C3 = 0. If several qualify, the highest medium ratio
    wins (as in Jitsi). With these constants a challenger can take over only if three things
    hold. The dominant speaker's newest frame must be quiet (3 sub-bands or fewer) and its last
    medium block must have no active frame (about 100 ms). The challenger's newest frame must
    have at least 4 sub-bands. Over the last second, the challenger must have more active
    blocks than the dominant speaker. A 200 ms burst therefore cannot interrupt continuous
    speech, but in an otherwise silent room it can take over.

Noise floor (Jitsi's addition; the paper normalises in the frequency domain instead)
    The per-speaker minimum non-silent loudness drops at once when a lower level arrives. After
    each window of 750 levels (15 s at 20 ms) it rises to the geometric mean of the old floor and
    the window's minimum. So a constant hum or fan never counts as speech, and a noise that
    starts later is absorbed over some tens of seconds. Digital silence (127) is ignored, so
    the first non-silent level sets the initial floor. For a participant who only sent silence
    (muted), that is the first word; the floor drops with the next quieter level.

Simplifications and deviations (relative to the paper and Jitsi)
    * Level instead of spectrum: the sub-band count comes from one level per packet. This is
      Jitsi's simplification. The frame length is the sender's packet time, so the windows
      assume 20 ms packets.
    * No dominant speaker yet: the challengers are compared with a virtual silent speaker whose
      scores are all minimal, so someone has to speak to become dominant. Jitsi instead
      nominates an arbitrary speaker, or the only one. A lone participant who never speaks is
      therefore never dominant here.
    * Missing packets (DTX, muting): at a decision, a speaker with no level for more than 40 ms
      gets one silent frame per 20 ms of the gap. Jitsi does this every 40 ms with one frame.
      Levels are taken in call order; Jitsi drops levels that arrive late.
    * Speakers are never expired for idleness; the bridge calls :meth:`DominantSpeaker.remove`.
      Jitsi's "loudest speakers" energy ranking is not implemented.
    * If ``tick`` falls behind by more than 10 decisions, the missed ones are skipped. Levels are
      buffered per packet, so the decision that does run sees the same history.

Cost: :meth:`DominantSpeaker.level` is O(1). It appends to a 50-frame ring and updates the
floor. :meth:`DominantSpeaker.tick` makes each decision in O(speakers). It scans the full
50-frame window only for the dominant speaker and for challengers whose newest frame already
passes C1.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import repeat

__all__ = ["DominantSpeaker", "SpeakerChange"]

MAX_LEVEL = 127
N1 = 13  # sub-bands of the level range (immediate scale)
N2 = 5  # immediate frames per medium block
N3 = 10  # medium blocks per long interval
C1 = 3.0
C2 = 2.0
C3 = 0.0
_SUBUNIT = (MAX_LEVEL + N1 - 1) // N1  # 10 loudness steps per sub-band
_MEDIUM_THRESHOLD = 7  # a frame is active with more active sub-bands than this
_LONG_THRESHOLD = 4  # a medium block is active with more active frames than this
_ACTIVE_LOUDNESS = (_MEDIUM_THRESHOLD + 1) * _SUBUNIT  # 80, i.e. -47 dBov
_WINDOW = N2 * N3  # frames kept per speaker
_MIN_SCORE = 1e-10
_FRAME = 0.020  # seconds per immediate frame assumed for gaps and the floor window
_LEVEL_IDLE_TIMEOUT = 0.040  # no level for this long: fill with silence
_FLOOR_WINDOW = 750  # levels per noise-floor window (15 s of 20 ms packets)
_MAX_CATCH_UP = 10  # decisions run by one tick() at most


def _log_scores(n: int, lam: float, p: float = 0.5) -> tuple[float, ...]:
    """log of the speech activity score for k = 0..n active units out of n."""
    out = []
    for k in range(n + 1):
        score = (
            math.log(math.comb(n, k))
            + k * math.log(p)
            + (n - k) * math.log(1 - p)
            - math.log(lam)
            + lam * k
        )
        out.append(math.log(max(score, _MIN_SCORE)))
    return tuple(out)


_LOG_IMMEDIATE = _log_scores(N1, 0.78)
_LOG_MEDIUM = _log_scores(N2, 24.0)
_LOG_LONG = _log_scores(N3, 47.0)
_SILENT = (_LOG_IMMEDIATE[0], _LOG_MEDIUM[0], _LOG_LONG[0])


@dataclass(frozen=True, slots=True)
class SpeakerChange:
    """The dominant speaker changed from ``previous`` to ``current`` at time ``at``."""

    previous: str | None
    current: str
    at: float


class _Speaker:
    """Per-speaker level history (loudness, newest last) and noise floor."""

    __slots__ = ("floor", "frames", "last_at", "next_floor", "next_floor_count")

    def __init__(self) -> None:
        self.frames: deque[int] = deque(repeat(0, _WINDOW), maxlen=_WINDOW)
        self.floor = 0  # minimum non-silent loudness; 0 = not known yet
        self.next_floor = 0  # minimum of the current floor window; 0 = window empty
        self.next_floor_count = 0
        self.last_at: float | None = None

    def track_floor(self, loud: int) -> None:
        """Jitsi's ``updateMinLevel``: fall at once, rise slowly (geometric mean per window)."""
        floor = self.floor
        if floor == 0 or loud < floor:
            self.floor = loud
            self.next_floor = 0
            self.next_floor_count = 0
        elif self.next_floor == 0:
            self.next_floor = loud
            self.next_floor_count = 1
        else:
            if loud < self.next_floor:
                self.next_floor = loud
            self.next_floor_count += 1
            if self.next_floor_count >= _FLOOR_WINDOW:
                self.floor = min(MAX_LEVEL, int(math.sqrt(floor * self.next_floor)))
                self.next_floor = 0
                self.next_floor_count = 0

    def fill_silence(self, t: float) -> None:
        """Add silent frames for a gap in the levels longer than the idle timeout."""
        last = self.last_at
        if last is None:
            return
        idle = t - last
        if idle > _LEVEL_IDLE_TIMEOUT:
            n = int(idle / _FRAME)
            self.frames.extend(repeat(0, min(n, _WINDOW)))
            self.last_at = last + n * _FRAME

    def immediate(self) -> float:
        """log immediate score: active sub-bands of the newest frame."""
        newest = self.frames[-1]
        return _LOG_IMMEDIATE[newest // _SUBUNIT if newest >= self.floor + _SUBUNIT else 0]

    def scores(self) -> tuple[float, float, float]:
        """log (immediate, medium, long) speech activity scores."""
        threshold = max(self.floor + _SUBUNIT, _ACTIVE_LOUDNESS)
        active = [loud >= threshold for loud in self.frames]
        counts = [sum(active[i : i + N2]) for i in range(0, _WINDOW, N2)]
        long_count = sum(1 for c in counts if c > _LONG_THRESHOLD)
        return self.immediate(), _LOG_MEDIUM[counts[-1]], _LOG_LONG[long_count]


class DominantSpeaker:
    """Dominant speaker and speaking order of one conference (see the module docstring)."""

    __slots__ = (
        "_changed_at",
        "_dominant",
        "_history",
        "_interval",
        "_next_decision",
        "_recent",
        "_reported",
        "_speakers",
        "changes",
    )

    def __init__(self, *, decision_interval: float = 0.3, history: int = 10) -> None:
        if not decision_interval > 0:
            raise ValueError("decision_interval must be positive")
        if history < 1:
            raise ValueError("history must be at least 1")
        self._interval = decision_interval
        self._history = history
        self._speakers: dict[str, _Speaker] = {}  # join order
        self._dominant: str | None = None
        self._recent: list[str] = []  # most recent dominant first, at most `history`
        self._next_decision: float | None = None
        self._reported: str | None = None  # dominant as last reported by tick()
        self._changed_at: float | None = None
        self.changes = 0

    @property
    def dominant(self) -> str | None:
        return self._dominant

    def add(self, speaker: str) -> None:
        if speaker not in self._speakers:
            self._speakers[speaker] = _Speaker()

    def remove(self, speaker: str) -> None:
        """Forget a speaker. If it was dominant, the next in speaking order takes over.

        The takeover counts in :attr:`changes` and is reported by the next :meth:`tick`.
        """
        if self._speakers.pop(speaker, None) is None:
            return
        if speaker in self._recent:
            self._recent.remove(speaker)
        if self._dominant == speaker:
            self._dominant = None
            order = self.speaking_order()
            if order:
                self._promote(order[0], None)

    def level(self, speaker: str, level: int, now: float) -> None:
        """Record one RFC 6464 level (-dBov, 0..127; clamped) of one audio packet."""
        s = self._speakers.get(speaker)
        if s is None:
            s = self._speakers[speaker] = _Speaker()
        if self._next_decision is None:
            self._next_decision = now + self._interval
        if level <= 0:
            loud = MAX_LEVEL
        elif level >= MAX_LEVEL:
            loud = 0
        else:
            loud = MAX_LEVEL - level
        s.frames.append(loud)
        last = s.last_at
        if last is None or now > last:
            s.last_at = now
        if loud:
            s.track_floor(loud)

    def tick(self, now: float) -> SpeakerChange | None:
        """Run the decisions due up to ``now``; return the net change of the dominant speaker.

        A change made by :meth:`remove` since the previous tick is reported too (``at`` is then
        ``now``); a change to no speaker at all is not reported.
        """
        interval = self._interval
        due = self._next_decision
        if due is None:
            due = now + interval
        runs = 0
        while due <= now and runs < _MAX_CATCH_UP:
            self._decide(due)
            due += interval
            runs += 1
        if due <= now:  # far behind: skip the missed decisions
            due = now + interval
        self._next_decision = due

        current = self._dominant
        previous = self._reported
        if current == previous:
            return None
        self._reported = current
        if current is None:
            return None
        at = self._changed_at if self._changed_at is not None else now
        return SpeakerChange(previous=previous, current=current, at=at)

    def speaking_order(self) -> list[str]:
        """Recent dominant speakers, most recent first, then the others in join order."""
        recent = self._recent
        seen = set(recent)
        return recent + [s for s in self._speakers if s not in seen]

    def _decide(self, t: float) -> None:
        speakers = self._speakers
        if not speakers:
            return
        for s in speakers.values():
            s.fill_silence(t)
        dominant = self._dominant
        base = _SILENT if dominant is None else speakers[dominant].scores()
        best: str | None = None
        best_c2 = C2
        for sid, s in speakers.items():
            if sid == dominant or s.immediate() - base[0] <= C1:
                continue
            _, medium, long_ = s.scores()
            c2 = medium - base[1]
            if c2 > best_c2 and long_ - base[2] > C3:
                best, best_c2 = sid, c2
        if best is not None:
            self._promote(best, t)

    def _promote(self, speaker: str, at: float | None) -> None:
        self._dominant = speaker
        recent = self._recent
        if speaker in recent:
            recent.remove(speaker)
        recent.insert(0, speaker)
        del recent[self._history :]
        self._changed_at = at
        self.changes += 1
