"""Helpers for the sync tests: build trees, snapshot them, drive a raw protocol client."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from pylamp.sync import events as ev
from pylamp.sync.manifest import is_temp_name
from pylamp.sync.protocol import NEED_DATA, Role, SyncConnection

KEY = b"sync-test-key-0123456789abcdef"
PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


def write(
    root: Path, rel: str, data: bytes | str, *, mode: int = 0o644, mtime_ns: int | None = None
) -> Path:
    """Create or overwrite a file (parents made as needed) with the given mode and mtime."""
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(p, mode)
    if mtime_ns is not None:
        os.utime(p, ns=(mtime_ns, mtime_ns))
    return p


def symlink(root: Path, rel: str, target: str, *, mtime_ns: int | None = None) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, p)
    if mtime_ns is not None:
        os.utime(p, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def sample_tree(root: Path) -> None:
    """A tree with the interesting cases: nested dirs with odd modes, an empty file, an empty
    dir, files of several sizes, symlinks to a file, to a dir, dangling and absolute, and
    nanosecond mtimes."""
    base = 1_700_000_000_123_456_789
    write(root, "index.html", "<h1>hello</h1>\n", mtime_ns=base + 1)
    write(root, "empty", b"", mode=0o600, mtime_ns=base + 2)
    write(root, "img/logo.png", secrets.token_bytes(70_000), mtime_ns=base + 3)
    write(root, "img/big.bin", secrets.token_bytes(600_000), mode=0o640, mtime_ns=base + 4)
    write(root, "cgi/run.sh", "#!/bin/sh\necho hi\n", mode=0o755, mtime_ns=base + 5)
    write(root, "deep/a/b/c/d.txt", "deep\n" * 300, mtime_ns=base + 6)
    (root / "emptydir").mkdir(parents=True)
    symlink(root, "home.html", "index.html", mtime_ns=base + 7)
    symlink(root, "pictures", "img", mtime_ns=base + 8)
    symlink(root, "dangling", "no/such/file", mtime_ns=base + 9)
    symlink(root, "abs", "/nonexistent/absolute/target", mtime_ns=base + 10)
    os.chmod(root / "cgi", 0o750)
    for d, t in (("deep/a/b/c", 11), ("deep/a/b", 12), ("deep/a", 13), ("deep", 14)):
        os.utime(root / d, ns=(base + t, base + t))
    for d, t in (("img", 15), ("cgi", 16), ("emptydir", 17), (".", 18)):
        os.utime(root / d, ns=(base + t, base + t))


def snapshot(root: Path, *, times: bool = True) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``root`` (root included as "."): kind, permissions, mtime_ns (for
    dirs too), and content digest or link target. Symlinks are never followed."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, None]:
            full = dirpath if name is None else os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in out:
                continue
            st = os.lstat(full)
            t = st.st_mtime_ns if times else 0
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", t, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), t)
            else:
                data = Path(full).read_bytes()
                out[rel] = ("f", stat.S_IMODE(st.st_mode), t, hashlib.sha256(data).hexdigest())
    return out


def temp_files(root: Path) -> list[str]:
    """The receiver's temp files anywhere under ``root``."""
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if is_temp_name(n)]


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.002) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


async def async_wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.002)


def key_file(tmp: Path, key: bytes = KEY) -> Path:
    p = tmp / "sync.key"
    p.write_bytes(key + b"\n")
    return p


def start_serve(root: Path, keyf: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    """``python -m pylamp.sync serve`` on port 0; returns the process and its port."""
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "pylamp.sync",
            "serve",
            "--root",
            str(root),
            "--listen",
            "127.0.0.1:0",
            "--key",
            str(keyf),
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc, int(line.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def hand_receiver(
    answer: Callable[[ev.Event], list[ev.Event]],
) -> AsyncIterator[tuple[tuple[str, int], list[ev.Event]]]:
    """A hand-driven receiver on 127.0.0.1: the server core over a real socket. It
    authenticates senders, records every event they send, and answers each with what
    ``answer(event)`` returns (including what a real receiver never would). Yields its
    address and the list of recorded events."""
    got: list[ev.Event] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = SyncConnection(Role.SERVER, KEY, secrets.token_bytes(32))
        writer.write(conn.send(conn.hello()))
        while data := await reader.read(65536):
            conn.receive_data(data)
            while (e := conn.next_event()) is not NEED_DATA:
                got.append(e)
                for reply in [conn.auth_ok()] if isinstance(e, ev.Auth) else answer(e):
                    writer.write(conn.send(reply))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        host, port = server.sockets[0].getsockname()[:2]
        yield (host, port), got


class RawClient:
    """A hand-driven sender: the sans-IO client core over a real socket, sending whatever
    the test asks for (including what a real sender never would)."""

    def __init__(self, key: bytes = KEY) -> None:
        self.conn = SyncConnection(Role.CLIENT, key, secrets.token_bytes(32))
        self.sent = bytearray()
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self, address: tuple[str, int], *, auth: bool = True) -> None:
        self.reader, self.writer = await asyncio.open_connection(*address)
        hello = await self.next()
        assert isinstance(hello, ev.Hello)
        if auth:
            self.send(self.conn.auth())
            assert isinstance(await self.next(), ev.AuthOk)

    def send(self, event: ev.Event) -> None:
        data = self.conn.send(event)
        self.sent += data
        self.writer.write(data)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def next(self) -> ev.Event:
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event  # type: ignore[no-any-return]
            self.conn.receive_data(await self.reader.read(65536))

    async def until(self, kind: type) -> tuple[Any, list[ev.Event]]:
        """Read events until one of ``kind``; return it and the events before it."""
        seen: list[ev.Event] = []
        while True:
            e = await self.next()
            if isinstance(e, kind):
                return e, seen
            seen.append(e)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def file_event(
    path: str, data: bytes, *, mode: int = 0o644, mtime_ns: int = 1_600_000_000_000_000_000
) -> ev.File:
    import xxhash

    return ev.File(path, mode, mtime_ns, xxhash.xxh3_128_hexdigest(data), data)


def rows(entries: Iterable[tuple[Any, ...]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(e) for e in entries)
