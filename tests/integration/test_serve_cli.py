"""`tertulia serve` as a real process: flags, config file, pages, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.server import free_port

pytestmark = pytest.mark.timeout(60)


def wait_http(url: str, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def test_serve_with_flags_and_config_file(tmp_path: Path) -> None:
    port, media = free_port(), free_port(socket.SOCK_DGRAM)
    config = tmp_path / "tertulia.toml"
    config.write_text(f'port = 1\nmedia_port = {media}\nlog_level = "warning"\n')
    env = {**os.environ, "TERTULIA_SLOTS": "4"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tertulia", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/about/health") == 200
        assert wait_http(f"http://127.0.0.1:{port}/") == 200
        assert wait_http(f"http://127.0.0.1:{port}/some-room") == 200
        assert wait_http(f"http://127.0.0.1:{port}/bad%20room") == 400
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/about/bridge/stats") as resp:
            assert f'"media_port": {media}' in resp.read().decode()
        # The media port from the config file is really bound.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
            s.bind(("127.0.0.1", media))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert f"http://localhost:{port}/" in out


def test_bad_configuration_is_reported() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tertulia", "serve", "--public-ip", "not-an-ip"],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 2
    assert "public_ip" in result.stderr


async def test_sigterm_closes_client_connections_promptly() -> None:
    import asyncio

    import aiohttp

    port, media = free_port(), free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tertulia", "serve", "--port", str(port), "--media-port",
         str(media)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/about/health")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"ws://127.0.0.1:{port}/ws")
            await ws.send_json({"type": "join", "room": "bye", "name": "x", "id": 1})
            assert (await ws.receive_json(timeout=5))["type"] == "welcome"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1001
            await asyncio.to_thread(proc.wait, 10)
            assert time.monotonic() - t0 < 10
            assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
