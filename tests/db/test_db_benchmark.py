"""benchmarks/db_throughput.py still runs (shortest mode, pylamp's half only: starting MariaDB
as well would double the time); its numbers are not checked, only that every figure appears."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "db_throughput.py"


def test_db_throughput_benchmark_quick_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--seconds", "0.2", "--only", "pylamp"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for label in (
        r"point SELECT by PK \(round trips/s\)",
        r"autocommit INSERT, durable \(rows/s\)",
        r"autocommit INSERT, relaxed \(rows/s\)",
    ):
        m = re.search(rf"^{label}\s+(\d+)$", out, re.M)
        assert m is not None, out
        assert int(m.group(1)) > 0
