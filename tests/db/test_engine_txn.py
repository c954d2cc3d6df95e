"""Transactions, the binlog commit hook, crash recovery, concurrency and read-only mode."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylamp.db.binlog import Binlog, BinlogError
from pylamp.db.binlog_events import Query
from pylamp.db.engine import Engine, Session, apply_statement
from pylamp.db.results import ResultSet, SqlError

CLOCK = 1_700_000_000.0


@pytest.fixture
def binlog(tmp_path: Path) -> Iterator[Binlog]:
    log = Binlog(tmp_path, "db1", 1, sync=1)
    yield log
    log.close()


@pytest.fixture
def engine(tmp_path: Path, binlog: Binlog) -> Iterator[Engine]:
    eng = Engine(tmp_path, binlog=binlog, clock=lambda: CLOCK)
    yield eng
    eng.close()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    s = engine.open_session("root", "127.0.0.1")
    s.execute("CREATE DATABASE shop; USE shop")
    s.execute("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20), at DATETIME)")
    yield s
    s.close()


def logged(binlog: Binlog) -> list[tuple[list[str], bool]]:
    """Every logged transaction as (statements, is_ddl)."""
    return [
        ([s.sql for s in txn.statements], txn.xid is None)
        for txn in binlog.transactions_after(None)
    ]


def count(session: Session, table: str = "t") -> int:
    result = session.execute(f"SELECT COUNT(*) FROM {table}")[0]
    assert isinstance(result, ResultSet)
    return int(result.rows[0][0])


def stored_position(engine: Engine, db: str) -> Any:
    return engine.positions()[db]


def test_autocommit_write_is_logged_before_commit_with_its_position(
    engine: Engine, session: Session, binlog: Binlog
) -> None:
    session.execute("INSERT INTO t (v, at) VALUES ('a', NOW())")
    txns = logged(binlog)
    assert txns[0] == (["CREATE DATABASE shop"], True)
    assert txns[1][1] is True and txns[1][0][0].startswith("CREATE TABLE t")
    stmts, ddl = txns[2]
    assert not ddl
    # NOW() was replaced by the statement's time, so replay gives the same row
    assert stmts == ["INSERT INTO t (v, at) VALUES ('a', '" + _local(CLOCK) + "')"]
    assert stored_position(engine, "shop") == tuple(binlog.position())


def test_reads_and_failed_writes_are_not_logged(session: Session, binlog: Binlog) -> None:
    before = len(logged(binlog))
    session.execute("SELECT * FROM t")
    with pytest.raises(SqlError):
        session.execute("INSERT INTO t (nope) VALUES (1)")
    session.execute("UPDATE t SET v = 'x' WHERE id = 12345")  # changes nothing
    assert len(logged(binlog)) == before


def test_explicit_transaction_commit_and_rollback(
    engine: Engine, session: Session, binlog: Binlog
) -> None:
    before = len(logged(binlog))
    session.execute("BEGIN")
    assert session.in_transaction
    session.execute("INSERT INTO t (v) VALUES ('r1')")
    session.execute("INSERT INTO t (v) VALUES ('r2')")
    session.execute("ROLLBACK")
    assert not session.in_transaction
    assert count(session) == 0
    assert len(logged(binlog)) == before

    session.execute("START TRANSACTION")
    session.execute("INSERT INTO t (v) VALUES ('c1')")
    session.execute("UPDATE t SET v = 'c2' WHERE v = 'c1'")
    assert len(logged(binlog)) == before  # nothing until COMMIT
    session.execute("COMMIT")
    stmts, ddl = logged(binlog)[-1]
    assert not ddl
    assert stmts == ["INSERT INTO t (v) VALUES ('c1')", "UPDATE t SET v = 'c2' WHERE v = 'c1'"]
    assert count(session) == 1


def test_autocommit_off_starts_transactions(engine: Engine, session: Session) -> None:
    session.execute("SET autocommit = 0")
    session.execute("INSERT INTO t (v) VALUES ('x')")
    assert session.in_transaction  # the status flag clients see
    other = engine.open_session("root", "127.0.0.1")
    other.use("shop")
    assert count(other) == 0  # not committed yet
    session.execute("COMMIT")
    assert count(other) == 1
    session.execute("INSERT INTO t (v) VALUES ('y')")
    session.execute("SET autocommit = 1")  # commits implicitly, as MySQL does
    assert count(other) == 2
    other.close()


def test_ddl_commits_the_open_transaction(session: Session, binlog: Binlog) -> None:
    session.execute("BEGIN")
    session.execute("INSERT INTO t (v) VALUES ('x')")
    session.execute("CREATE TABLE u (a INT)")
    assert not session.in_transaction
    txns = logged(binlog)
    assert txns[-2] == (["INSERT INTO t (v) VALUES ('x')"], False)
    assert txns[-1] == (["CREATE TABLE u (a INT)"], True)


def test_close_rolls_back(engine: Engine, session: Session) -> None:
    other = engine.open_session("root", "127.0.0.1")
    other.use("shop")
    other.execute("BEGIN")
    other.execute("INSERT INTO t (v) VALUES ('lost')")
    other.close()
    assert count(session) == 0
    # and the writer lock was released: this write does not wait
    session.execute("INSERT INTO t (v) VALUES ('kept')")
    assert count(session) == 1


def test_reads_do_not_wait_for_a_writer_and_writers_queue(engine: Engine, session: Session) -> None:
    session.execute("INSERT INTO t (v) VALUES ('old')")
    writer = engine.open_session("root", "127.0.0.1")
    writer.use("shop")
    writer.execute("BEGIN")
    writer.execute("UPDATE t SET v = 'new'")
    # a reader is not blocked by the open write transaction and sees committed data
    result = session.execute("SELECT v FROM t")[0]
    assert isinstance(result, ResultSet) and result.rows == [("old",)]
    # a second writer waits for the first
    done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        s2 = engine.open_session("root", "127.0.0.1")
        try:
            s2.use("shop")
            s2.execute("INSERT INTO t (v) VALUES ('second')")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            s2.close()
            done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not done.wait(0.3)  # still queued behind the open transaction
    writer.execute("COMMIT")
    assert done.wait(10)
    thread.join()
    assert not errors
    result = session.execute("SELECT v FROM t ORDER BY id")[0]
    assert isinstance(result, ResultSet) and result.rows == [("new",), ("second",)]
    writer.close()


def test_recovery_reapplies_logged_transactions_exactly_once(tmp_path: Path) -> None:
    binlog = Binlog(tmp_path, "db1", 1, sync=1)
    engine = Engine(tmp_path, binlog=binlog, clock=lambda: CLOCK)
    s = engine.open_session("root", "127.0.0.1")
    s.execute("CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    s.execute("INSERT INTO t VALUES (1, 10)")
    s.close()
    # a crash after the binlog append but before SQLite's commit: the log has more
    binlog.append_transaction("shop", ["INSERT INTO t VALUES (2, 20)"], CLOCK)
    binlog.append_transaction(
        "shop", ["UPDATE t SET v = v + 1 WHERE id = 1", "INSERT INTO t VALUES (3, 30)"], CLOCK
    )
    binlog.append_transaction("shop", ["CREATE TABLE u (a INT)"], CLOCK, ddl=True)
    binlog.append_transaction("", ["CREATE DATABASE other"], CLOCK, ddl=True)
    assert engine.recover(binlog.transactions_after) == 4
    assert engine.recover(binlog.transactions_after) == 0  # nothing twice
    s = engine.open_session("root", "127.0.0.1")
    s.use("shop")
    result = s.execute("SELECT id, v FROM t ORDER BY id")[0]
    assert isinstance(result, ResultSet) and result.rows == [(1, 11), (2, 20), (3, 30)]
    assert s.execute("SHOW TABLES")[0].rows == [("t",), ("u",)]  # type: ignore[union-attr]
    assert engine.db_exists("other")
    # shop's position is the end of the last transaction that touched it
    txns = list(binlog.transactions_after(None))
    assert engine.positions()["shop"] == tuple(txns[-2].end)
    assert engine.positions()["other"] == tuple(txns[-1].end)
    s.close()
    engine.close()
    binlog.close()


def test_apply_statement_is_the_shared_path(engine: Engine, session: Session) -> None:
    applier = engine.open_session("root", "127.0.0.1")
    apply_statement(applier, "shop", "INSERT INTO t (v) VALUES ('applied')")
    assert count(session) == 1
    applier.close()


def test_read_only_mode(tmp_path: Path) -> None:
    engine = Engine(tmp_path, read_only=True)
    root = engine.open_session("root", "127.0.0.1")
    root.execute("CREATE DATABASE shop")  # SUPER may still write, as in MySQL
    root.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'pw'")
    root.execute("GRANT ALL ON shop.* TO 'app'@'%'")
    root.execute("CREATE TABLE shop.t (a INT)")
    app = engine.open_session("app", "10.0.0.5")
    app.use("shop")
    with pytest.raises(SqlError) as err:
        app.execute("INSERT INTO t VALUES (1)")
    assert err.value.errno == 1290
    with pytest.raises(SqlError) as err:
        app.execute("CREATE TABLE u (a INT)")
    assert err.value.errno == 1290
    assert app.execute("SELECT COUNT(*) FROM t")[0].rows == [(0,)]  # type: ignore[union-attr]
    assert app.execute("SELECT @@read_only")[0].rows == [(1,)]  # type: ignore[union-attr]
    app.close()
    root.close()
    engine.close()


def test_wal_mode_and_relaxed_sync(engine: Engine, session: Session) -> None:
    conn = sqlite3.connect(str(engine.db_path("shop")))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096  # SQLite's default
    conn.close()


def test_page_size_of_new_databases(tmp_path: Path) -> None:
    # smaller pages for small-row write loads: the WAL logs whole pages
    engine = Engine(tmp_path, page_size=1024)
    session = engine.open_session("root", "localhost")
    session.execute("CREATE DATABASE small")
    session.execute("CREATE TABLE small.t (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT)")
    session.execute("INSERT INTO small.t (v) VALUES ('" + "x" * 5000 + "')")
    assert session.execute("SELECT @@page_size")[0].rows == [(1024,)]  # type: ignore[union-attr]
    rows = session.execute("SELECT LENGTH(v) FROM small.t")[0].rows  # type: ignore[union-attr]
    assert rows == [(5000,)]  # overflow pages and all
    conn = sqlite3.connect(str(engine.db_path("small")))
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 1024
    conn.close()
    session.close()
    engine.close()
    with pytest.raises(ValueError, match="page_size"):
        Engine(tmp_path, page_size=1000)


def _hash(password: str) -> str:
    import hashlib

    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _local(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def test_binary_data_is_logged_as_hex(session: Session, binlog: Binlog) -> None:
    session.execute("CREATE TABLE b (id INT PRIMARY KEY, data BLOB)")
    body = b"\xff\x00'".decode("ascii", "surrogateescape").replace("'", "\\'")
    session.execute(f"INSERT INTO b VALUES (1, _binary'{body}')")
    assert logged(binlog)[-1] == (["INSERT INTO b VALUES (1, X'FF0027')"], False)


def test_recovery_targets_the_written_database_and_replays_accounts_idempotently(
    tmp_path: Path,
) -> None:
    binlog = Binlog(tmp_path, "db1", 1, sync=1)
    engine = Engine(tmp_path, binlog=binlog, clock=lambda: CLOCK)
    s = engine.open_session("root", "127.0.0.1")
    s.execute("CREATE DATABASE a; CREATE DATABASE b")
    s.execute("CREATE TABLE a.t (id INT PRIMARY KEY); CREATE TABLE b.src (id INT PRIMARY KEY)")
    s.execute("INSERT INTO b.src VALUES (1), (2)")
    s.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'pw'")
    s.close()
    # logged in a, reading from b: only a's position decides whether it is re-applied
    binlog.append_transaction("a", ["INSERT INTO t SELECT id FROM b.src"], CLOCK)
    assert engine.recover(binlog.transactions_after) == 1
    s = engine.open_session("root", "127.0.0.1")
    assert s.execute("SELECT COUNT(*) FROM a.t")[0].rows == [(2,)]  # type: ignore[union-attr]
    assert engine.password_hash("app", "10.0.0.1") is not None
    s.close()
    engine.close()
    binlog.close()


def test_transaction_across_databases(engine: Engine, session: Session, binlog: Binlog) -> None:
    session.execute("CREATE DATABASE other; CREATE TABLE other.u (a INT)")
    fresh = engine.open_session("root", "127.0.0.1")
    fresh.use("shop")
    fresh.execute("BEGIN")
    fresh.execute("INSERT INTO t (v) VALUES ('here')")
    fresh.execute("INSERT INTO other.u VALUES (1)")  # a database first used mid-transaction
    fresh.execute("COMMIT")
    assert count(session) == 1 and count(session, "other.u") == 1
    assert engine.positions()["other"] == engine.positions()["shop"] == tuple(binlog.position())
    fresh.close()


def test_user_variables_are_logged_as_values(session: Session, binlog: Binlog) -> None:
    session.execute("SET @who = 'it''s me', @n = 7")
    session.execute("INSERT INTO t (v) VALUES (CONCAT(@who, @n))")
    assert logged(binlog)[-1] == (["INSERT INTO t (v) VALUES (CONCAT('it\\'s me', 7))"], False)
    result = session.execute("SELECT v FROM t")[0]
    assert isinstance(result, ResultSet) and result.rows == [("it's me7",)]


def test_a_read_only_copy_applies_another_servers_log_under_its_own_key(
    tmp_path: Path, engine: Engine, session: Session, binlog: Binlog
) -> None:
    """What a replica does: apply the master's transactions, keeping the master's position
    apart from its own binlog position, exactly once."""
    session.execute("INSERT INTO t (v) VALUES ('from master')")
    replica = Engine(tmp_path / "replica", read_only=True, clock=lambda: CLOCK)
    assert replica.recover(binlog.transactions_after, key="master") == 3
    assert replica.recover(binlog.transactions_after, key="master") == 0
    assert replica.positions("master")["shop"] == tuple(binlog.position())
    assert replica.positions()["shop"] is None
    reader = replica.open_session("root", "127.0.0.1")
    result = reader.execute("SELECT v FROM shop.t")[0]
    assert isinstance(result, ResultSet) and result.rows == [("from master",)]
    reader.close()
    replica.close()


def test_savepoints(session: Session, binlog: Binlog) -> None:
    session.execute("BEGIN")
    session.execute("INSERT INTO t (v) VALUES ('a')")
    session.execute("SAVEPOINT s1")
    session.execute("INSERT INTO t (v) VALUES ('b')")
    session.execute("ROLLBACK TO SAVEPOINT s1")
    session.execute("INSERT INTO t (v) VALUES ('c')")
    session.execute("SAVEPOINT s2")
    session.execute("RELEASE SAVEPOINT s2")
    with pytest.raises(SqlError) as err:
        session.execute("ROLLBACK TO s2")
    assert err.value.errno == 1305
    session.execute("COMMIT")
    result = session.execute("SELECT v FROM t ORDER BY id")[0]
    assert isinstance(result, ResultSet) and result.rows == [("a",), ("c",)]
    assert logged(binlog)[-1] == (
        ["INSERT INTO t (v) VALUES ('a')", "INSERT INTO t (v) VALUES ('c')"],
        False,
    )


def test_account_statements_are_logged_with_hashes_and_replay(
    tmp_path: Path, engine: Engine, session: Session, binlog: Binlog
) -> None:
    session.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'first'")
    session.execute("ALTER USER 'app'@'%' IDENTIFIED BY 'second'")
    session.execute("GRANT SELECT ON shop.* TO 'app'@'%'")
    logged_sql = [stmts[0] for stmts, _ in logged(binlog)[-3:]]
    assert all("first" not in s and "second" not in s for s in logged_sql)  # hashes only
    assert logged_sql[0] == (
        f"CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password AS '{_hash('first')}'"
    )
    replica = Engine(tmp_path / "replica", read_only=True, clock=lambda: CLOCK)
    replica.recover(binlog.transactions_after, key="master")
    assert replica.password_hash("app", "10.0.0.1") == engine.password_hash("app", "10.0.0.1")
    replica.close()


def test_user_and_connection_id_are_logged_as_values(session: Session, binlog: Binlog) -> None:
    session.execute("INSERT INTO t (v) VALUES (USER())")
    expected = "INSERT INTO t (v) VALUES ('root@127.0.0.1')"
    assert logged(binlog)[-1] == ([expected], False)


@pytest.mark.parametrize(("log_bin", "expected"), [(True, 1), (False, 2)])
def test_sqlite_fsyncs_its_own_commits_only_without_a_binlog(
    tmp_path: Path, log_bin: bool, expected: int
) -> None:
    """With a binlog, it is the redo log (fsynced first), so SQLite's synchronous is NORMAL (1);
    without one, SQLite's commit is all there is, so it is FULL (2)."""
    binlog = Binlog(tmp_path, "db1", 1, sync=1) if log_bin else None
    engine = Engine(tmp_path, binlog=binlog)
    session = engine.open_session("root", "127.0.0.1")
    try:
        session.execute("CREATE DATABASE shop")
        session.execute("CREATE TABLE shop.t (id INT PRIMARY KEY)")
        session.execute("INSERT INTO shop.t VALUES (1)")
        [result] = session.execute("SELECT 1")
        assert isinstance(result, ResultSet)
        level = session._conn.execute('PRAGMA "shop".synchronous').fetchone()[0]
        assert level == expected
    finally:
        session.close()
        engine.close()
        if binlog is not None:
            binlog.close()


