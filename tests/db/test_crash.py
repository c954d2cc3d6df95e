"""Crash safety: kill -9 the SQL server under a write load, restart it, check what survived.

After each restart: every write a client saw acknowledged is present; a rolled-back transaction
is absent; a transaction that was in flight when the server died is wholly present or wholly
absent; and the binary log holds exactly the committed rows (its INSERTs, read back through
SHOW BINLOG EVENTS, name the same ids the table holds).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from pylamp.db.binlog import Binlog
from pylamp.db.binlog_events import Query, Xid, encode_event
from pylamp.db.engine import Engine
from pylamp.db.results import ResultSet

WORKERS = 3
ROUNDS = 3


class DbProcess:
    """``python -m pylamp.db`` in a subprocess on port 0, its port read from its output."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pylamp.db",
                "--data-dir",
                str(data_dir),
                "--listen",
                "127.0.0.1:0",
                "--server-id",
                "1",
                "--log-bin",
                "db1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.port = self._read_port()
        # keep draining the output so the child never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            if m and int(m.group(1)) != 0:
                return int(m.group(1))
        raise AssertionError("server exited before listening:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def connect(self, db: str | None = "crash") -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            password="",
            database=db,
            autocommit=True,
            read_timeout=30,
            write_timeout=30,
        )

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(30) == 0, "".join(self.output)


@dataclass
class Ledger:
    """What the clients know: acknowledged, rolled back, and in-doubt groups of ids."""

    acked: set[int] = field(default_factory=set)
    absent: set[int] = field(default_factory=set)
    in_doubt: list[frozenset[int]] = field(default_factory=list)
    acked_count: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    def ack(self, ids: frozenset[int]) -> None:
        with self.lock:
            self.acked |= ids
            self.acked_count += 1
            self.lock.notify_all()


