"""Run the shipped HAProxy configuration (deploy/haproxy.cfg) for a test: bound to loopback,
its shard servers pointed at the test's processes, its room map in a temporary file."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy.cfg"


@contextmanager
def haproxy(port: int, shards: dict[str, str], forced: dict[str, str]) -> Iterator[str]:
    """``shards``: server name → "address:port" of that shard."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        pytest.skip("haproxy is not installed (scripts/install-system-deps.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        rooms_map = Path(tmp) / "rooms.map"
        rooms_map.write_text("".join(f"{room} {server}\n" for room, server in forced.items()))
        text = CONFIG.read_text()
        text = text.replace("/etc/haproxy/tertulia-rooms.map", str(rooms_map))
        text = text.replace("bind :80", f"bind 127.0.0.1:{port}")
        text = text.replace("maxconn 50000", "maxconn 1000")  # within this machine's fd limit
        text = re.sub(r"(?m)^    server shard(\d) \S+$",
                      lambda m: f"    server shard{m[1]} {shards['shard' + m[1]]}", text)
        assert all(f"    server {name} {where}\n" in text for name, where in shards.items())
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(text)
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, timeout=10)
        assert check.returncode == 0, check.stderr.decode()
        with open(Path(tmp) / "haproxy.log", "wb") as log:
            proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log,
                                    stderr=subprocess.STDOUT)
            try:
                yield f"127.0.0.1:{port}"
            finally:
                proc.kill()
                proc.wait(timeout=10)