class _FailingCommit:
    """The session's write cursor, except that the next COMMIT fails (as a full disk or an
    I/O error would make it fail)."""

    def __init__(self, conn: sqlite3.Cursor) -> None:
        self.conn = conn
        self.armed = True

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self.armed:
            self.armed = False
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@pytest.mark.parametrize("explicit", [False, True])
def test_a_failed_sqlite_commit_takes_the_binlog_append_back(
    tmp_path: Path, engine: Engine, session: Session, binlog: Binlog, explicit: bool
) -> None:
    session.execute("INSERT INTO t (v) VALUES ('kept')")
    before_pos, before_txns = binlog.position(), logged(binlog)
    real = session._cur  # the cursor the write path's statements run on
    session._cur = _FailingCommit(real)  # type: ignore[assignment]
    with pytest.raises(SqlError) as err:
        if explicit:
            session.execute("BEGIN; INSERT INTO t (v) VALUES ('lost'); COMMIT")
        else:
            session.execute("INSERT INTO t (v) VALUES ('lost')")
    assert err.value.errno == 1180
    session._cur = real
    assert binlog.position() == before_pos and logged(binlog) == before_txns
    assert count(session) == 1 and not session.in_transaction
    session.execute("INSERT INTO t (v) VALUES ('after')")  # the writer lock was released
    assert logged(binlog)[-1][0] == ["INSERT INTO t (v) VALUES ('after')"]
    session.close()
    # recovery finds nothing to re-apply: the binlog and the tables agree
    assert engine.recover(binlog.transactions_after) == 0
    check = engine.open_session("root", "127.0.0.1")
    check.use("shop")
    result = check.execute("SELECT v FROM t ORDER BY id")[0]
    assert isinstance(result, ResultSet) and result.rows == [("kept",), ("after",)]
    check.close()


