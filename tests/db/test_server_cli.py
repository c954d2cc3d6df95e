"""``python -m pylamp.db`` end to end in a subprocess."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pymysql
import pytest

from pylamp.config import default_topology, dump_topology


@asynccontextmanager
async def db_process(*args: str, cwd: Path | None = None) -> AsyncIterator[tuple[int, list[str]]]:
    """Start the server, wait for its "listening on" line; yield its port and output lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pylamp.db",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    port = 0
    try:
        while not port:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, "server exited before listening:\n" + "".join(lines)
            lines.append(line)
            if m := re.search(r"listening on 127\.0\.0\.1:(\d+)$", line.strip()):
                port = int(m.group(1))
        yield port, lines
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stdout.read(), 60)
        lines.extend(rest.decode().splitlines(keepends=True))
        assert await proc.wait() == 0, "".join(lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _query(port: int, password: str, sql: str, database: str | None = None) -> tuple:  # type: ignore[type-arg]
    with (
        pymysql.connect(
            host="127.0.0.1", port=port, user="root", password=password, database=database
        ) as c,
        c.cursor() as cur,
    ):
        cur.execute(sql)
        c.commit()
        return cur.fetchall()


async def test_standalone_flags_binlog_and_clean_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--listen", "127.0.0.1:0", "--server-id", "7"]
    args += ["--log-bin", "db1", "--root-password", "pw"]
    async with db_process(*args) as (port, _):
        await asyncio.to_thread(_query, port, "pw", "CREATE DATABASE d")
        await asyncio.to_thread(_query, port, "pw", "CREATE TABLE t (a INT)", "d")
        await asyncio.to_thread(_query, port, "pw", "INSERT INTO t VALUES (1)", "d")
        rows = await asyncio.to_thread(_query, port, "pw", "SELECT @@server_id")
        assert rows == ((7,),)
        rows = await asyncio.to_thread(_query, port, "pw", "SHOW MASTER STATUS")
        assert rows[0][0] == "db1-bin.000001"
    assert (data / "db1-bin.index").read_text().split() == ["./db1-bin.000001"]
    # Restart on the same data: the row is there, the next binlog file is opened.
    async with db_process(*args) as (port, _):
        assert await asyncio.to_thread(_query, port, "pw", "SELECT a FROM t", "d") == ((1,),)


async def test_config_and_name(tmp_path: Path) -> None:
    topology = default_topology()
    db1 = dataclasses.replace(topology.db[0], host="127.0.0.1", port=0, root_password="cfg")
    topology = dataclasses.replace(
        topology,
        db=(db1, *topology.db[1:]),
        cluster=dataclasses.replace(topology.cluster, data_dir=str(tmp_path / "state")),
    )
    config = tmp_path / "cluster.toml"
    config.write_text(dump_topology(topology))
    async with db_process("--config", str(config), "--name", db1.name) as (port, lines):
        assert f"pylamp.db {db1.name} listening" in lines[-1]
        assert await asyncio.to_thread(_query, port, "cfg", "SELECT 1") == ((1,),)
    assert (tmp_path / "state" / db1.name / "mysql.sqlite").exists()


async def test_bad_arguments_exit_with_usage(tmp_path: Path) -> None:
    for args in (["--listen", "nonsense", "--data-dir", str(tmp_path)], ["--listen", "1:2"]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pylamp.db", *args, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        assert proc.returncode == 2
        assert b"usage:" in err


def test_binlog_preallocate_option(tmp_path: Path) -> None:
    from pylamp.db.__main__ import parse_args

    settings, _, _ = parse_args(["--data-dir", str(tmp_path), "--binlog-preallocate", "0"])
    assert settings["binlog_preallocate"] == 0
    settings, _, _ = parse_args(["--data-dir", str(tmp_path)])
    assert "binlog_preallocate" not in settings  # SqlServer's default (1 MiB) applies


def test_page_size_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pylamp.db.__main__ import parse_args

    settings, _, _ = parse_args(["--data-dir", str(tmp_path), "--page-size", "1024"])
    assert settings["page_size"] == 1024
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--data-dir", str(tmp_path), "--page-size", "1000"])
    assert exit_info.value.code == 2
    assert "--page-size must be a power of two" in capsys.readouterr().err
