"""`python -m pylamp.cluster` end to end, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pylamp.config import default_topology, dump_topology, load_topology


def _cluster(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pylamp.cluster", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_print_config_writes_the_default_topology_as_toml_that_loads_back(tmp_path: Path) -> None:
    done = _cluster("--print-config", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == dump_topology(default_topology())
    path = tmp_path / "cluster.toml"
    path.write_text(done.stdout)
    assert load_topology(path) == default_topology()
    again = _cluster("--config", str(path), "--print-config", cwd=tmp_path)
    assert again.stdout == done.stdout


def test_a_bad_topology_file_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[dns.ns1]\nhost = '127.0.0.1'\nport = 'fifty'\n")
    done = _cluster("--config", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert f"{path}: dns.ns1.port: expected an integer" in done.stderr


def test_unknown_server_in_only_is_refused(tmp_path: Path) -> None:
    done = _cluster("--only", "ns9", cwd=tmp_path)
    assert done.returncode == 2
    assert "no server 'ns9'" in done.stderr
