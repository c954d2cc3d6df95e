"""Real client programs and libraries against SqlServer: mysql (mariadb-client), aiomysql."""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiomysql
import pymysql
import pytest
from mysql import connector as mysql_connector

from pylamp.db.server import SqlServer

PASSWORD = "pw-for-clients"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SqlServer]:
    async with SqlServer(tmp_path / "db1", root_password=PASSWORD) as db:
        yield db


async def mysql(
    db: SqlServer, *args: str, stdin: str | None = None, password: str = PASSWORD
) -> tuple[int, str, str]:
    """Run Debian's ``mysql`` client against ``db``; return exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        "mysql",
        "--no-defaults",
        "--protocol=tcp",
        "-h",
        "127.0.0.1",
        "-P",
        str(db.port),
        "-u",
        "root",
        f"-p{password}",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_mysql_client_batch_and_vertical_output(server: SqlServer) -> None:
    script = """
        CREATE DATABASE shop;
        USE shop;
        CREATE TABLE item (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(30), price INT);
        INSERT INTO item (name, price) VALUES ('apple', 3), ('pear', NULL);
    """
    assert await mysql(server, stdin=script) == (0, "", "")
    code, out, err = await mysql(server, "shop", "-e", "SELECT id, name, price FROM item")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["id\tname\tprice", "1\tapple\t3", "2\tpear\tNULL"]
    code, out, _ = await mysql(server, "-D", "shop", "-e", "SELECT name, price FROM item\\G")
    assert code == 0
    assert out.splitlines() == [
        "*************************** 1. row ***************************",
        " name: apple",
        "price: 3",
        "*************************** 2. row ***************************",
        " name: pear",
        "price: NULL",
    ]
    code, out, _ = await mysql(server, "--table", "shop", "-e", "SELECT COUNT(*) AS n FROM item")
    assert code == 0
    assert re.search(r"^\| n +\|$", out, re.M) and re.search(r"^\| +2 \|$", out, re.M)


async def test_mysql_client_reports_errors(server: SqlServer) -> None:
    code, _, err = await mysql(server, "-e", "SELECT * FROM mysql.nosuchtable")
    assert (code == 1 and "ERROR 1049" in err) or "ERROR 1146" in err
    code, _, err = await mysql(server, "-e", "SELEC 1")
    assert code == 1 and "ERROR 1064 (42000)" in err
    code, _, err = await mysql(server, "-e", "SELECT 1", password="wrong")
    assert code == 1 and "ERROR 1045 (28000)" in err and "Access denied" in err


async def test_aiomysql(server: SqlServer) -> None:
    conn = await aiomysql.connect(
        host="127.0.0.1", port=server.port, user="root", password=PASSWORD, autocommit=False
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("CREATE DATABASE app")
            await conn.select_db("app")
            await cur.execute("CREATE TABLE kv (k VARCHAR(20) PRIMARY KEY, v INT)")
            await cur.execute("INSERT INTO kv VALUES (%s, %s), (%s, %s)", ("a", 1, "b", None))
            await conn.commit()
            await cur.execute("INSERT INTO kv VALUES ('c', 3)")
            await conn.rollback()
            await cur.execute("SELECT k, v FROM kv ORDER BY k")
            assert await cur.fetchall() == (("a", 1), ("b", None))
            with pytest.raises(pymysql.err.IntegrityError) as info:
                await cur.execute("INSERT INTO kv VALUES ('a', 9)")
            assert info.value.args[0] == 1062
            await conn.ping()
    finally:
        conn.close()


async def test_aiomysql_pool_of_concurrent_connections(server: SqlServer) -> None:
    pool = await aiomysql.create_pool(
        host="127.0.0.1", port=server.port, user="root", password=PASSWORD, maxsize=8
    )

    async def one(i: int) -> int:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT %s + 1", (i,))
            (value,) = await cur.fetchone()
            return int(value)

    try:
        assert await asyncio.gather(*(one(i) for i in range(40))) == [i + 1 for i in range(40)]
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize("plugin", ["mysql_native_password", "caching_sha2_password"])
async def test_mysql_connector_python_prepared_statements(server: SqlServer, plugin: str) -> None:
    """Oracle's Connector/Python (pure Python): auth switch and the binary protocol."""

    def work() -> None:
        cnx = mysql_connector.connect(
            host="127.0.0.1",
            port=server.port,
            user="root",
            password=PASSWORD,
            auth_plugin=plugin,
            use_pure=True,
            autocommit=True,
        )
        try:
            cur = cnx.cursor(prepared=True)
            cur.execute("CREATE DATABASE IF NOT EXISTS ps")
            cur.execute("USE ps")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS ev (id INT PRIMARY KEY, name VARCHAR(20), "
                "score DOUBLE, at DATETIME, raw BLOB)"
            )
            cur.execute("DELETE FROM ev")
            at = datetime.datetime(2024, 5, 6, 7, 8, 9)
            insert = "INSERT INTO ev (id, name, score, at, raw) VALUES (?, ?, ?, ?, ?)"
            cur.execute(insert, (1, "o'neil", 2.5, at, b"\x00\xff"))
            cur.execute(insert, (2, None, None, None, None))
            assert cur.rowcount == 1
            cur.execute("SELECT id, name, score, at FROM ev WHERE id >= ? ORDER BY id", (1,))
            assert cur.fetchall() == [(1, "o'neil", 2.5, at), (2, None, None, None)]
            cur.execute("SELECT raw FROM ev WHERE id = ?", (1,))
            assert bytes(cur.fetchone()[0]) == b"\x00\xff"
            with pytest.raises(mysql_connector.errors.IntegrityError) as info:
                cur.execute(insert, (1, "again", 0.0, at, b""))
            assert info.value.errno == 1062
        finally:
            cnx.close()

    await asyncio.to_thread(work)


async def test_mysqladmin_ping_and_status(server: SqlServer) -> None:
    async def mysqladmin(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "mysqladmin", "--no-defaults", "--protocol=tcp", "-h", "127.0.0.1",
            "-P", str(server.port), "-u", "root", f"-p{PASSWORD}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    assert await mysqladmin("ping") == (0, "mysqld is alive\n")
    code, out = await mysqladmin("status")
    assert code == 0
    assert re.fullmatch(r"Uptime: \d+  Threads: 1  Questions: \d+  .*\n", out)
