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
import shutil
import socket
import ssl
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

from . import delta as dl
from . import events as ev
from .manifest import TEMP_PREFIX, TEMP_SUFFIX, Entry, Excluder, hash_file, scan
from .protocol import NEED_DATA, ProtocolError, Role, State, SyncConnection

__all__ = ["PathRefused", "SyncReceiver", "server_tls_context"]

log = logging.getLogger("pylamp.sync.receiver")

_READ_SIZE = 1 << 18
_BIG_FILE = 1 << 20  # signatures of files at least this big are computed in a thread


class PathRefused(Exception):
    """A path the receiver will not touch; the message names the path and the reason."""


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temp_name() -> str:
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"


@dataclass
class _Incoming:
    """The file being streamed (FileBegin .. FileEnd)."""

    path: str
    mode: int
    mtime_ns: int
    delta: bool
    temp: str | None = None  # None: the path was refused, chunks are skipped
    final: str = ""
    fd: int = -1
    basis_fd: int = -1
    sig: dl.Signature | None = None
    decoder: dl.OpDecoder | None = None
    hasher: Any = field(default_factory=xxhash.xxh3_128)


class _Push:
    """One push being applied under ``root``: staged temp files, queued metadata and deletions,
    errors. Holds no socket: the connection handler feeds it events and sends what it returns."""

    def __init__(self, root: str, begin: ev.Begin) -> None:
        self.root = root
        self.delay = begin.delay_updates
        self.temps: set[str] = set()
        self.staged: list[tuple[str, str, str]] = []  # (temp, final, rel)
        self.sigs: dict[str, dl.Signature] = {}
        self.meta: list[Entry] = []
        self.deletes: list[str] = []
        self.cur: _Incoming | None = None
        self.failed: list[str] = []
        self.redo: list[str] = []
        self.counts = {
            "files": 0,
            "moved": 0,
            "deleted": 0,
            "dirs": 0,
            "symlinks": 0,
            "meta": 0,
            "temps_cleaned": 0,
        }
        self._dirs_ok: set[str] = {""}

    # --- paths -------------------------------------------------------------------------------

    def resolve(self, path: object, *, allow_root: bool = False) -> str:
        """The absolute path for ``path`` inside the root, or raise :class:`PathRefused`.

        Refused: non-strings, NUL bytes, absolute paths, ``.``/``..``/empty components, and
        any path whose parent directories are not real directories (a symlink there could
        lead outside the root)."""
        if not isinstance(path, str) or not path:
            raise PathRefused(f"{path!r}: not a path")
        if "\x00" in path:
            raise PathRefused(f"{path!r}: NUL byte in path")
        if path.startswith("/"):
            raise PathRefused(f"{path!r}: absolute path")
        if path == ".":
            if allow_root:
                return self.root
            raise PathRefused("'.': the root itself")
        parts = path.split("/")
        for p in parts:
            if p in ("", ".", ".."):
                raise PathRefused(f"{path!r}: {p or 'empty'!r} component escapes or is ambiguous")
        try:
            os.fsencode(path)
        except UnicodeError:
            raise PathRefused(f"{path!r}: not encodable as a file name") from None
        parent = ""
        for p in parts[:-1]:
            parent = f"{parent}/{p}" if parent else p
            if parent in self._dirs_ok:
                continue
            try:
                st = os.lstat(os.path.join(self.root, parent))
            except OSError as e:
                raise PathRefused(f"{path!r}: parent {parent!r} unusable: {e.strerror}") from None
            if stat.S_ISLNK(st.st_mode):
                raise PathRefused(f"{path!r}: parent {parent!r} is a symlink")
            if not stat.S_ISDIR(st.st_mode):
                raise PathRefused(f"{path!r}: parent {parent!r} is not a directory")
            self._dirs_ok.add(parent)
        return os.path.join(self.root, path)

    def _forget_dirs(self) -> None:
        self._dirs_ok = {""}

    def refuse(self, path: object, exc: BaseException) -> ev.PathError:
        """Record a failed path and make the error event for it."""
        p = path if isinstance(path, str) else repr(path)
        self.failed.append(p)
        msg = str(exc) if isinstance(exc, PathRefused) else f"{p!r}: {exc}"
        log.warning("push: %s", msg)
        return ev.PathError(p, msg)

    def _new_temp(self, final: str) -> tuple[str, int]:
        temp = os.path.join(os.path.dirname(final), _temp_name())
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.temps.add(temp)
        return temp, fd

    def _drop_temp(self, temp: str) -> None:
        self.temps.discard(temp)
        with contextlib.suppress(OSError):
            os.unlink(temp)

    # --- staging -----------------------------------------------------------------------------

    def _stage(self, temp: str, final: str, rel: str) -> None:
        if self.delay:
            self.staged.append((temp, final, rel))
        else:
            self._install(temp, final)

    def _install(self, temp: str, final: str) -> None:
        try:
            st = os.lstat(final)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(final)  # a directory replaced by a file or a symlink
                self._forget_dirs()
        os.rename(temp, final)
        self.temps.discard(temp)

    def mkdirs(self, rows: tuple[tuple[Any, ...], ...]) -> list[ev.PathError]:
        errors = []
        for row in rows:
            path = row[0] if row else None
            try:
                full = self.resolve(path)
                try:
                    st = os.lstat(full)
                except FileNotFoundError:
                    os.mkdir(full, 0o700)
                    self.counts["dirs"] += 1
                else:
                    if not stat.S_ISDIR(st.st_mode):
                        os.unlink(full)  # a file or symlink replaced by a directory
                        os.mkdir(full, 0o700)
                        self.counts["dirs"] += 1
            except (PathRefused, OSError, ValueError) as e:
                errors.append(self.refuse(path, e))
        return errors

    def symlinks(self, rows: tuple[tuple[Any, ...], ...]) -> list[ev.PathError]:
        errors = []
        for row in rows:
            path = row[0] if row else None
            try:
                e = Entry(*row)
                full = self.resolve(e.path)
                if not isinstance(e.target, str) or not e.target or "\x00" in e.target:
                    raise PathRefused(f"{e.path!r}: bad symlink target")
                temp = os.path.join(os.path.dirname(full), _temp_name())
                os.symlink(e.target, temp)
                self.temps.add(temp)
                os.utime(temp, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
                self._stage(temp, full, e.path)
                self.counts["symlinks"] += 1
            except (PathRefused, OSError, ValueError, TypeError) as exc:
                errors.append(self.refuse(path, exc))
        return errors

    def _finish_temp(self, fd: int, mode: int, mtime_ns: int) -> None:
        os.fchmod(fd, mode & 0o7777)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
        os.close(fd)

    def whole_file(self, m: ev.File) -> ev.PathError | None:
        temp = None
        try:
            full = self.resolve(m.path)
            if xxhash.xxh3_128_hexdigest(m.data) != m.digest:
                raise PathRefused(f"{m.path!r}: whole-file hash mismatch")
            temp, fd = self._new_temp(full)
            try:
                _write_all(fd, m.data)
            finally:
                self._finish_temp(fd, m.mode, m.mtime_ns)
            self._stage(temp, full, m.path)
            self.counts["files"] += 1
            return None
        except (PathRefused, OSError, ValueError, TypeError) as e:
            if temp is not None:
                self._drop_temp(temp)
            return self.refuse(m.path, e)

    def file_begin(self, m: ev.FileBegin) -> ev.PathError | None:
        cur = _Incoming(m.path, m.mode, m.mtime_ns, m.delta)
        self.cur = cur
        try:
            cur.final = self.resolve(m.path)
            if m.delta:
                cur.sig = self.sigs.pop(m.path, None)
                if cur.sig is None:
                    raise PathRefused(f"{m.path!r}: delta without a signature")
                cur.basis_fd = os.open(cur.final, os.O_RDONLY | os.O_NOFOLLOW)
                cur.decoder = dl.OpDecoder()
            cur.temp, cur.fd = self._new_temp(cur.final)
            return None
        except (PathRefused, OSError, ValueError, TypeError) as e:
            self._abort_current()
            return self.refuse(m.path, e)

    def file_data(self, data: bytes) -> ev.PathError | None:
        cur = self.cur
        if cur is None:
            raise ProtocolError("FileData without FileBegin")
        if cur.temp is None:
            return None
        try:
            if cur.decoder is not None:
                assert cur.sig is not None
                bfd = cur.basis_fd
                ops = cur.decoder.feed(data)
                for piece in dl.patch(lambda off, n: os.pread(bfd, n, off), ops, cur.sig):
                    cur.hasher.update(piece)
                    _write_all(cur.fd, piece)
            else:
                cur.hasher.update(data)
                _write_all(cur.fd, data)
            return None
        except (OSError, ValueError) as e:
            self._abort_current()
            return self._failed_current(cur, e)

    def _failed_current(self, cur: _Incoming, exc: BaseException) -> ev.PathError | None:
        if cur.delta and cur.sig is not None:
            # The basis did not give the sender's file (it changed since its signature was
            # made): ask for the file whole instead of reporting an error.
            log.info("delta for %r did not rebuild (%s); asking for it whole", cur.path, exc)
            self.redo.append(cur.path)
            return None
        return self.refuse(cur.path, exc)

    def file_end(self, m: ev.FileEnd) -> ev.PathError | None:
        cur = self.cur
        if cur is None:
            raise ProtocolError("FileEnd without FileBegin")
        if cur.temp is None:
            self.cur = None
            return None
        try:
            if cur.decoder is not None:
                cur.decoder.close()
            if cur.hasher.hexdigest() != m.digest:
                raise PathRefused(f"{cur.path!r}: whole-file hash mismatch")
            fd, cur.fd = cur.fd, -1
            self._finish_temp(fd, cur.mode, cur.mtime_ns)
            self._close_basis(cur)
            self._stage(cur.temp, cur.final, cur.path)
            self.counts["files"] += 1
            self.cur = None
            return None
        except (PathRefused, OSError, ValueError) as e:
            self._abort_current()
            self.cur = None
            return self._failed_current(cur, e)

    def _close_basis(self, cur: _Incoming) -> None:
        if cur.basis_fd >= 0:
            os.close(cur.basis_fd)
            cur.basis_fd = -1

    def _abort_current(self) -> None:
        cur = self.cur
        if cur is None:
            return
        if cur.fd >= 0:
            os.close(cur.fd)
            cur.fd = -1
        self._close_basis(cur)
        if cur.temp is not None:
            self._drop_temp(cur.temp)
        cur.temp = None  # skip the rest of this file's chunks

    def moves(self, m: ev.Moves) -> list[str]:
        """Stage the moves; return the new paths that failed (the sender sends them)."""
        failed = []
        for row in m.rows:
            new = row[1] if len(row) > 1 else None
            temp = None
            try:
                old, new, digest, mode, mtime_ns, consume = row
                src = self.resolve(old)
                dst = self.resolve(new)
                if not stat.S_ISREG(os.lstat(src).st_mode):
                    raise PathRefused(f"{old!r}: move source is not a regular file")
                temp = os.path.join(os.path.dirname(dst), _temp_name())
                if consume:
                    try:
                        os.link(src, temp, follow_symlinks=False)
                    except OSError:
                        shutil.copyfile(src, temp, follow_symlinks=False)
                else:
                    shutil.copyfile(src, temp, follow_symlinks=False)
                self.temps.add(temp)
                if hash_file(temp) != digest:
                    raise PathRefused(f"{new!r}: moved content does not match")
                os.chmod(temp, mode & 0o7777)
                os.utime(temp, ns=(mtime_ns, mtime_ns))
                self._stage(temp, dst, new)
                self.counts["moved"] += 1
            except (PathRefused, OSError, ValueError, TypeError) as e:
                if temp is not None:
                    self._drop_temp(temp)
                failed.append(new if isinstance(new, str) else repr(new))
                log.info("move to %r failed (%s); the sender will send it", new, e)
        return failed

    def signature(self, path: str, digest: str = "") -> tuple[bool, bytes]:
        """(True, b"") when the basis file at ``path`` already has content ``digest``, else
        (False, its encoded signature), or (False, b"") when it has none."""
        try:
            full = self.resolve(path)
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        except (PathRefused, OSError):
            return False, b""
        try:
            size = os.fstat(fd).st_size
            if digest:
                h = xxhash.xxh3_128()
                while piece := os.read(fd, _READ_SIZE * 4):
                    h.update(piece)
                if h.hexdigest() == digest:
                    return True, b""
                os.lseek(fd, 0, os.SEEK_SET)

            def chunks() -> Iterator[bytes]:
                while piece := os.read(fd, _READ_SIZE * 4):
                    yield piece

            sig = dl.signature(chunks(), length=size)
        except (OSError, ValueError):
            return False, b""
        finally:
            os.close(fd)
        self.sigs[path] = sig
        return False, dl.encode_signature(sig)

    def hashes(self, paths: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        out = []
        for p in paths:
            try:
                full = self.resolve(p)
                if stat.S_ISREG(os.lstat(full).st_mode):
                    out.append((p, hash_file(full)))
            except (PathRefused, OSError):
                pass
        return tuple(out)

    # --- the end -----------------------------------------------------------------------------

    def finish(self) -> list[ev.PathError]:
        """Publish the staged files, apply metadata, delete extraneous paths, then set the
        directories' metadata (deepest first, as sent)."""
        errors = []
        for temp, final, rel in self.staged:
            try:
                self._install(temp, final)
            except OSError as exc:
                self._drop_temp(temp)
                errors.append(self.refuse(rel, exc))
        self.staged.clear()
        dir_meta = [m for m in self.meta if m.kind == "d"]
        for m in self.meta:
            if m.kind != "d":
                err = self._apply_meta(m)
                if err is not None:
                    errors.append(err)
        for path in self.deletes:
            try:
                full = self.resolve(path)
                try:
                    st = os.lstat(full)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(full)
                    self._forget_dirs()
                else:
                    os.unlink(full)
                self.counts["deleted"] += 1
            except (PathRefused, OSError) as exc:
                errors.append(self.refuse(path, exc))
        for m in dir_meta:
            err = self._apply_meta(m)
            if err is not None:
                errors.append(err)
        return errors

    def _apply_meta(self, e: Entry) -> ev.PathError | None:
        try:
            full = self.resolve(e.path, allow_root=e.kind == "d")
            st = os.lstat(full)
            kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
            if kind != e.kind:
                raise PathRefused(f"{e.path!r}: is not of the expected kind")
            if kind != "l" and stat.S_IMODE(st.st_mode) != e.mode & 0o7777:
                os.chmod(full, e.mode & 0o7777)
            os.utime(full, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
            self.counts["meta"] += 1
            return None
        except (PathRefused, OSError, ValueError, TypeError) as exc:
            return self.refuse(e.path, exc)

    def abort(self) -> None:
        """The push broke off: remove every temp file, publish nothing."""
        self._abort_current()
        for temp in list(self.temps):
            self._drop_temp(temp)
        self.staged.clear()


class SyncReceiver:
    """A receiver serving ``root`` on ``host:port`` (port 0 picks a free port).

    ``key`` is the shared secret senders must prove they know; ``tls`` an optional server
    :class:`ssl.SSLContext` (see :func:`server_tls_context`). Pushes to one receiver are
    applied one at a time. A connection that sends nothing for ``idle_timeout`` seconds while
    authenticating or in the middle of a push is dropped (its push publishes nothing), so a
    hung sender cannot hold the receiver; between pushes a connection may idle for ever."""

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
    """Dispatches one connection's events to the current :class:`_Push`."""

    def __init__(self, rx: SyncReceiver, conn: SyncConnection, writer: asyncio.StreamWriter):
        self.rx = rx
        self.conn = conn
        self.writer = writer
        self.push: _Push | None = None
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
            if push.cur is not None:
                raise ProtocolError("End inside a file")
            self.send_errors(push.finish())
            self.send(ev.Done(dict(push.counts), tuple(push.failed), tuple(push.redo)))
            self.rx.pushes += 1
            if self.rx._on_push is not None:
                self.rx._on_push(dict(push.counts), list(push.failed))
            self.push = None
            self._unlock()
        await self.writer.drain()

    async def begin(self, m: ev.Begin) -> None:
        await self.rx._lock.acquire()
        self.locked = True
        push = _Push(self.rx.root, m)
        self.push = push
        if m.want_manifest:
            found = await asyncio.to_thread(
                scan, self.rx.root, Excluder(m.excludes), checksum=m.checksum
            )
            for rel in found.temps:  # left by a push whose receiver was killed
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.rx.root, rel))
                    push.counts["temps_cleaned"] += 1
            self.send(ev.Manifest(True, tuple(found.entries.values())))
        else:
            self.send(ev.Manifest(False, ()))
        await self.writer.drain()

    async def signatures(self, push: _Push, req: ev.SigRequest) -> None:
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
