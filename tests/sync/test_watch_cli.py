"""``python -m pylamp.sync watch`` end to end: a subprocess pushing to a real receiver."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

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