def _worker(server: DbProcess, w: int, round_no: int, ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    seq = 0

    def next_id() -> int:
        nonlocal seq
        seq += 1
        return (round_no * 10 + w) * 1_000_000 + seq

    try:
        conn = server.connect()
    except pymysql.err.MySQLError:
        return
    cur = conn.cursor()
    while True:
        op = rng.random()
        if op < 0.5:
            ids = frozenset([next_id()])
            try:
                cur.execute("INSERT INTO t (id, w, kind) VALUES (%s, %s, 'a')", (min(ids), w))
            except pymysql.err.MySQLError:
                with ledger.lock:
                    ledger.in_doubt.append(ids)
                return
            ledger.ack(ids)
        elif op < 0.8:
            ids = frozenset([next_id(), next_id()])
            commit_sent = False
            try:
                cur.execute("BEGIN")
                for i in sorted(ids):
                    cur.execute("INSERT INTO t (id, w, kind) VALUES (%s, %s, 't')", (i, w))
                cur.execute("UPDATE c SET n = n + 2 WHERE w = %s", (w,))
                commit_sent = True
                cur.execute("COMMIT")
            except pymysql.err.MySQLError:
                with ledger.lock:
                    if commit_sent:
                        ledger.in_doubt.append(ids)
                    else:
                        ledger.absent |= ids
                return
            ledger.ack(ids)
        else:
            ids = frozenset([next_id()])
            with ledger.lock:
                ledger.absent |= ids
            try:
                cur.execute("BEGIN")
                cur.execute("INSERT INTO t (id, w, kind) VALUES (%s, %s, 't')", (min(ids), w))
                cur.execute("UPDATE c SET n = n + 1 WHERE w = %s", (w,))
                cur.execute("ROLLBACK")
            except pymysql.err.MySQLError:
                return


def _binlog_ids(server: DbProcess) -> set[int]:
    """Ids inserted into crash.t by the transactions in the binary log (complete ones only)."""
    ids: set[int] = set()
    with server.connect(None) as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = [row[0] for row in cur.fetchall()]
        for name in files:
            cur.execute(f"SHOW BINLOG EVENTS IN '{name}'")
            pending: list[int] | None = None
            for _log, _pos, event_type, _sid, _end, info in cur.fetchall():
                m = re.search(r"INSERT INTO t \(id, w, kind\) VALUES \((\d+)", info)
                if event_type == "Query" and info.endswith("BEGIN"):
                    pending = []
                elif event_type == "Xid":
                    assert pending is not None
                    ids.update(pending)
                    pending = None
                elif m:
                    assert pending is not None, "an INSERT logged outside a transaction"
                    pending.append(int(m.group(1)))
            assert pending is None, f"{name} ends inside a transaction"
    return ids


def _replay(data: Path, scratch: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Replay a copy of the server's binlog into a fresh engine, through the same apply path
    as crash recovery; return the rows of crash.t and crash.c."""
    if scratch.exists():
        shutil.rmtree(scratch)
    (scratch / "log").mkdir(parents=True)
    for f in data.glob("db1-bin.*"):
        shutil.copy(f, scratch / "log" / f.name)
    with Binlog(scratch / "log", "db1", 1) as binlog:
        engine = Engine(scratch / "fresh")
        engine.recover(binlog.transactions_after)
    session = engine.open_session("root", "localhost")
    try:
        tables = []
        for sql in (
            "SELECT id, w, kind FROM crash.t ORDER BY id",
            "SELECT * FROM crash.c ORDER BY w",
        ):
            (result,) = session.execute(sql)
            assert isinstance(result, ResultSet)
            tables.append([tuple(r) for r in result.rows])
    finally:
        session.close()
        engine.close()
    return tables[0], tables[1]


def _verify(server: DbProcess, ledger: Ledger, scratch: Path) -> None:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, w, kind FROM t ORDER BY id")
        rows = [tuple(r) for r in cur.fetchall()]
        present = {row[0] for row in rows}
        cur.execute("SELECT * FROM c ORDER BY w")
        counter_rows = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT w, n FROM c ORDER BY w")
        counters = dict(cur.fetchall())
        cur.execute("SELECT w, COUNT(*) FROM t WHERE kind = 't' GROUP BY w")
        counted = dict(cur.fetchall())
    lost = ledger.acked - present
    assert not lost, f"acknowledged writes lost: {sorted(lost)[:10]}"
    resurrected = ledger.absent & present
    assert not resurrected, f"rolled back or never committed, yet present: {sorted(resurrected)}"
    for group in ledger.in_doubt:
        assert group <= present or not group & present, f"half a transaction: {sorted(group)}"
    known = ledger.acked | ledger.absent | set().union(*ledger.in_doubt)
    assert present <= known, f"rows nobody wrote: {sorted(present - known)[:10]}"
    for w in range(WORKERS):
        assert counters[w] == counted.get(w, 0), (w, counters, counted)
    assert _binlog_ids(server) == present
    # the binlog, replayed from scratch, gives exactly the same tables
    assert _replay(server.data_dir, scratch) == (rows, counter_rows)


def test_kill_9_under_write_load(tmp_path: Path) -> None:
    data = tmp_path / "db"
    rng = random.Random(1234)
    server = DbProcess(data)
    with server.connect(None) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE crash")
        cur.execute("USE crash")
        cur.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, w INT NOT NULL, kind CHAR(1))")
        cur.execute("CREATE TABLE c (w INT PRIMARY KEY, n INT NOT NULL)")
        for w in range(WORKERS):
            cur.execute("INSERT INTO c VALUES (%s, 0)", (w,))
    ledger = Ledger()
    for round_no in range(ROUNDS):
        kill_after = ledger.acked_count + rng.randint(5, 150)
        threads = [
            threading.Thread(
                target=_worker, args=(server, w, round_no, ledger, rng.random()), daemon=True
            )
            for w in range(WORKERS)
        ]
        for t in threads:
            t.start()
        with ledger.lock:
            assert ledger.lock.wait_for(lambda k=kill_after: ledger.acked_count >= k, timeout=60)
        server.kill()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
        server = DbProcess(data)
        _verify(server, ledger, tmp_path / "replay")
    assert ledger.acked and ledger.absent
    server.stop()


def _session(data: Path, *statements: str) -> tuple[tuple[object, ...], ...]:
    """Start the server on ``data``, run the statements, stop it cleanly; the last rows."""
    server = DbProcess(data)
    with server.connect(None) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        rows = cur.fetchall()
    server.stop()
    return tuple(rows)


def _crash_tail(data: Path, statements: list[str], torn: int = 0) -> tuple[Path, int]:
    """Make the newest binlog file look as if the server died right after logging a
    transaction (BEGIN, ``statements``, XID) that SQLite never committed: its STOP event is
    dropped and the transaction appended, less its last ``torn`` bytes. Returns the file and
    where the appended bytes begin."""
    newest = data / (data / "db1-bin.index").read_text().split()[-1]
    end = newest.stat().st_size - 23  # a STOP event is 19 + 4 bytes
    tail = b""
    for payload in (Query("crash", "BEGIN"), *(Query("crash", s) for s in statements), Xid(1)):
        now = int(time.time())
        tail += encode_event(payload, timestamp=now, server_id=1, position=end + len(tail))
    with open(newest, "r+b") as f:
        f.truncate(end)
        f.seek(end)
        f.write(tail[: len(tail) - torn])
    return newest, end


def test_torn_tail_is_cut_on_start(tmp_path: Path) -> None:
    data = tmp_path / "db"
    ((file, end, _, _),) = _session(
        data,
        "CREATE DATABASE crash",
        "CREATE TABLE crash.t (id INT PRIMARY KEY)",
        "INSERT INTO crash.t VALUES (1)",
        "SHOW MASTER STATUS",
    )
    # as if killed mid-write: no STOP, and half of a transaction that never committed
    path, cut_at = _crash_tail(data, ["INSERT INTO t VALUES (2)"], torn=7)
    assert (path.name, cut_at) == (file, end)
    server = DbProcess(data)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM t")
        assert cur.fetchall() == ((1,),)
        cur.execute(f"SHOW BINLOG EVENTS IN '{file}'")
        events = cur.fetchall()
        assert events[-1][4] == end and events[-1][2] == "Xid"
        cur.execute("SHOW BINARY LOGS")
        sizes = dict(cur.fetchall())
        assert sizes[file] == end
        cur.execute("INSERT INTO t VALUES (3)")
        cur.execute("SELECT id FROM t ORDER BY id")
        assert cur.fetchall() == ((1,), (3,))
    server.stop()
    assert path.stat().st_size == end
    # and a STOP event cut in half, in the newest file, is cut too
    newest = data / (data / "db1-bin.index").read_text().split()[-1]
    size = newest.stat().st_size
    with open(newest, "r+b") as f:
        f.truncate(size - 10)
    server = DbProcess(data)
    server.stop()
    assert newest.stat().st_size == size - 23  # exactly the STOP event (19 + 4 bytes) is gone


def test_logged_but_uncommitted_transaction_is_reapplied(tmp_path: Path) -> None:
    """The crash window between the binlog's fsync and SQLite's COMMIT: recovery redoes it."""
    data = tmp_path / "db"
    _session(
        data,
        "CREATE DATABASE crash",
        "CREATE TABLE crash.t (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO crash.t VALUES (1, 'one')",
    )
    _crash_tail(data, ["INSERT INTO t VALUES (2, 'two')", "UPDATE t SET v = 'uno' WHERE id = 1"])
    for _ in range(2):  # applied once, and not again on the next start
        server = DbProcess(data)
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT id, v FROM t ORDER BY id")
            assert cur.fetchall() == ((1, "uno"), (2, "two"))
        server.stop()


def test_crash_window_after_reset_master(tmp_path: Path) -> None:
    """RESET MASTER restarts the numbering at .000001: positions stored before it must not
    make recovery skip a transaction logged after it."""
    data = tmp_path / "db"
    inserts = [f"INSERT INTO crash.t VALUES ({i})" for i in range(3)]
    _session(
        data,
        "CREATE DATABASE crash",
        "CREATE TABLE crash.t (id INT PRIMARY KEY)",
        *[sql for insert in inserts for sql in ("FLUSH LOGS", insert)],
        "RESET MASTER",
    )
    newest, _ = _crash_tail(data, ["INSERT INTO t VALUES (7)"])
    assert newest.name == "db1-bin.000001"
    server = DbProcess(data)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM t ORDER BY id")
        assert cur.fetchall() == ((0,), (1,), (2,), (7,))
    server.stop()