def test_undo_after_a_full_file_keeps_the_transaction_in_that_file(tmp_path: Path) -> None:
    log = Binlog(tmp_path, "db1", 1, sync=1, max_size=4096)
    first = log.position()
    end = log.append_transaction(
        "d", ["INSERT INTO t VALUES ('" + "x" * 5000 + "')"], CLOCK, rotate=False
    )
    # not rotated, and not shown to readers before the caller commits
    assert end.file == first.file and log.position() == first
    log.undo(end)
    assert log.position() == first and list(log.transactions_after(None)) == []
    with pytest.raises(BinlogError):
        log.undo(end)  # once only
    end = log.append_transaction(
        "d", ["INSERT INTO t VALUES ('" + "x" * 5000 + "')"], CLOCK, rotate=False
    )
    log.rotate_if_full()
    assert log.position().file != first.file
    with pytest.raises(BinlogError):
        log.undo(end)  # the log has moved on
    log.close()


def test_query_events_carry_the_connection_id(session: Session, binlog: Binlog) -> None:
    session.execute("INSERT INTO t (v) VALUES ('a')")
    other = session.engine.open_session("root", "127.0.0.1")
    other.execute("INSERT INTO shop.t (v) VALUES ('b')")
    ids = [
        event.payload.thread_id
        for _, event in binlog.read_events(binlog.position().file)
        if isinstance(event.payload, Query)
    ]
    assert other.connection_id != session.connection_id
    # each transaction: BEGIN and the INSERT (the XID event has no thread id)
    assert ids[-4:] == [session.connection_id] * 2 + [other.connection_id] * 2
    assert 0 not in ids
    other.close()


