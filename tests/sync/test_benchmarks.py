"""The sync benchmarks run in their smallest mode, so they cannot rot (no timings checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_sync_throughput_quick() -> None:
    out = _run("benchmarks/sync_throughput.py", "--quick")
    # Each scenario ran both tools (the benchmark itself checks both copies against the source).
    for label in (
        "A push wall time",
        "A bytes on the wire",
        "A no-change push",
        "B push wall time",
        "B bytes on the wire",
        "delta, no change",
        "delta, with edits",
    ):
        assert label in out, out
    assert "rsync version" in out


def test_sync_latency_smallest() -> None:
    out = _run(
        "benchmarks/sync_latency.py",
        "--quick", "--no-lsyncd", "--edits", "2", "--burst", "5", "--debounce", "0",
    )  # fmt: skip
    assert "pylamp watch, debounce 0 " in out, out
    assert "burst target" in out, out
