"""Binlog admin statements as result sets (parsed by sql.parse_admin, run on a real Binlog)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from pylamp.db.binlog import Binlog
from pylamp.db.binlog_admin import BINLOG_ADMIN_KINDS, execute_binlog_admin
from pylamp.db.results import Ok, ResultSet, SqlError
from pylamp.db.sql import parse_admin

T0 = 1_700_000_000.0


def run(sql: str, binlog: Binlog | None) -> ResultSet | Ok:
    cmd = parse_admin(sql)
    assert cmd is not None and cmd.kind in BINLOG_ADMIN_KINDS, sql
    return execute_binlog_admin(cmd, binlog)


def rows(sql: str, binlog: Binlog | None) -> list[tuple[object, ...]]:
    result = run(sql, binlog)
    assert isinstance(result, ResultSet)
    return result.rows


@pytest.fixture
def binlog(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Binlog(tmp_path, "db1", 5) as b:
        yield b


def test_show_master_status_and_binary_logs(binlog: Binlog) -> None:
    result = run("SHOW MASTER STATUS", binlog)
    assert isinstance(result, ResultSet)
    assert [c.name for c in result.columns] == [
        "File",
        "Position",
        "Binlog_Do_DB",
        "Binlog_Ignore_DB",
    ]
    assert result.rows == [("db1-bin.000001", 256, "", "")]
    end = binlog.append_transaction("a", ["INSERT INTO t VALUES (1)"], T0)
    assert rows("show master status;", binlog) == [(end.file, end.pos, "", "")]
    result = run("SHOW BINARY LOGS", binlog)
    assert isinstance(result, ResultSet)
    assert [c.name for c in result.columns] == ["Log_name", "File_size"]
    assert result.rows == [("db1-bin.000001", end.pos)]


def test_flush_logs_rotates(binlog: Binlog) -> None:
    assert isinstance(run("FLUSH LOGS", binlog), Ok)
    assert isinstance(run("FLUSH BINARY LOGS", binlog), Ok)
    logs = rows("SHOW MASTER LOGS", binlog)
    assert [name for name, _ in logs] == [f"db1-bin.{i:06d}" for i in (1, 2, 3)]
    assert rows("SHOW MASTER STATUS", binlog) == [("db1-bin.000003", 256, "", "")]
    events = rows("SHOW BINLOG EVENTS", binlog)
    assert [e[2] for e in events] == ["Format_desc", "Rotate"]
    assert events[1][5] == "db1-bin.000002;pos=4"


def test_show_binlog_events(binlog: Binlog) -> None:
    binlog.append_transaction("", ["CREATE DATABASE a"], T0, ddl=True)
    binlog.append_transaction("a", ["INSERT INTO t VALUES (1)", "DELETE FROM t"], T0)
    result = run("SHOW BINLOG EVENTS IN 'db1-bin.000001'", binlog)
    assert isinstance(result, ResultSet)
    assert [c.name for c in result.columns] == [
        "Log_name",
        "Pos",
        "Event_type",
        "Server_id",
        "End_log_pos",
        "Info",
    ]
    events = result.rows
    assert [e[2] for e in events] == ["Format_desc", "Query", "Query", "Query", "Query", "Xid"]
    assert events[0][:5] == ("db1-bin.000001", 4, "Format_desc", 5, 256)
    assert events[0][5].startswith("Server ver: ")
    assert events[1][5] == "CREATE DATABASE a"
    assert [e[5] for e in events[2:5]] == [
        "BEGIN",
        "use `a`; INSERT INTO t VALUES (1)",
        "use `a`; DELETE FROM t",
    ]
    assert events[5][5].startswith("COMMIT /* xid=")
    for prev, nxt in itertools.pairwise(events):
        assert prev[4] == nxt[1]  # End_log_pos of one is Pos of the next
    assert rows(f"SHOW BINLOG EVENTS FROM {events[2][1]}", binlog) == events[2:]
    assert rows("SHOW BINLOG EVENTS LIMIT 2", binlog) == events[:2]
    assert rows("SHOW BINLOG EVENTS LIMIT 1, 2", binlog) == events[1:3]
    assert rows(f"SHOW BINLOG EVENTS IN 'db1-bin.000001' FROM {events[3][1]} LIMIT 1", binlog) == [
        events[3]
    ]
    with pytest.raises(SqlError) as e:
        run("SHOW BINLOG EVENTS IN 'nope-bin.000001'", binlog)
    assert e.value.errno == 1220
    with pytest.raises(SqlError) as e:
        run("SHOW BINLOG EVENTS FROM 7", binlog)  # not an event boundary
    assert e.value.errno == 1220


def test_purge_and_reset_master(binlog: Binlog) -> None:
    for _ in range(3):
        binlog.append_transaction("a", ["INSERT INTO t VALUES (1)"], T0)
        run("FLUSH LOGS", binlog)
    with pytest.raises(SqlError) as e:
        run("PURGE BINARY LOGS TO 'db1-bin.000099'", binlog)
    assert e.value.errno == 1373
    assert isinstance(run("PURGE BINARY LOGS TO 'db1-bin.000002'", binlog), Ok)
    assert [n for n, _ in rows("SHOW BINARY LOGS", binlog)] == [
        "db1-bin.000002",
        "db1-bin.000003",
        "db1-bin.000004",
    ]
    # BEFORE a time: files last modified before it go, never the current one
    os.utime(binlog.directory / "db1-bin.000002", (T0, T0))
    run("PURGE MASTER LOGS BEFORE '2023-11-15 00:00:00'", binlog)
    assert [n for n, _ in rows("SHOW BINARY LOGS", binlog)] == ["db1-bin.000003", "db1-bin.000004"]
    run("PURGE BINARY LOGS BEFORE '2999-01-01 00:00:00'", binlog)
    assert [n for n, _ in rows("SHOW BINARY LOGS", binlog)] == ["db1-bin.000004"]
    with pytest.raises(SqlError):
        run("PURGE BINARY LOGS BEFORE 'yesterday'", binlog)
    assert isinstance(run("RESET MASTER", binlog), Ok)
    assert rows("SHOW BINARY LOGS", binlog) == [("db1-bin.000001", 256)]
    assert rows("SHOW MASTER STATUS", binlog) == [("db1-bin.000001", 256, "", "")]


def test_without_binary_logging() -> None:
    assert rows("SHOW MASTER STATUS", None) == []
    assert isinstance(run("FLUSH LOGS", None), Ok)
    for sql in (
        "SHOW BINARY LOGS",
        "SHOW BINLOG EVENTS",
        "RESET MASTER",
        "PURGE BINARY LOGS TO 'x'",
    ):
        with pytest.raises(SqlError) as e:
            run(sql, None)
        assert e.value.errno == 1381


def test_replica_statements_on_a_master(binlog: Binlog) -> None:
    for sql in ("START SLAVE", "STOP SLAVE", "CHANGE MASTER TO MASTER_HOST='h'"):
        cmd = parse_admin(sql)
        assert cmd is not None
        with pytest.raises(SqlError) as e:
            execute_binlog_admin(cmd, binlog)
        assert e.value.errno == 1200
    cmd = parse_admin("SHOW SLAVE STATUS")
    assert cmd is not None
    result = execute_binlog_admin(cmd, binlog)
    assert isinstance(result, ResultSet) and result.rows == []