def test_recovery_stores_the_end_of_the_log_except_under_other_keys(tmp_path: Path) -> None:
    binlog = Binlog(tmp_path, "db1", 1, sync=1)
    engine = Engine(tmp_path, binlog=binlog, clock=lambda: CLOCK)
    s = engine.open_session("root", "127.0.0.1")
    s.execute("CREATE DATABASE quiet; CREATE DATABASE busy")
    s.execute("CREATE TABLE quiet.t (a INT); CREATE TABLE busy.t (a INT)")
    s.execute("INSERT INTO quiet.t VALUES (1)")
    for i in range(3):
        s.execute(f"INSERT INTO busy.t VALUES ({i})")
    s.close()
    engine.store_positions(("master-bin.000007", 1234), key="master")
    engine.close()
    binlog.close()
    # a crash after an append: recovery re-applies it, then every database has the whole log
    binlog = Binlog(tmp_path, "db1", 1, sync=1)
    binlog.append_transaction("quiet", ["INSERT INTO t VALUES (2)"], CLOCK)
    engine = Engine(tmp_path, binlog=binlog, clock=lambda: CLOCK)
    seen: list[Any] = []

    def transactions(after: Any) -> Any:
        seen.append(after)
        return binlog.transactions_after(after)

    assert engine.recover(transactions, up_to=binlog.position()) == 1
    assert engine.positions() == {"busy": binlog.position(), "quiet": binlog.position()}
    assert engine.positions("master") == dict.fromkeys(
        ["busy", "quiet"], ("master-bin.000007", 1234)
    )
    assert engine.recover(transactions, up_to=binlog.position()) == 0
    assert seen[-1] == binlog.position()  # the next start reads nothing old
    s = engine.open_session("root", "127.0.0.1")
    result = s.execute("SELECT a FROM quiet.t ORDER BY a")[0]
    assert isinstance(result, ResultSet) and result.rows == [(1,), (2,)]
    s.close()
    engine.close()
    binlog.close()


