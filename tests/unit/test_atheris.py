"""Each coverage-guided fuzz harness in fuzz/ runs a bounded number of inputs and exits cleanly.

The harnesses start from the seed corpus in fuzz/corpus/ (real Chromium captures) and write
what they discover to a temporary folder; a crash or a broken invariant makes the harness exit
non-zero and leaves the input in the temporary folder, printed below.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESSES = ["rtp", "rtcp", "stun", "dtls", "sdp", "signal"]
RUNS = 2000

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install -e '.[fuzz]')",
)


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_runs_clean(name: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "fuzz" / f"fuzz_{name}.py"),
            str(tmp_path), str(ROOT / "fuzz" / "corpus" / name),
            f"-runs={RUNS}", f"-artifact_prefix={tmp_path}/", "-seed=1",
        ],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    tail = proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    assert f"Done {RUNS} runs" in proc.stderr, tail
    assert not list(tmp_path.glob("crash-*")), tail
