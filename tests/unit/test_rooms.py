from typing import Any

from tertulia.signal.rooms import Participant, Rooms


def make(pid: str, inbox: list[dict[str, Any]]) -> Participant:
    return Participant(pid, pid.upper(), False, False, inbox.append, lambda: None)


def test_presence_join_update_leave() -> None:
    rooms = Rooms()
    a_box: list[dict[str, Any]] = []
    b_box: list[dict[str, Any]] = []
    a, b = make("a", a_box), make("b", b_box)
    rooms.join("r", a)
    rooms.join("r", b)
    assert a_box == [{"type": "participant-joined", "participant": b.public()}]
    assert b_box == []  # the newcomer learns of others from `welcome`, not from an event
    b.audio_muted = True
    rooms.update(b)
    assert a_box[-1]["type"] == "participant-updated"
    assert a_box[-1]["participant"]["audioMuted"] is True
    assert rooms.leave(b, "left")
    assert a_box[-1] == {"type": "participant-left", "id": "b", "reason": "left"}
    assert not rooms.leave(b, "left")  # idempotent
    assert rooms.leave(a, "disconnected")
    assert rooms.rooms == {}
