"""A participant that can reach only a TURN server, by TCP, still gets media (real coturn).

Two network namespaces made by the test, joined by a veth pair (198.51.100.0/24):

  srv: `tertulia serve` (media on 127.0.0.1, advertised as such), coturn listening on
       198.51.100.1:3478 with `use-auth-secret` and relaying from 127.0.0.1, and participant
       A (aiortc, straight to the bridge on loopback);
  cli: participant B (aiortc) whose nftables rules drop every UDP datagram it sends. The
       bridge's only candidate, 127.0.0.1, is B's own loopback, so B can reach the bridge only
       through coturn over TCP, with the credentials from its `welcome`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.netns import coturn, in_ns, namespace, need_root_tools, sh
from tests.server import free_port

pytestmark = pytest.mark.timeout(120)

SECRET = "turn-test-secret-0123456789"
TURN = "198.51.100.1"
RELAY_PORTS = (49160, 49200)
ROOT = Path(__file__).resolve().parents[2]
BLOCK_UDP = """
table inet tertulia_test {
  chain output { type filter hook output priority filter; meta l4proto udp drop; }
}
"""


class Proc:
    """A subprocess whose output lines are collected by a reader thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, check: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if check(line):
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError("not seen; output:\n" + "".join(self.lines[-40:]))

    def reports(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)


@contextmanager
def running(argv: list[str], env: dict[str, str]) -> Iterator[Proc]:
    proc = Proc(argv, env)
    try:
        yield proc
    finally:
        proc.stop()


def python(ns: str, *args: str) -> list[str]:
    return in_ns(ns, [sys.executable, *args])


def test_participant_without_udp_gets_media_through_coturn_over_tcp(tmp_path: Path) -> None:
    need_root_tools()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    port, media = free_port(), free_port(socket.SOCK_DGRAM)
    with ExitStack() as stack:
        srv = stack.enter_context(namespace("tt-srv"))
        cli = stack.enter_context(namespace("tt-cli"))
        sh("ip", "link", "add", "tt0", "netns", srv, "type", "veth", "peer", "name", "tt1",
           "netns", cli)
        sh("ip", "-n", srv, "addr", "add", f"{TURN}/24", "dev", "tt0")
        sh("ip", "-n", cli, "addr", "add", "198.51.100.2/24", "dev", "tt1")
        sh("ip", "-n", srv, "link", "set", "tt0", "up")
        sh("ip", "-n", cli, "link", "set", "tt1", "up")
        sh("ip", "netns", "exec", cli, "nft", "-f", "-", stdin=BLOCK_UDP)

        turn_log = stack.enter_context(coturn(tmp_path, TURN, 3478, [
            "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm", "tertulia.test",
            "--relay-ip", "127.0.0.1", "--allow-loopback-peers", "--verbose",
            "--min-port", str(RELAY_PORTS[0]), "--max-port", str(RELAY_PORTS[1]),
        ], ns=srv))
        server_env = {
            **env,
            "TERTULIA_MEDIA_HOST": "127.0.0.1",
            "TERTULIA_TURN_SECRET": SECRET,
            "TERTULIA_TURN_URLS": f"turn:{TURN}:3478?transport=tcp",
        }
        server = stack.enter_context(running(python(
            srv, "-m", "tertulia", "serve", "--host", "0.0.0.0", "--port", str(port),
            "--media-port", str(media), "--public-ip", "127.0.0.1"), server_env))
        server.wait_for(lambda line: "advertised as 127.0.0.1" in line, 20)

        a = stack.enter_context(running(python(
            srv, "-m", "tests.media_peer", f"ws://127.0.0.1:{port}/ws", "turn-room", "A", "90",
            "--loopback"), env))
        b = stack.enter_context(running(python(
            cli, "-m", "tests.media_peer", f"ws://{TURN}:{port}/ws", "turn-room", "B", "90",
            "--turn"), env))
        a_id = json.loads(a.wait_for(lambda line: line.startswith('{"id"'), 30))["id"]
        b_id = json.loads(b.wait_for(lambda line: line.startswith('{"id"'), 30))["id"]

        def receives(proc: Proc, other: str) -> Callable[[str], bool]:
            def check(line: str) -> bool:
                if not line.startswith('{"video"'):
                    return False
                report = json.loads(line)
                return bool(report["video"].get(other, 0) >= 30
                            and report["audio"].get(other, 0) >= 50)
            return check

        # Media flows both ways: B's only way in and out is coturn.
        b.wait_for(receives(b, a_id), 60)
        a.wait_for(receives(a, b_id), 30)
        assert b.reports()[-1]["local"] == "relay", b.reports()[-1]

    log = turn_log.read_text()
    # coturn accepted B's time-limited REST API credential ("expiry:participant").
    assert f":{b_id}" in log and "ALLOCATE processed, success" in log, log[-3000:]
    assert "remote 198.51.100.2" in log and "TCP" in log
