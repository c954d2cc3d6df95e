"""``python -m pylamp.sync watch`` end to end: a subprocess pushing to a real receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sys
from pathlib import Path

from pylamp.config import default_topology, dump_topology
from pylamp.sync.receiver import SyncReceiver

KEY = b"watch-cli-test-key-0123456789abc"
REPO = Path(__file__).resolve().parents[2]


async def _line_with(stream: asyncio.StreamReader, needle: str, timeout: float = 20.0) -> str:
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"output ended before {needle!r}")
            if needle in line:
                return line


async def test_watch_command_pushes_changes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.html").write_text("first")
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    async with SyncReceiver(tmp_path / "dst", key=KEY) as r:
        host, port = r.address
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pylamp.sync", "watch", str(src), f"{host}:{port}",
            "--key", str(key_file), "--debounce", "0",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert "pushed everything" in await _line_with(proc.stdout, "pushed")
            await _line_with(proc.stdout, "watching")
            assert (tmp_path / "dst" / "index.html").read_text() == "first"
            (tmp_path / "tmp.html").write_text("second")
            os.replace(tmp_path / "tmp.html", src / "index.html")  # as editors save
            line = await _line_with(proc.stdout, "path(s)")
            assert "ERROR" not in line
            assert (tmp_path / "dst" / "index.html").read_text() == "second"
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_watch_command_refuses_missing_source(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pylamp.sync", "watch", str(tmp_path / "nope"), "127.0.0.1:1",
        "--key", str(key_file),
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode != 0
    assert b"not a directory" in err


async def test_watch_command_from_the_topology(tmp_path: Path) -> None:
    """--config: web1's docroot to the secondaries' sync ports; one is down and only gets an
    error line, the other is kept in sync."""
    data = tmp_path / "data"
    www = data / "web1" / "www"
    www.mkdir(parents=True)
    (www / "index.html").write_text("from the topology")
    (data / "sync.key").write_bytes(KEY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    async with SyncReceiver(data / "web2" / "www", key=KEY) as r:
        topo = default_topology()
        web = tuple(
            dataclasses.replace(
                w, host="127.0.0.1", port=18280 + i, sync_port=(1, r.address[1], dead)[i]
            )
            for i, w in enumerate(topo.web)
        )
        cluster = dataclasses.replace(topo.cluster, data_dir=str(data), sync_debounce=0.0)
        config = tmp_path / "cluster.toml"
        config.write_text(dump_topology(dataclasses.replace(topo, web=web, cluster=cluster)))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pylamp.sync", "watch", "--config", str(config),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            first = await _line_with(proc.stdout, "pushed everything")
            assert f"127.0.0.1:{dead}: ERROR" in first
            await _line_with(proc.stdout, "watching")
            assert (data / "web2" / "www" / "index.html").read_text() == "from the topology"
            (tmp_path / "new.html").write_text("new")
            os.replace(tmp_path / "new.html", www / "new.html")  # as editors save
            line = await _line_with(proc.stdout, "path(s)")
            assert "1 sent" in line, line
            assert (data / "web2" / "www" / "new.html").read_text() == "new"
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
