"""`tertulia bridge` and `tertulia shard` refuse to start without what they need, clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cluster_procs import SRC

pytestmark = pytest.mark.timeout(60)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TERTULIA_")}
    return subprocess.run([sys.executable, "-m", "tertulia", *args], capture_output=True,
                          text=True, timeout=30, env={**clean, "PYTHONPATH": SRC, **env})


@pytest.mark.parametrize("command", ["bridge", "shard"])
def test_refuses_to_start_without_a_control_secret(command: str) -> None:
    result = run(command, "--port" if command == "shard" else "--control-port", "1")
    assert result.returncode == 2
    assert "control_secret" in result.stderr


def test_refuses_a_short_secret_and_a_bad_redis_url() -> None:
    result = run("bridge", TERTULIA_CONTROL_SECRET="short")
    assert result.returncode == 2 and "at least 32 bytes" in result.stderr
    result = run("shard", "--redis", "localhost:6379", TERTULIA_CONTROL_SECRET="s" * 32)
    assert result.returncode == 2 and "redis://" in result.stderr


def test_refuses_an_unknown_selection_strategy() -> None:
    result = run("shard", "--bridge-selection", "fastest", TERTULIA_CONTROL_SECRET="s" * 32)
    assert result.returncode == 2 and "fastest" in result.stderr
