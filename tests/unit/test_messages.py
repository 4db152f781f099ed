import json

import pytest

from tertulia.protocol.messages import (
    Join,
    Mute,
    Offer,
    ProtocolError,
    normalize_room,
    parse_client_message,
)

LIMIT = 64 * 1024


def parse(obj: object) -> object:
    return parse_client_message(json.dumps(obj), LIMIT)


def test_join_is_validated_and_normalized() -> None:
    message, ref = parse({"type": "join", "room": "Blue-Fox", "name": "  Ana   M ", "id": 7})
    assert message == Join("blue-fox", "Ana M", False, False)
    assert ref == 7


@pytest.mark.parametrize(
    ("payload", "code", "needle"),
    [
        ("not json", "bad-json", "JSON"),
        ("[1,2]", "bad-json", "object"),
        ('{"room": "x"}', "bad-message", "type"),
        ('{"type": "frobnicate"}', "bad-message", "frobnicate"),
        ('{"type": "join"}', "bad-message", "room"),
        ('{"type": "join", "room": 5}', "bad-message", "room"),
        ('{"type": "join", "room": "../etc"}', "invalid-room", "room names"),
        ('{"type": "offer"}', "bad-message", "sdp"),
        ('{"type": "mute", "audioMuted": "yes"}', "bad-message", "audioMuted"),
        ('{"type": "ping", "id": true}', "bad-message", "id"),
    ],
)
def test_bad_messages_name_the_problem(payload: str, code: str, needle: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(payload, LIMIT)
    assert info.value.code == code
    assert needle in info.value.message
    assert info.value.reply()["type"] == "error"


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message("x" * (LIMIT + 1), LIMIT)
    assert info.value.code == "too-large"


def test_ref_is_echoed_in_errors() -> None:
    with pytest.raises(ProtocolError) as info:
        parse({"type": "offer", "id": "abc"})
    assert info.value.reply()["ref"] == "abc"


def test_offer_and_mute() -> None:
    assert parse({"type": "offer", "sdp": "v=0"})[0] == Offer("v=0")  # type: ignore[index]
    assert parse({"type": "mute", "videoMuted": True})[0] == Mute(None, True)  # type: ignore[index]


def test_room_names() -> None:
    assert normalize_room("Team.Sync_2") == "team.sync_2"
    for bad in ("", "-x", "a b", "a/b", "x" * 65, "ñ"):
        assert normalize_room(bad) is None
