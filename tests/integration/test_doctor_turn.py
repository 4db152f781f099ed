"""`tertulia doctor` against a real coturn on loopback: reachable, right and wrong secret."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import ssl
import time
from pathlib import Path

import pytest

from tertulia.config import Settings
from tertulia.doctor import check_turn
from tertulia.tls import make_self_signed
from tertulia.turn_probe import TurnProbeError, TurnUrl, probe
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


def test_deploy_coturn_config_is_accepted_by_coturn(tmp_path: Path) -> None:
    """deploy/coturn/turnserver.conf as coturn reads it (ports and certificate paths swapped
    for test ones): no option it does not know, and the REST API secret it says it uses."""
    if not os.path.exists("/usr/bin/turnserver"):
        pytest.fail("coturn is not installed: run scripts/install-system-deps.sh")
    conf = (Path(__file__).resolve().parents[2] / "deploy/coturn/turnserver.conf").read_text()
    cert, key = make_self_signed(["localhost"], dt.datetime.now(dt.UTC))
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    port, tls_port = free_port(socket.SOCK_DGRAM), free_port()
    conf = (conf.replace("listening-port=3478", f"listening-port={port}")
            .replace("tls-listening-port=443", f"tls-listening-port={tls_port}")
            .replace("/etc/letsencrypt/live/turn.example.org/fullchain.pem",
                     str(tmp_path / "c.pem"))
            .replace("/etc/letsencrypt/live/turn.example.org/privkey.pem",
                     str(tmp_path / "k.pem"))
            .replace("log-file=/var/log/turnserver/turnserver.log", ""))
    (tmp_path / "turnserver.conf").write_text(conf)
    secret = "change-me-to-a-long-random-secret"
    trust = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
    with coturn(tmp_path, "127.0.0.1", port, ["-c", str(tmp_path / "turnserver.conf")],
                config=True) as log:
        checks = check_turn(Settings(turn_secret=secret, turn_urls=(
            f"turn:127.0.0.1:{port}?transport=tcp", f"turns:localhost:{tls_port}",
        )), time.time())
        # TURN over TLS with a client that trusts this certificate.
        relayed = asyncio.run(probe(f"turns:localhost:{tls_port}", secret, 60, time.time(),
                                    tls_context=trust))
        text = log.read_text()
    assert "Bad configuration format" not in text, text
    # The deployed settings serve TURN with the REST API secret, and TURN over TLS.
    assert checks[0].status == "pass", checks
    assert relayed.startswith("127.0.0.1:")
    # doctor verifies the certificate of a turns: server (a self-signed one fails).
    assert checks[1].status == "fail" and "CERTIFICATE_VERIFY_FAILED" in checks[1].detail
