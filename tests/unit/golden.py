"""Loader for the golden Chromium 156 capture in tests/data (see /work/shared/data/README.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parents[1] / "data"

VIDEO = "chrome156-vp8-simulcast.jsonl"
AUDIO = "chrome156-opus.jsonl"
RTCP = "chrome156-rtcp.jsonl"
RTCP_TWCC = "chrome156-rtcp-twcc.jsonl"


@dataclass(frozen=True, slots=True)
class Record:
    t_ms: float
    kind: str
    data: bytes
    orig_len: int | None  # set only on packets truncated to header + 64 payload bytes

    @property
    def truncated(self) -> bool:
        return self.orig_len is not None

    @property
    def length(self) -> int:
        return self.orig_len if self.orig_len is not None else len(self.data)


@cache
def load(name: str) -> tuple[Record, ...]:
    out = []
    with open(DATA / name) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out.append(Record(r["t_ms"], r["kind"], bytes.fromhex(r["hex"]), r.get("len")))
    return tuple(out)


@cache
def info(name: str = "chrome156-capture-info.json") -> dict[str, Any]:
    with open(DATA / name) as f:
        result: dict[str, Any] = json.load(f)
    return result


def rid_ssrcs(name: str = "chrome156-capture-info.json") -> dict[str, int]:
    """rid -> media SSRC, from Chrome's getStats."""
    return {rid: v["ssrc"] for rid, v in info(name)["chrome_ssrcs"]["video"].items()}


def rid_rtx_ssrcs(name: str = "chrome156-capture-info.json") -> dict[str, int]:
    """rid -> RTX SSRC."""
    return {rid: v["rtx_ssrc"] for rid, v in info(name)["chrome_ssrcs"]["video"].items()}
