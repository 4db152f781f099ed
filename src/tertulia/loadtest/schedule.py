"""Who joins where and when, and who speaks when (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Planned:
    index: int  # 0 .. N-1 over the whole run
    room: str
    position: int  # order within its room
    sender: bool  # publishes audio and video; else receive-only
    join_at: float  # seconds after the start
    worker: int


def plan(participants: int, rooms: int, *, ramp: float, senders: float, workers: int = 1,
         prefix: str = "load") -> list[Planned]:
    """Participants spread round-robin over ``rooms`` (so rooms fill evenly), joining at
    ``ramp`` per second (0: all at once), the first ``ceil(senders × size)`` of each room
    sending, and dealt round-robin to ``workers`` processes."""
    if participants < 1 or rooms < 1 or workers < 1:
        raise ValueError("participants, rooms and workers must be at least 1")
    if rooms > participants:
        raise ValueError("more rooms than participants")
    if not 0.0 <= senders <= 1.0:
        raise ValueError("the sender fraction must be between 0 and 1")
    if ramp < 0:
        raise ValueError("the join ramp must not be negative")
    sizes = [participants // rooms + (1 if r < participants % rooms else 0) for r in range(rooms)]
    out = []
    for i in range(participants):
        room, position = i % rooms, i // rooms
        out.append(Planned(
            index=i,
            room=f"{prefix}-{room}",
            position=position,
            sender=position < math.ceil(senders * sizes[room]),
            join_at=i / ramp if ramp > 0 else 0.0,
            worker=i % workers,
        ))
    return out


def speaking(pattern: str, position: int, senders_in_room: int, t: float) -> bool:
    """Whether the sender at ``position`` of its room talks (loud audio) at time ``t``.

    ``all``: every sender talks all the time; ``none``: all silent (levels 127);
    ``rotate:S``: one talker per room at a time, each for S seconds, in turn (the default,
    what the dominant speaker detector expects of a meeting).
    """
    if pattern == "all":
        return True
    if pattern == "none":
        return False
    if pattern.startswith("rotate:"):
        period = float(pattern.split(":", 1)[1])
        if senders_in_room < 1 or period <= 0:
            return False
        return int(t // period) % senders_in_room == position
    raise ValueError(f"unknown speaking pattern {pattern!r} (all, none, rotate:SECONDS)")


def check_pattern(pattern: str) -> str:
    """``pattern`` if valid, else ValueError naming the problem (for argument parsing)."""
    speaking(pattern, 0, 1, 0.0)
    if pattern.startswith("rotate:") and float(pattern.split(":", 1)[1]) <= 0:
        raise ValueError("rotate:SECONDS needs a positive number of seconds")
    return pattern
