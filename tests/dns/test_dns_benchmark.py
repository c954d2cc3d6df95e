"""benchmarks/dns_qps.py still runs (shortest mode); its numbers are not checked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dns_qps.py"


def test_dns_qps_benchmark_quick_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = {
        m.group(1): m
        for m in re.finditer(r"^(pylamp|pylamp-2w|bind|dnslib)\s+8\s+500\s+(\d+)", out, re.M)
    }
    assert set(rows) == {"pylamp", "pylamp-2w", "bind", "dnslib"}, out
    assert int(rows["pylamp"].group(2)) > 0
    assert int(rows["pylamp-2w"].group(2)) > 0
    assert re.search(r"pylamp server memory: [\d.]+ MB RSS", out)