def test_wal_is_checkpointed_in_the_background(engine: Engine, session: Session) -> None:
    assert session._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(300):
        session.execute(f"INSERT INTO t (v) VALUES ('{i}')")
    deadline = time.monotonic() + 30
    while engine._ckpt_thread is not None:  # it ends once idle, after its last checkpoint
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # the WAL was copied into the database file completely, so the next write starts it over
    session.execute("INSERT INTO t (v) VALUES ('last')")
    check = sqlite3.connect(engine.db_path("shop"))
    busy, frames, _ = check.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    check.close()
    assert busy == 0 and frames < 10
    assert count(session) == 301


def test_position_is_stored_in_sqlite_sequence_and_old_files_still_work(
    engine: Engine, session: Session, binlog: Binlog
) -> None:
    session.execute("INSERT INTO t (v) VALUES ('a')")
    path = engine.db_path("shop")
    raw = sqlite3.connect(path, isolation_level=None)
    rows = dict(raw.execute("SELECT name, seq FROM sqlite_sequence WHERE name LIKE '_pylamp%'"))
    assert rows == {
        "_pylamp_binlog_file": binlog.position().file,
        "_pylamp_binlog_pos": binlog.position().pos,
    }
    assert raw.execute("SELECT count(*) FROM _pylamp_meta").fetchone()[0] == 0
    raw.close()
    # a file made before: the position in _pylamp_meta, and no sqlite_sequence at all
    session.execute("CREATE DATABASE old")
    old_path = engine.db_path("old")
    for suffix in ("", "-wal", "-shm"):
        Path(str(old_path) + suffix).unlink(missing_ok=True)
    raw = sqlite3.connect(old_path, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("CREATE TABLE _pylamp_meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID")
    raw.execute("CREATE TABLE _pylamp_tables (name TEXT PRIMARY KEY, spec TEXT)")
    raw.execute(
        "INSERT INTO _pylamp_meta VALUES ('binlog_file', 'db1-bin.000001'), ('binlog_pos', 4)"
    )
    raw.close()
    engine.bump_epoch("old")
    assert stored_position(engine, "old") == ("db1-bin.000001", 4)
    session.execute("CREATE TABLE old.u (a INT)")  # no AUTO_INCREMENT: still no sqlite_sequence
    session.execute("INSERT INTO old.u VALUES (1)")
    assert stored_position(engine, "old") == tuple(binlog.position())
    raw = sqlite3.connect(old_path, isolation_level=None)
    assert raw.execute("SELECT count(*) FROM _pylamp_meta").fetchone()[0] == 0  # moved over
    raw.close()
    assert session.execute("SELECT a FROM old.u")[0].rows == [(1,)]


def test_flush_logs_waits_for_an_open_write_transaction(tmp_path: Path) -> None:
    from pylamp.db.binlog_admin import execute_binlog_admin

    log = Binlog(tmp_path, "db1", 1, sync=1)
    engine = Engine(
        tmp_path, binlog=log, clock=lambda: CLOCK, admin=lambda c: execute_binlog_admin(c, log)
    )
    writer = engine.open_session("root", "127.0.0.1")
    writer.execute("CREATE DATABASE shop; USE shop; CREATE TABLE t (a INT)")
    first = log.position().file
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES (1)")  # holds the writer lock until COMMIT
    other = engine.open_session("root", "127.0.0.1")
    flush = threading.Thread(target=other.execute, args=("FLUSH LOGS",))
    flush.start()
    flush.join(0.3)
    assert flush.is_alive() and log.position().file == first  # rotating waits for COMMIT
    writer.execute("COMMIT")
    flush.join(30)
    assert not flush.is_alive() and log.position().file != first
    # the committed transaction stayed in the first file, whole
    assert [t.end.file for t in log.transactions_after(None) if t.xid is not None] == [first]
    # the lock holder itself may rotate (no deadlock on its own lock)
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES (2)")
    second = log.position().file
    writer.execute("FLUSH LOGS")
    assert log.position().file != second
    writer.execute("COMMIT")
    other.close()
    writer.close()
    engine.close()
    log.close()
