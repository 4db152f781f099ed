"""Pure rule: a room lives on one shard, the one the front chose from the /ws URL's room."""

from __future__ import annotations

from typing import Any

from tertulia.protocol.messages import ProtocolError, normalize_room


def check_room_param(room_param: str | None, room: str, *, required: bool,
                     ref: Any = None) -> None:
    """Raise unless ``room`` (normalized) is the room named by ``/ws?room=``.

    Without the parameter a join is accepted only when not ``required`` (one process cannot
    split a room; a shard behind a hashing front can).
    """
    if room_param is None:
        if required:
            raise ProtocolError("room-param-required",
                                "connect to /ws?room=<room> (this server is a shard)", ref)
        return
    if normalize_room(room_param) != room:
        raise ProtocolError("wrong-room", "join the room named in the /ws URL's room parameter",
                            ref)
