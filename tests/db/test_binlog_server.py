"""The binary log through the real server and a real client (PyMySQL), then mysqlbinlog."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pymysql
import pytest

from pylamp.db.server import SqlServer


def _connect(db: SqlServer) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host="127.0.0.1", port=db.port, user="root", password="", autocommit=True
    )


def _errno(cur: pymysql.cursors.Cursor, sql: str) -> int:
    with pytest.raises(pymysql.err.MySQLError) as e:
        cur.execute(sql)
    return int(e.value.args[0])


async def test_writes_are_logged_and_admin_statements_work(tmp_path: Path) -> None:
    async with SqlServer(tmp_path, port=0, log_bin="db1", server_id=9) as db:

        def work() -> None:
            with _connect(db) as conn, conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                assert cur.fetchall() == (("db1-bin.000001", 256, "", ""),)
                assert [d[0] for d in cur.description] == [
                    "File",
                    "Position",
                    "Binlog_Do_DB",
                    "Binlog_Ignore_DB",
                ]
                cur.execute("CREATE DATABASE shop")
                cur.execute("USE shop")
                cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), at DATETIME)")
                cur.execute("INSERT INTO t VALUES (1, 'a', NOW())")
                cur.execute("BEGIN")
                cur.execute("INSERT INTO t VALUES (2, 'b', NULL)")
                cur.execute("UPDATE t SET v = 'c' WHERE id = 1")
                cur.execute("COMMIT")
                cur.execute("BEGIN")
                cur.execute("INSERT INTO t VALUES (3, 'rolled back', NULL)")
                cur.execute("ROLLBACK")
                cur.execute("SELECT * FROM t")
                cur.execute("UPDATE t SET v = 'x' WHERE id = 42")  # changes nothing
                cur.execute("SHOW BINLOG EVENTS")
                events = cur.fetchall()
                infos = [(e[2], e[5]) for e in events]
                assert [d[0] for d in cur.description] == [
                    "Log_name",
                    "Pos",
                    "Event_type",
                    "Server_id",
                    "End_log_pos",
                    "Info",
                ]
                assert infos[0][0] == "Format_desc"
                assert infos[1] == ("Query", "CREATE DATABASE shop")
                assert infos[2][1].startswith("use `shop`; CREATE TABLE t")
                assert infos[3] == ("Query", "BEGIN")
                # NOW() was replaced by a literal before it was logged
                assert re.fullmatch(
                    r"use `shop`; INSERT INTO t VALUES \(1, 'a', "
                    r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d'\)",
                    infos[4][1],
                ), infos[4]
                assert infos[5][0] == "Xid"
                assert [i[1] for i in infos[6:9]] == [
                    "BEGIN",
                    "use `shop`; INSERT INTO t VALUES (2, 'b', NULL)",
                    "use `shop`; UPDATE t SET v = 'c' WHERE id = 1",
                ]
                assert infos[9][0] == "Xid" and len(infos) == 10
                assert all(e[3] == 9 for e in events)
                cur.execute("SHOW MASTER STATUS")
                file, pos, _, _ = cur.fetchone()
                assert (file, pos) == ("db1-bin.000001", events[-1][4])
                cur.execute(
                    f"SHOW BINLOG EVENTS IN 'db1-bin.000001' FROM {events[6][1]} LIMIT 1, 2"
                )
                assert cur.fetchall() == events[7:9]

                cur.execute("FLUSH LOGS")
                cur.execute("FLUSH BINARY LOGS")
                cur.execute("SHOW BINARY LOGS")
                logs = cur.fetchall()
                assert [name for name, _ in logs] == [f"db1-bin.00000{i}" for i in (1, 2, 3)]
                assert logs[0][1] == pos + 45  # the ROTATE event ("db1-bin.000002")
                cur.execute("INSERT INTO t VALUES (4, 'd', NULL)")
                cur.execute("SHOW MASTER STATUS")
                assert cur.fetchone()[0] == "db1-bin.000003"
                assert _errno(cur, "PURGE BINARY LOGS TO 'db1-bin.000042'") == 1373
                assert _errno(cur, "SHOW BINLOG EVENTS IN 'other-bin.000001'") == 1220
                cur.execute("PURGE BINARY LOGS TO 'db1-bin.000002'")
                cur.execute("SHOW BINARY LOGS")
                assert [r[0] for r in cur.fetchall()] == ["db1-bin.000002", "db1-bin.000003"]

        await asyncio.to_thread(work)
    assert not (tmp_path / "db1-bin.000001").exists()
    out = subprocess.run(
        ["mysqlbinlog", "--verify-binlog-checksum", str(tmp_path / "db1-bin.000003")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "INSERT INTO t VALUES (4, 'd', NULL)" in out
    assert "server id 9" in out and re.search(r"\tStop$", out, re.M)


async def test_reset_master_and_rotation_by_size(tmp_path: Path) -> None:
    async with SqlServer(tmp_path, port=0, log_bin="m", max_binlog_size=4096) as db:

        def work() -> None:
            with _connect(db) as conn, conn.cursor() as cur:
                cur.execute("CREATE DATABASE d")
                cur.execute("CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT)")
                for i in range(40):
                    cur.execute("INSERT INTO d.t VALUES (%s, %s)", (i, "x" * 200))
                cur.execute("SHOW BINARY LOGS")
                logs = cur.fetchall()
                assert len(logs) >= 3
                assert all(size >= 4096 for _, size in logs[:-1])
                cur.execute("RESET MASTER")
                cur.execute("SHOW BINARY LOGS")
                assert cur.fetchall() == (("m-bin.000001", 256),)
                cur.execute("SELECT COUNT(*) FROM d.t")
                assert cur.fetchone() == (40,)
                cur.execute("INSERT INTO d.t VALUES (99, 'after reset')")
                cur.execute("SHOW BINLOG EVENTS")
                infos = [e[5] for e in cur.fetchall()]
                assert any("INSERT INTO d.t VALUES (99, 'after reset')" in i for i in infos)

        await asyncio.to_thread(work)
    # the data survives a restart after RESET MASTER (recovery does not replay anything twice)
    async with SqlServer(tmp_path, port=0, log_bin="m", max_binlog_size=4096) as db:

        def check() -> None:
            with _connect(db) as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM d.t")
                assert cur.fetchone() == (41,)

        await asyncio.to_thread(check)


async def test_connection_id_is_the_handshakes_everywhere(tmp_path: Path) -> None:
    async with SqlServer(tmp_path, port=0, log_bin="db1", server_id=9) as db:

        def work() -> tuple[list[int], list[int]]:
            ids = []
            for _ in range(2):
                with _connect(db) as conn, conn.cursor() as cur:
                    cur.execute("CREATE DATABASE IF NOT EXISTS shop")
                    cur.execute("CREATE TABLE IF NOT EXISTS shop.t (a INT)")
                    cur.execute("SELECT CONNECTION_ID()")
                    (row,) = cur.fetchall()
                    assert row[0] == conn.thread_id()
                    cur.execute("INSERT INTO shop.t VALUES (CONNECTION_ID())")
                    ids.append(conn.thread_id())
            with _connect(db) as conn, conn.cursor() as cur:
                cur.execute("SELECT a FROM shop.t")
                stored = [r[0] for r in cur.fetchall()]
            return ids, stored

        ids, stored = await asyncio.to_thread(work)
        assert stored == ids and ids[0] != ids[1]
    out = subprocess.run(
        ["mysqlbinlog", str(tmp_path / "db1-bin.000001")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # every QUERY event carries the id of the connection that ran it
    assert sorted({int(t) for t in re.findall(r"\bthread_id=(\d+)", out)}) == sorted(ids)


async def test_server_preallocates_the_open_binlog(tmp_path: Path) -> None:
    # zeros stand ahead of the open file's end (a durable commit's fsync then overwrites
    # instead of growing the file); stopping cuts them off, and mysqlbinlog reads it cleanly
    async with SqlServer(tmp_path, port=0, log_bin="db1", binlog_preallocate=65536) as db:

        def work() -> int:
            with _connect(db) as conn, conn.cursor() as cur:
                cur.execute("CREATE DATABASE shop")
                cur.execute("CREATE TABLE shop.t (a INT)")
                cur.execute("INSERT INTO shop.t VALUES (7)")
                cur.execute("SHOW MASTER STATUS")
                return int(cur.fetchall()[0][1])

        end = await asyncio.to_thread(work)
        path = tmp_path / "db1-bin.000001"
        assert path.stat().st_size >= 65536 > end
    assert path.stat().st_size > end  # the STOP event
    r = subprocess.run(["mysqlbinlog", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "" and "INSERT INTO shop.t VALUES (7)" in r.stdout
    async with SqlServer(tmp_path, port=0, log_bin="db1", binlog_preallocate=0):
        assert (tmp_path / "db1-bin.000002").stat().st_size < 65536
