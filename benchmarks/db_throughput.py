"""pylamp's SQL server against MariaDB, side by side, driven by the same PyMySQL client.

Both servers get a fresh temporary data directory on 127.0.0.1 and the binary log on. The
figures, each measured back to back on one connection for the same duration:

* point SELECT by primary key, round trips per second (target: pylamp >= 0.5x MariaDB);
* single-row autocommit INSERT, durable: pylamp with sync_binlog=1 against MariaDB with
  sync_binlog=1 and innodb_flush_log_at_trx_commit=1 (target >= 1.0x);
* the same INSERT relaxed: pylamp with sync_binlog=0 against MariaDB with sync_binlog=0 and
  innodb_flush_log_at_trx_commit=2 (for orientation).

Usage: ``.venv/bin/python benchmarks/db_throughput.py [--quick] [--only pylamp|mariadb]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql

ROWS = 1000
PAYLOAD = "x" * 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: where to connect, and how to switch its flushing policy."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    relax: Callable[[], None]

    def connect(self, db: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", password="", database=db, autocommit=True
        )


def _wait_ready(server: Server, log: Path, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{log.read_text()[-3000:]}")
        try:
            server.connect().close()
            return
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} not ready:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def mariadb(workdir: Path) -> Iterator[Server]:
    """Debian's mariadbd on a fresh data directory: binlog on, durable flushing."""
    datadir = workdir / "mariadb"
    log = workdir / "mariadb.log"
    with open(log, "wb") as out:
        subprocess.run(
            [
                shutil.which("mariadb-install-db") or "mysql_install_db",
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    port = _free_port()
    daemon = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    cmd = [
        daemon,
        "--no-defaults",
        f"--datadir={datadir}",
        f"--socket={workdir / 'mariadb.sock'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--user=root",
        f"--log-bin={datadir / 'bench-bin'}",
        "--server-id=1",
        "--sync-binlog=1",
        "--innodb-flush-log-at-trx-commit=1",
        "--skip-name-resolve",
        "--performance-schema=OFF",
        f"--log-error={log}",
    ]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server("MariaDB", port, process, lambda: None)

    def relax() -> None:
        with server.connect() as c, c.cursor() as cur:
            cur.execute("SET GLOBAL sync_binlog = 0")
            cur.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")

    server.relax = relax
    try:
        _wait_ready(server, log)
        yield server
    finally:
        _stop(process)


def _start_pylamp(workdir: Path, sync_binlog: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = _free_port()
    log = workdir / "pylamp.log"
    cmd = [
        sys.executable,
        "-m",
        "pylamp.db",
        "--data-dir",
        str(workdir / "pylamp"),
        "--listen",
        f"127.0.0.1:{port}",
        "--server-id",
        "1",
        "--log-bin",
        "bench",
        "--sync-binlog",
        str(sync_binlog),
    ]
    out = open(log, "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return process, port, log


@contextlib.contextmanager
def pylamp(workdir: Path) -> Iterator[Server]:
    """``python -m pylamp.db`` on a fresh data directory with sync_binlog=1."""
    process, port, log = _start_pylamp(workdir, 1)
    server = Server("pylamp", port, process, lambda: None)

    def relax() -> None:
        # sync_binlog is a start-up option of ours: restart on the same data directory
        _stop(server.process)
        server.process, server.port, _ = _start_pylamp(workdir, 0)
        _wait_ready(server, log)

    server.relax = relax
    try:
        _wait_ready(server, log)
        yield server
    finally:
        _stop(server.process)


def setup(server: Server) -> None:
    """Create the benchmark database: a table of ROWS rows to select, one to insert into."""
    with server.connect() as c, c.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS bench")
        cur.execute("CREATE DATABASE bench")
        cur.execute("USE bench")
        cur.execute("CREATE TABLE pt (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL)")
        cur.execute("CREATE TABLE ins (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(64) NOT NULL)")
        cur.execute("BEGIN")
        cur.executemany(
            "INSERT INTO pt (id, v) VALUES (%s, %s)", [(i, PAYLOAD) for i in range(ROWS)]
        )
        cur.execute("COMMIT")


def point_selects(server: Server, seconds: float) -> tuple[int, float]:
    """Round trips of ``SELECT ... WHERE id = ?`` on one connection: (count, seconds taken)."""
    rng = random.Random(1)
    with server.connect("bench") as c, c.cursor() as cur:
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            cur.execute("SELECT id, v FROM pt WHERE id = %s", (rng.randrange(ROWS),))
            if cur.fetchone() is None:
                raise RuntimeError(f"{server.name}: a row is missing")
            n += 1
            if n % 64 == 0 and time.perf_counter() >= end:
                break
        return n, time.perf_counter() - t0


def inserts(server: Server, seconds: float) -> tuple[int, float]:
    """Single-row autocommit INSERTs on one connection: (count, seconds taken)."""
    with server.connect("bench") as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM ins")
        before = cur.fetchone()[0]
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            cur.execute("INSERT INTO ins (v) VALUES (%s)", (PAYLOAD,))
            n += 1
            if n % 16 == 0 and time.perf_counter() >= end:
                break
        took = time.perf_counter() - t0
        cur.execute("SELECT COUNT(*) FROM ins")
        row = cur.fetchone()
        if row is None or row[0] != before + n:
            raise RuntimeError(f"{server.name}: inserted {n} rows after {before}, found {row}")
        return n, took


@dataclass(frozen=True)
class Metric:
    label: str
    target: float | None


METRICS = [
    Metric("point SELECT by PK (round trips/s)", 0.5),
    Metric("autocommit INSERT, durable (rows/s)", 1.0),
    Metric("autocommit INSERT, relaxed (rows/s)", None),
]


# This VM's speed drifts by 15-20% within seconds: eight slices of 0.6 s a side (at the default
# 5 s per figure) follow it more closely than four of 1.25 s did.
SLICES = 8


def _measure(
    servers: list[Server],
    label: str,
    fn: Callable[[Server, float], tuple[int, float]],
    seconds: float,
    results: dict[str, dict[str, float]],
) -> None:
    """Run ``fn`` on the servers in alternating slices (A B B A ...), so that load from
    elsewhere on the machine falls on both sides alike; store operations per second."""
    count = dict.fromkeys((s.name for s in servers), 0)
    spent = dict.fromkeys((s.name for s in servers), 0.0)
    for i in range(SLICES):
        for s in servers if i % 2 == 0 else servers[::-1]:
            n, took = fn(s, seconds / SLICES)
            count[s.name] += n
            spent[s.name] += took
    for name in count:
        results[name][label] = count[name] / spent[name]


def run(only: str | None, seconds: float) -> dict[str, dict[str, float]]:
    """Measure every metric on the chosen servers; {server name: {metric label: value}}."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="pylamp-bench-") as tmp, contextlib.ExitStack() as st:
        workdir = Path(tmp)
        servers: list[Server] = []
        if only in (None, "pylamp"):
            servers.append(st.enter_context(pylamp(workdir)))
        if only in (None, "mariadb"):
            servers.append(st.enter_context(mariadb(workdir)))
        for s in servers:
            setup(s)
            results[s.name] = {}
            with s.connect() as c, c.cursor() as cur:
                cur.execute("SELECT @@version")
                print(
                    f"{s.name}: version {cur.fetchone()[0]}, binlog on, sync_binlog=1", flush=True
                )
        for s in servers:  # a short warm-up, so the first measured figure is not the coldest
            point_selects(s, seconds / 5)
        _measure(servers, METRICS[0].label, point_selects, seconds, results)
        _measure(servers, METRICS[1].label, inserts, seconds, results)
        for s in servers:
            s.relax()
        _measure(servers, METRICS[2].label, inserts, seconds, results)
    return results


def report(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    head = f"{'metric':<40}" + "".join(f"{n:>12}" for n in names)
    if len(names) == 2:
        head += f"{'ratio':>9}{'target':>9}"
    lines = [head]
    for m in METRICS:
        line = f"{m.label:<40}" + "".join(f"{results[n][m.label]:>12.0f}" for n in names)
        if len(names) == 2:
            ratio = results[names[0]][m.label] / results[names[1]][m.label]
            target = f">={m.target:.1f}x" if m.target is not None else "-"
            line += f"{ratio:>8.2f}x{target:>9}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (0.5 s per figure)")
    parser.add_argument("--seconds", type=float, help="duration of each figure (default 5)")
    parser.add_argument("--only", choices=["pylamp", "mariadb"], help="run one side only")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.5 if args.quick else 5.0)
    print(
        f"db_throughput: {seconds:g} s per figure, one PyMySQL connection, 127.0.0.1, "
        f"{os.cpu_count()} CPUs"
    )
    print(report(run(args.only, seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
