"""The /ws?room= rule that keeps a room on one shard."""

from __future__ import annotations

import pytest

from tertulia.protocol.messages import ProtocolError
from tertulia.signal.sharding import check_room_param


def test_the_join_must_name_the_routed_room() -> None:
    check_room_param("Stand-Up", "stand-up", required=True)  # compared lower-cased
    check_room_param(None, "stand-up", required=False)  # one process: no parameter needed
    with pytest.raises(ProtocolError) as info:
        check_room_param("stand-up", "retro", required=False, ref=7)
    assert info.value.code == "wrong-room" and info.value.reply()["ref"] == 7
    with pytest.raises(ProtocolError) as info:
        check_room_param(None, "retro", required=True)
    assert info.value.code == "room-param-required"
    with pytest.raises(ProtocolError):
        check_room_param("not a room!", "retro", required=False)
