"""Every program in examples/ runs to the end by itself and its output shows the behaviour.

The examples start at once (module fixture) and run side by side, so the file costs about as
long as the slowest example rather than the sum of all of them.
"""

from __future__ import annotations

import ast
import itertools
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = [
    "round_robin_dns",
    "primary_secondary_dns",
    "push_docroot",
    "sql_and_binlog",
    "cluster_in_a_test",
]


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in NAMES
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _output(runs: dict[str, subprocess.Popen[str]], name: str) -> str:
    """The example's stdout once it has exited by itself, successfully."""
    out, err = runs[name].communicate(timeout=60)
    assert runs[name].returncode == 0, f"{name} failed:\n{out}\n{err}"
    return out


def test_every_example_is_tested() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(NAMES)


def test_round_robin_rotates_by_one_per_answer(runs: dict[str, subprocess.Popen[str]]) -> None:
    out = _output(runs, "round_robin_dns")
    answers = [
        line.split(": ")[1].split() for line in out.splitlines() if line.startswith("answer")
    ]
    assert len(answers) == 6
    assert sorted(answers[0]) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    for before, after in itertools.pairwise(answers):
        assert after == before[1:] + before[:1]
    assert out.rstrip().endswith("server stopped")


def test_secondary_gets_the_edit_by_notify(runs: dict[str, subprocess.Popen[str]]) -> None:
    out = _output(runs, "primary_secondary_dns")
    serials = [
        int(line.split()[4]) for line in out.splitlines() if line.startswith("secondary SOA")
    ]
    assert serials == [1, 2]
    assert "secondary www: ['192.0.2.1']" in out
    assert "secondary new: ['192.0.2.99']" in out


def test_second_push_sends_only_the_change(runs: dict[str, subprocess.Popen[str]]) -> None:
    out = _output(runs, "push_docroot")
    stats = [
        (int(m[1]), int(m[2]))
        for m in re.finditer(r"literal (\d+) bytes, matched (\d+) bytes", out)
    ]
    assert len(stats) == 4  # two receivers, two pushes
    for literal, matched in stats[:2]:
        assert literal > 200_000 and matched == 0
    for literal, matched in stats[2:]:
        assert literal < 2_000 and matched > 190_000
    assert out.count("photo.bin identical to web1's: True") == 2


def test_sql_rows_and_binlog_events_are_printed(runs: dict[str, subprocess.Popen[str]]) -> None:
    out = _output(runs, "sql_and_binlog")
    assert re.search(r"^  1 \| lamp \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", out, re.M)
    assert re.search(r"^  2 \| bulb \| ", out, re.M)
    assert re.search(r"^  db1-bin\.000001 \| \d+ \|", out, re.M)  # SHOW MASTER STATUS
    # The INSERT is logged with NOW() already replaced by the time it had.
    logged = re.search(r"\| Query \| 1 \| \d+ \| use `shop`; (INSERT INTO orders .*)$", out, re.M)
    assert logged is not None and "NOW()" not in logged[1] and "'lamp', '20" in logged[1]


def test_ns2_answers_after_ns1_is_killed(runs: dict[str, subprocess.Popen[str]]) -> None:
    out = _output(runs, "cluster_in_a_test")
    answers = {
        line.split(" answers")[0].split(" at ")[0]: ast.literal_eval(line.split(": ", 1)[1])
        for line in out.splitlines()
        if "answers www.foo.com" in line
    }
    www = ["127.0.2.1", "127.0.2.2"]
    assert answers == {"ns1": www, "ns2": www, "ns2 still": www}
    assert "ns1 killed, running: False" in out
    # The example has exited; its name servers (child processes) must be gone with it.
    servers = re.findall(r"^ns\d at \('([\d.]+)', (\d+)\)", out, re.M)
    assert len(servers) == 2
    for host, port in servers:
        with socket.socket() as tcp:
            assert tcp.connect_ex((host, int(port))) != 0, f"{host}:{port} still listening"
