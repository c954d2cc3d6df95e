"""Debian's mysqldump dumps a database from the server and the mysql client loads it back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pylamp.db.server import SqlServer


async def _run(db: SqlServer, program: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        program,
        "--no-defaults",
        "--protocol=tcp",
        "-h",
        "127.0.0.1",
        "-P",
        str(db.port),
        "-u",
        "root",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_mysqldump_round_trip(tmp_path: Path) -> None:
    async with SqlServer(tmp_path / "db") as db:
        setup = """
            CREATE DATABASE shop;
            CREATE TABLE shop.items (
              id INT NOT NULL AUTO_INCREMENT, name VARCHAR(50) NOT NULL DEFAULT '',
              price DECIMAL(10,2), note TEXT, PRIMARY KEY (id), UNIQUE KEY u_name (name));
            INSERT INTO shop.items (name, price, note)
              VALUES ('apple', 0.50, NULL), ('it''s', 1.25, 'semi;colon -- not a comment');
        """
        code, _, err = await _run(db, "mysql", stdin=setup)
        assert code == 0, err
        code, dump, err = await _run(db, "mysqldump", "shop")
        assert code == 0, err
        assert "CREATE TABLE `items`" in dump and "UNIQUE KEY `u_name` (`name`)" in dump
        code, _, err = await _run(db, "mysql", "-e", "CREATE DATABASE copy")
        assert code == 0, err
        code, _, err = await _run(db, "mysql", "copy", stdin=dump)
        assert code == 0, err
        code, out, err = await _run(
            db, "mysql", "-N", "-e", "SELECT id, name, price, note FROM copy.items ORDER BY id"
        )
        assert code == 0, err
        assert out.splitlines() == [
            "1\tapple\t0.50\tNULL",
            "2\tit's\t1.25\tsemi;colon -- not a comment",
        ]
