import json

import pytest

from tertulia.protocol.messages import (
    ProtocolError,
    Request,
    clean_name,
    normalize_room,
    parse_client_message,
)

LIMIT = 64 * 1024


def parse(obj: object) -> Request:
    return parse_client_message(json.dumps(obj), LIMIT)


def test_join_is_validated_and_normalized() -> None:
    request = parse({"type": "join", "room": "Blue-Fox", "name": "  Ana   M ", "id": 7, "x": 1})
    assert request == Request("join", {"room": "blue-fox", "name": "Ana M"}, 7)


def test_names_lose_control_characters() -> None:
    assert clean_name("A\u202enna\x00\x1b[31m  B") == "Anna[31m B"
    assert len(clean_name("x" * 500)) == 64


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
        ('{"type": "mute-all", "kind": "smell"}', "bad-message", "audio, video"),
        ('{"type": "set-password", "password": 5}', "bad-message", "string or null"),
        ('{"type": "set-password"}', "bad-message", "password"),
        ('{"type": "chat", "text": "' + "x" * 9000 + '"}', "too-large", "text"),
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


def test_offer_mute_and_controls() -> None:
    assert parse({"type": "offer", "sdp": "v=0"}).data == {"sdp": "v=0"}
    assert parse({"type": "mute", "videoMuted": True}).data == {"videoMuted": True}
    assert parse({"type": "set-password", "password": None}).data == {"password": None}
    assert parse({"type": "kick", "participant": "p-1"}).get("message") is None


def test_room_names() -> None:
    assert normalize_room("Team.Sync_2") == "team.sync_2"
    for bad in ("", "-x", "a b", "a/b", "x" * 65, "ñ"):
        assert normalize_room(bad) is None
