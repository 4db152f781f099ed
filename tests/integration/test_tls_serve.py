"""`tertulia serve` over HTTPS/WSS as a real process (our own accept loop with TLS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tertulia.tls import CERT_NAME, make_self_signed
from tests.server import free_port

pytestmark = pytest.mark.timeout(60)


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 15.0) -> str:
    """Lines of the server's output up to the one containing `needle` (bounded in time)."""
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not printed; output so far:\n{seen}")


async def test_serve_self_signed_https_and_wss(tmp_path: Path) -> None:
    port, media = free_port(), free_port(socket.SOCK_DGRAM)
    env = {**os.environ, "TERTULIA_SELF_SIGNED_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "tertulia", "serve", "--self-signed", "--port", str(port),
           "--media-port", str(media)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        out = await asyncio.to_thread(read_until, proc, "cached)")
        assert f"https://localhost:{port}/" in out
        assert "Advanced -> Proceed" in out and "SHA-256 fingerprint" in out
        assert "certificate (new, cached)" in out
        # Clients that trust exactly this certificate get HTTPS and WSS.
        trust = ssl.create_default_context(cafile=str(tmp_path / CERT_NAME))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/about/tls", ssl=trust) as resp:
                about = await resp.json()
            assert about["tls"] is True and about["selfSigned"] is True
            assert about["fingerprint"] in out
            ws = await http.ws_connect(f"wss://127.0.0.1:{port}/ws", ssl=trust)
            await ws.send_json({"type": "join", "room": "tls", "name": "x", "id": 1})
            assert (await ws.receive_json(timeout=5))["type"] == "welcome"
            await ws.close()
            # Plain HTTP on the TLS port is refused rather than served in clear.
            with pytest.raises(aiohttp.ClientError):
                await http.get(f"http://127.0.0.1:{port}/about/health")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    assert proc.returncode == 0
    # A second start reuses the cached certificate.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        out = await asyncio.to_thread(read_until, proc, "cached)")
        assert "certificate (cached)" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)


def test_mismatched_key_is_a_clear_start_error(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    cert, _ = make_self_signed(["localhost"], now)
    _, other_key = make_self_signed(["localhost"], now)
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(other_key)
    result = subprocess.run(
        [sys.executable, "-m", "tertulia", "serve", "--port", str(free_port()),
         "--media-port", str(free_port(socket.SOCK_DGRAM)),
         "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 1
    assert "private key does not belong to the certificate" in result.stderr
