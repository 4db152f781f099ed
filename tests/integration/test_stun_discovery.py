"""Advertised address by STUN against a real coturn, behind a NAT made with nftables.

In a namespace of its own the test runs coturn in STUN-only mode and a source NAT that rewrites
datagrams to it as coming from 127.0.0.9:40000; `serve` and `doctor` must report that address.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from tests.netns import coturn, in_ns, namespace, need_root_tools, sh
from tests.server import free_port

pytestmark = pytest.mark.timeout(90)

STUN_PORT = 3479
NAT_RULES = f"""
table ip tertulia_test {{
  chain postrouting {{
    type nat hook postrouting priority srcnat;
    udp dport {STUN_PORT} snat to 127.0.0.9:40000
  }}
}}
"""
SRC = str(Path(__file__).resolve().parents[2] / "src")


def until_advertised(stream: IO[str]) -> list[str]:
    """Start-up output up to the "advertised as" line (at most 30 lines; the test's timeout
    bounds a server that prints nothing)."""
    lines: list[str] = []
    for _ in range(30):
        line = stream.readline()
        lines.append(line)
        if not line or "advertised as" in line:
            break
    return lines


def tertulia(ns: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        in_ns(ns, ["env", f"PYTHONPATH={SRC}", sys.executable, "-m", "tertulia", *args]),
        capture_output=True, text=True, timeout=timeout,
    )


def test_doctor_and_serve_advertise_the_address_the_stun_server_sees(tmp_path: Path) -> None:
    need_root_tools()
    with namespace("tt-stun") as ns:
        sh("ip", "netns", "exec", ns, "nft", "-f", "-", stdin=NAT_RULES)
        with coturn(tmp_path, "127.0.0.1", STUN_PORT, ["--stun-only"], ns=ns):
            media = free_port(socket.SOCK_DGRAM)
            doctor = tertulia(ns, "doctor", "--media-port", str(media), "--stun-server",
                              f"127.0.0.1:{STUN_PORT}")
            assert "sees the media port as 127.0.0.9:40000" in doctor.stdout, doctor.stdout
            assert "the NAT changes the port" in doctor.stdout
            assert f"forward UDP {media}" in doctor.stdout
            assert "clients send media to 127.0.0.9" in doctor.stdout
            # serve asks, advertises the discovered address, then runs normally.
            proc = subprocess.Popen(
                in_ns(ns, ["env", f"PYTHONPATH={SRC}", sys.executable, "-m", "tertulia",
                           "serve", "--port", str(free_port()), "--media-port", str(media),
                           "--stun-server", f"127.0.0.1:{STUN_PORT}"]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            try:
                assert proc.stdout is not None
                lines = until_advertised(proc.stdout)
            finally:
                proc.terminate()
                out = "".join(lines) + proc.communicate(timeout=15)[0]
            assert "advertised as 127.0.0.9" in out, out
            assert "maps media port" in out


def test_serve_falls_back_when_the_stun_server_does_not_answer(tmp_path: Path) -> None:
    need_root_tools()
    with namespace("tt-stun") as ns:
        proc = subprocess.Popen(
            in_ns(ns, ["env", f"PYTHONPATH={SRC}", sys.executable, "-m", "tertulia", "serve",
                       "--port", str(free_port()), "--media-port",
                       str(free_port(socket.SOCK_DGRAM)), "--stun-server", "127.0.0.1:3999"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            assert proc.stdout is not None
            lines = until_advertised(proc.stdout)
        finally:
            proc.terminate()
            out = "".join(lines) + proc.communicate(timeout=15)[0]
        assert "did not answer 3 requests within 3.5 s" in out, out
        assert "advertising 127.0.0.1 instead" in out
        assert "advertised as 127.0.0.1" in out
        doctor = tertulia(ns, "doctor", "--stun-server", "127.0.0.1:3999")
        assert doctor.returncode == 1
        assert "FAIL  STUN discovery" in doctor.stdout
