"""Coverage-guided fuzzing of signalling and bridge-channel message validation.

    python fuzz/fuzz_signal.py NEW_INPUTS_DIR fuzz/corpus/signal -runs=100000

Invariants: ``parse_client_message`` raises only ``ProtocolError`` with a code and a message;
a validated ``join`` has a normalised room name and a cleaned display name (no control or
format characters, at most 64 characters); the bridge channel answers every frame without
raising and its constraints parser raises only ``ConstraintsError``.
"""

from __future__ import annotations

import contextlib
import sys
import unicodedata

import atheris

with atheris.instrument_imports(include=["tertulia"]):
    from tertulia.bridge.channel import handle_client_message
    from tertulia.bridge.constraints import (
        ConstraintsError,
        ReceiverConstraints,
        parse_constraints,
    )
    from tertulia.protocol.messages import (
        MAX_NAME,
        ROOM_RE,
        ProtocolError,
        parse_client_message,
    )


def test_one_input(data: bytes) -> None:
    try:
        request = parse_client_message(data, 64 * 1024)
    except ProtocolError as exc:
        reply = exc.reply()
        if not (reply["code"] and reply["message"]):
            raise AssertionError("an error without code or message") from exc
    else:
        if request.type == "join":
            name = request.data["name"]
            if not ROOM_RE.match(request.data["room"]) or len(name) > MAX_NAME:
                raise AssertionError("join passed with a bad room or an overlong name")
            if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
                raise AssertionError(f"control/format character left in name {name!r}")
    text = data.decode("utf-8", "replace")
    _reply, action = handle_client_message(text)
    if action is not None and action[0] == "constraints":
        with contextlib.suppress(ConstraintsError):
            parse_constraints(action[1], ReceiverConstraints())


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
