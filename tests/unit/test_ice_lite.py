from aioice import stun

from tertulia.bridge.transport import ice

CREDS = ice.IceCredentials("brdg", "bridge-password-24-chars", "clnt", "client-pwd")


def check(username: str, key: str, *, use_candidate: bool = True, controlled: bool = False
          ) -> bytes:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1853817087
    if controlled:
        request.attributes["ICE-CONTROLLED"] = 1
    else:
        request.attributes["ICE-CONTROLLING"] = 12345
    if use_candidate:
        request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(key.encode())
    return bytes(request)


def test_valid_check_gets_authenticated_response_with_mapped_address() -> None:
    data = check("brdg:clnt", CREDS.local_pwd)
    message = ice.parse(data)
    assert ice.username_local_ufrag(message) == "brdg"
    result = ice.answer_check(message, CREDS, ("127.0.0.1", 40000))
    assert result.error is None and result.nominated
    assert result.response is not None
    response = stun.parse_message(result.response)
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == message.transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == ("127.0.0.1", 40000)
    assert response.check_message_integrity(CREDS.local_pwd.encode())
    assert "FINGERPRINT" in response.attributes


def test_not_nominated_without_use_candidate() -> None:
    result = ice.answer_check(
        ice.parse(check("brdg:clnt", CREDS.local_pwd, use_candidate=False)), CREDS, ("::1", 1)
    )
    assert result.error is None and not result.nominated


def test_wrong_password_and_wrong_username_are_refused() -> None:
    bad_key = ice.answer_check(ice.parse(check("brdg:clnt", "nope")), CREDS, ("127.0.0.1", 1))
    assert bad_key.response is None and bad_key.error == "bad message integrity"
    bad_user = ice.answer_check(
        ice.parse(check("brdg:other", CREDS.local_pwd)), CREDS, ("127.0.0.1", 1)
    )
    assert bad_user.response is None and bad_user.error == "username mismatch"


def test_controlled_peer_gets_role_conflict() -> None:
    result = ice.answer_check(
        ice.parse(check("brdg:clnt", CREDS.local_pwd, controlled=True)), CREDS, ("127.0.0.1", 1)
    )
    assert result.response is not None
    assert stun.parse_message(result.response).error_code == 487


def test_malformed_stun_raises_value_error() -> None:
    data = check("brdg:clnt", CREDS.local_pwd)
    truncated_header = b"\x00\x01\x00\x04" + bytes(16)
    for bad in (data[:10], data[:-1], data[:-4] + b"\x00\x00\x00\x00", truncated_header):
        try:
            ice.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted malformed STUN {bad!r}")


def test_generated_credentials_follow_rfc8445_lengths() -> None:
    creds = ice.IceCredentials.generate("r", "p")
    assert len(creds.local_ufrag) >= 4 and len(creds.local_pwd) >= 22
    assert ice.IceCredentials.generate("r", "p").local_pwd != creds.local_pwd
