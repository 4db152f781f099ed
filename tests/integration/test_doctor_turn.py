"""`tertulia doctor` against a real coturn on loopback: reachable, right and wrong secret."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from tertulia.config import Settings
from tertulia.doctor import check_turn
from tertulia.turn_probe import TurnProbeError, TurnUrl
from tests.netns import coturn
from tests.server import free_port

pytestmark = pytest.mark.timeout(60)
SECRET = "doctor-turn-secret-0123456789"


def test_turn_urls_parse_with_rfc_7065_defaults() -> None:
    assert TurnUrl.parse("turn:t.example.org") == TurnUrl("t.example.org", 3478, "udp", False)
    assert TurnUrl.parse("turns:t.example.org") == TurnUrl("t.example.org", 5349, "tcp", True)
    assert TurnUrl.parse("turn:[::1]:3479?transport=tcp") == TurnUrl("::1", 3479, "tcp", False)
    with pytest.raises(TurnProbeError):
        TurnUrl.parse("turns:t.example.org?transport=udp")


def test_doctor_turn_checks(tmp_path: Path) -> None:
    if not os.path.exists("/usr/bin/turnserver"):
        pytest.fail("coturn is not installed: run scripts/install-system-deps.sh")
    port = free_port(socket.SOCK_DGRAM)
    extra = ["--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm", "tertulia.test",
             "--relay-ip", "127.0.0.1", "--min-port", "49300", "--max-port", "49320"]
    urls = (f"turn:127.0.0.1:{port}", f"turn:127.0.0.1:{port}?transport=tcp")
    with coturn(tmp_path, "127.0.0.1", port, extra):
        good = check_turn(Settings(turn_secret=SECRET, turn_urls=urls), time.time())
        assert [c.status for c in good] == ["pass", "pass"], good
        assert "allocated and released relay 127.0.0.1:493" in good[0].detail
        wrong = check_turn(Settings(turn_secret="not-the-secret", turn_urls=urls), time.time())
        assert [c.status for c in wrong] == ["fail", "fail"], wrong
        assert "401" in wrong[1].detail and "static-auth-secret" in wrong[1].detail
    # Nobody listening (TCP): refused at once, with the fix.
    gone = check_turn(Settings(turn_secret=SECRET, turn_urls=(urls[1],)), time.time())
    assert gone[0].status == "fail" and "cannot connect" in gone[0].detail
    assert "turn_secret" in gone[0].fix
