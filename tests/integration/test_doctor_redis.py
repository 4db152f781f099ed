"""`tertulia doctor`'s Redis check against a real redis-server on loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tertulia.doctor import check_redis
from tests.server import free_port

pytestmark = pytest.mark.timeout(30)


def test_redis_reachable_and_not(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"redis://:s3cret@127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        check = check_redis(url)
        while check.status != "pass" and time.monotonic() < deadline:  # bounded start-up wait
            time.sleep(0.1)
            check = check_redis(url)
        assert check.status == "pass", check
        assert f"127.0.0.1:{port}/0 answers (Redis " in check.detail
        assert "s3cret" not in check.detail
        wrong = check_redis(f"redis://:wrong@127.0.0.1:{port}/0")
        assert wrong.status == "fail" and "wrong" not in wrong.detail
    finally:
        proc.terminate()
        proc.wait(10)
    gone = check_redis(url)
    assert gone.status == "fail" and "redis URL" in gone.fix
