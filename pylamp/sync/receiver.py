"""The receiving side of a push: a long-running server that applies pushes to its root.

``async with SyncReceiver(root, "127.0.0.1", port=0, key=KEY) as r:`` listens (``r.address``
is what it bound) until the block ends. For each connection it authenticates the sender (see
:mod:`.protocol`), then applies pushes:

- every path is confined to the root: ``..``, absolute paths, empty components, NUL bytes and
  paths through a symlink are refused with a :class:`~.events.PathError` naming the path, and
  the rest of the push goes on;
- each file is written to a temp file in its own directory (``.~pylamp.<random>.tmp``), its
  whole-file hash verified, mode and mtime set, and only then renamed into place: a reader
  never sees a half-written file;
- by default the push's files are renamed into place together at its end, and deletions run
  after that (rsync's ``--delay-updates --delete-after``);
- if the sender goes away mid-push its temp files are removed and nothing is published; temp
  files left by a receiver that was killed are removed by the next push's scan;
- a failing push or a misbehaving client never stops the receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
from collections.abc import Callable
from typing import Any

from . import events as ev
from .apply import PathRefused, PushApplier
from .manifest import Entry, Excluder, scan, sorted_rows
from .protocol import (
    MANIFEST_ROWS,
    NEED_DATA,
    ProtocolError,
    Role,
    State,
    SyncConnection,
    encode_manifest,
)

__all__ = ["PathRefused", "SyncReceiver", "server_tls_context"]

log = logging.getLogger("pylamp.sync.receiver")

_READ_SIZE = 1 << 18
_BIG_FILE = 1 << 20  # signatures of files at least this big are computed in a thread


def server_tls_context(
    cert: str | os.PathLike[str], key: str | os.PathLike[str], ca: str | None = None
) -> ssl.SSLContext:
    """TLS for a receiver: its certificate and key; with ``ca``, senders must present a
    certificate signed by it."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.fspath(cert), os.fspath(key))
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class SyncReceiver:
    """A receiver serving ``root`` on ``host:port`` (port 0 picks a free port).

    ``key`` is the shared secret senders must prove they know; ``tls`` an optional server
    :class:`ssl.SSLContext` (see :func:`server_tls_context`). Pushes to one receiver are
    applied one at a time. A connection that sends nothing for ``idle_timeout`` seconds while
    authenticating or in the middle of a push is dropped (its push publishes nothing), so a
    hung sender cannot hold the receiver; between pushes a connection may idle for ever.
    ``fsync`` flushes every file to disk before it is renamed into place (slower; for crash
    safety against power loss, not just killed processes). ``on_push(counts, failed)`` is
    called after each completed push; ``pushes`` and ``failed_pushes`` count them."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key: bytes,
        tls: ssl.SSLContext | None = None,
        on_push: Callable[[dict[str, int], list[str]], None] | None = None,
        idle_timeout: float = 60.0,
        fsync: bool = False,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the shared key must be at least 16 bytes")
        self.root = os.path.realpath(os.fspath(root))
        self.host = host
        self.port = port
        self._key = key
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_push = on_push
        self.idle_timeout = idle_timeout
        self.fsync = fsync
        self.pushes = 0
        self.failed_pushes = 0

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def start(self) -> None:
        """Create the root if needed and start listening."""
        os.makedirs(self.root, exist_ok=True)
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self._tls, limit=_READ_SIZE
        )
        self.port = self.address[1]  # the bound port when 0 was asked, as other servers do

    async def close(self) -> None:
        """Stop listening and drop the connections (a push in flight publishes nothing)."""
        if self._server is not None:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SyncReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()

    # --- connections -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername")
        conn = SyncConnection(Role.SERVER, self._key, secrets.token_bytes(32))
        handler = _Handler(self, conn, writer)
        try:
            writer.write(conn.send(conn.hello()))
            while True:
                timeout = None if conn.state is State.IDLE else self.idle_timeout
                try:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    raise ProtocolError(f"no data for {timeout} s, giving up") from None
                conn.receive_data(data)
                while True:
                    event = conn.next_event()
                    if event is NEED_DATA:
                        break
                    await handler.on_event(event)
                if not data:
                    break
        except ProtocolError as e:
            if conn.state is State.IDLE and str(e).startswith("connection closed"):
                pass  # a sender hanging up between pushes is normal
            else:
                log.warning("sync connection from %s: %s", peer, e)
                with contextlib.suppress(Exception):
                    writer.write(conn.send(ev.Error(str(e))))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError) as e:
            log.info("sync connection from %s lost: %s", peer, e)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("sync connection from %s failed", peer)
            with contextlib.suppress(Exception):
                writer.write(conn.send(ev.Error("internal error in the receiver")))
        finally:
            await handler.abort()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)


class _Handler:
    """Dispatches one connection's events to the current :class:`~.apply.PushApplier`."""

    def __init__(self, rx: SyncReceiver, conn: SyncConnection, writer: asyncio.StreamWriter):
        self.rx = rx
        self.conn = conn
        self.writer = writer
        self.push: PushApplier | None = None
        self.locked = False
        self.sig_task: asyncio.Task[None] | None = None

    def send(self, event: ev.Event) -> None:
        self.writer.write(self.conn.send(event))

    def send_errors(self, errors: list[ev.PathError] | ev.PathError | None) -> None:
        if errors is None:
            return
        for e in errors if isinstance(errors, list) else [errors]:
            self.send(e)

    async def on_event(self, event: ev.Event) -> None:
        conn = self.conn
        if isinstance(event, ev.Auth):
            self.send(conn.auth_ok())
            return
        if isinstance(event, ev.Begin):
            await self.begin(event)
            return
        push = self.push
        assert push is not None
        if push.cur is not None and not isinstance(event, ev.FileData | ev.FileEnd):
            raise ProtocolError(f"{type(event).__name__} inside file {push.cur.path!r}")
        if isinstance(event, ev.File):
            self.send_errors(push.whole_file(event))
        elif isinstance(event, ev.FileBegin):
            self.send_errors(push.file_begin(event))
        elif isinstance(event, ev.FileData):
            self.send_errors(push.file_data(event.data))
        elif isinstance(event, ev.FileEnd):
            self.send_errors(push.file_end(event))
        elif isinstance(event, ev.SigRequest):
            await self._await_sigs()
            self.sig_task = asyncio.create_task(self.signatures(push, event))
        elif isinstance(event, ev.Mkdirs):
            self.send_errors(push.mkdirs(event.rows))
        elif isinstance(event, ev.Symlinks):
            self.send_errors(push.symlinks(event.rows))
        elif isinstance(event, ev.HashRequest):
            self.send(ev.Hashes(await asyncio.to_thread(push.hashes, event.paths)))
        elif isinstance(event, ev.Moves):
            self.send(ev.MovesDone(tuple(push.moves(event))))
        elif isinstance(event, ev.Meta):
            for row in event.rows:
                try:
                    push.meta.append(Entry(*row))
                except TypeError as e:
                    self.send(push.refuse(row[0] if row else row, e))
        elif isinstance(event, ev.Delete):
            for p in event.paths:
                if p == ".":
                    self.send(push.refuse(p, PathRefused("'.': refusing to delete the root")))
                else:
                    push.deletes.append(p)
        elif isinstance(event, ev.End):
            await self._await_sigs()
            self.send_errors(push.finish())
            self.send(ev.Done(dict(push.counts), tuple(push.failed), tuple(push.redo)))
            self.rx.pushes += 1
            log.info("push applied: %s, %d failed", push.counts, len(push.failed))
            if self.rx._on_push is not None:
                self.rx._on_push(dict(push.counts), list(push.failed))
            self.push = None
            self._unlock()
            await self.writer.drain()
            if push.holds_bases:  # freeing replaced big files is slow; nobody waits for it
                await asyncio.to_thread(push.release_bases)
        await self.writer.drain()

    async def begin(self, m: ev.Begin) -> None:
        await self.rx._lock.acquire()
        self.locked = True
        push = PushApplier(self.rx.root, m, fsync=self.rx.fsync)
        self.push = push
        os.makedirs(self.rx.root, exist_ok=True)  # (again, if someone removed it meanwhile)
        if m.want_manifest:
            found = await asyncio.to_thread(
                scan, self.rx.root, Excluder(m.excludes), checksum=m.checksum
            )
            for rel in found.temps:  # left by a push whose receiver was killed
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.rx.root, rel))
                    push.counts["temps_cleaned"] += 1
            rows = sorted_rows(found.entries)
            n = MANIFEST_ROWS
            for i in range(0, max(len(rows), 1), n):
                data = encode_manifest(rows[i : i + n])
                self.send(ev.Manifest(True, i + n < len(rows), data))
                await self.writer.drain()
        else:
            self.send(ev.Manifest(False))
        await self.writer.drain()

    async def signatures(self, push: PushApplier, req: ev.SigRequest) -> None:
        digests = req.digests if len(req.digests) == len(req.paths) else ("",) * len(req.paths)
        for p, digest in zip(req.paths, digests, strict=True):
            if not isinstance(p, str):
                continue
            try:
                size = os.lstat(push.resolve(p)).st_size
            except (PathRefused, OSError):
                size = 0
            if size >= _BIG_FILE:
                same, data = await asyncio.to_thread(push.signature, p, digest)
            else:
                same, data = push.signature(p, digest)
            self.send(ev.Signature(p, same, data))
            await self.writer.drain()

    async def _await_sigs(self) -> None:
        if self.sig_task is not None:
            task, self.sig_task = self.sig_task, None
            await task

    def _unlock(self) -> None:
        if self.locked:
            self.locked = False
            self.rx._lock.release()

    async def abort(self) -> None:
        if self.sig_task is not None:
            self.sig_task.cancel()
            with contextlib.suppress(BaseException):
                await self.sig_task
        if self.push is not None:
            self.push.abort()
            self.push = None
            self.rx.failed_pushes += 1
        self._unlock()
