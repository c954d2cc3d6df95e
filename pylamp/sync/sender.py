"""The sending side: push a tree to one or more receivers.

``await push(src, ["web2:8730", "web3:8730"], key=KEY)`` scans ``src`` once and pushes it to
every receiver in parallel over one TCP connection each, returning a
:class:`~.stats.SyncStats` per receiver; a receiver that is down or refuses the key gets its
``error`` set while the others complete.

:class:`SyncSession` is one authenticated connection that can carry many pushes and keeps the
receiver's file list between them, so a watcher pushing a few changed paths neither reconnects
nor re-reads the receiver's tree::

    async with SyncSession(("127.0.0.1", 8730), key) as s:
        await s.push(src)                       # full push, fetches the receiver's list
        await s.push(src, paths=["index.html"]) # only these paths, cached list

A push is pipelined: the receiver's file list arrives in one message, the sender asks for all
the block signatures it needs in one message and streams new files while they are computed,
then streams each delta as its signature arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import socket
import ssl
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import xxhash

from . import delta as dl
from . import events as ev
from .manifest import (
    DIGEST,
    FILE,
    KIND,
    SIZE,
    Entry,
    Excluder,
    Manifest,
    Plan,
    compare,
    hash_file,
    move_candidates,
    resolve_moves,
    scan,
    scan_paths,
    sorted_rows,
    update_manifest,
)
from .protocol import (
    MANIFEST_ROWS,
    NEED_DATA,
    ProtocolError,
    Role,
    SyncConnection,
    decode_manifest,
    encode_manifest,
)
from .stats import SyncStats

__all__ = [
    "Address",
    "ProgressCallback",
    "PushOptions",
    "SyncError",
    "SyncSession",
    "client_tls_context",
    "parse_address",
    "push",
]

Address = tuple[str, int]
ProgressCallback = Callable[[str, str, int], None]
"""Called with (receiver address, path, bytes) as each file, move or deletion is sent."""

_READ_SIZE = 1 << 18
_CHUNK = 1 << 18  # literal bytes per FileData message, and the File/FileBegin threshold
_READ_CHUNK = 1 << 18  # new-file bytes per delta read: 1 MiB fell out of L2 (B: 0.6 -> 0.4 s)
_THREAD_MIN = 1 << 20  # deltas of files at least this big run in a worker thread
_INLINE_PATHS = 16  # a push of at most this many paths lists them without a worker thread
_INLINE_BYTES = 1 << 20  # files hashed without a worker thread, in total


@dataclass(frozen=True, slots=True)
class PushOptions:
    """What a push does: rsync's ``--checksum``, ``--exclude``, ``--delete``,
    ``--delay-updates``, ``--whole-file`` and ``--dry-run`` (plan and report, change nothing;
    the counts are what would be done, moves counted as files to send)."""

    checksum: bool = False
    excludes: Excluder = field(default_factory=Excluder)
    delete: bool = True
    delay_updates: bool = True
    whole_file: bool = False
    dry_run: bool = False


class SyncError(Exception):
    """A push to one receiver failed as a whole (the receiver reported an error)."""


def parse_address(address: str | Address) -> Address:
    """``"host:port"``, ``"[v6]:port"`` or a (host, port) tuple -> (host, port)."""
    if isinstance(address, tuple):
        return address[0], int(address[1])
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def client_tls_context(
    ca: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """TLS for a sender: verify the receiver against ``ca`` (the system store when None);
    ``cert``/``key`` present a client certificate to receivers that require one."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def _fmt(addr: Address) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Inbox:
    """Incoming events sorted by type, for the push coroutine to await in any order."""

    def __init__(self) -> None:
        self.queues: defaultdict[type, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.errors: list[tuple[str, str]] = []
        self.failure: BaseException | None = None

    def put(self, event: ev.Event) -> None:
        if isinstance(event, ev.PathError):
            self.errors.append((event.path, event.message))
        else:
            self.queues[type(event)].put_nowait(event)

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        for q in self.queues.values():
            q.put_nowait(None)

    async def get(self, kind: type) -> Any:
        q = self.queues[kind]
        if q.empty() and self.failure is not None:
            raise self.failure
        item = await q.get()
        if item is None:
            assert self.failure is not None
            raise self.failure
        return item


class SyncSession:
    """An authenticated connection to one receiver, reusable for many pushes.

    The receiver's file list is fetched by the first push and then kept up to date by each
    push, so later pushes skip the receiver's scan (``refresh=True`` fetches it again)."""

    def __init__(
        self,
        address: str | Address,
        key: bytes,
        *,
        tls: ssl.SSLContext | None = None,
        compress: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.address = parse_address(address)
        self.name = _fmt(self.address)
        self._key = key
        self._tls = tls
        self._timeout = timeout
        self._compress = compress
        self._conn = SyncConnection(Role.CLIENT, key, secrets.token_bytes(32), compress=compress)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.manifest: Manifest | None = None
        self._inbox = _Inbox()
        self._reader_task: asyncio.Task[None] | None = None
        self._unsent: set[str] = set()  # source files that could not be read this push

    # --- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and authenticate (both ways) within ``timeout`` seconds. A closed session
        may connect again (with a fresh nonce); the cached receiver list is dropped."""
        host, port = self.address
        if self._writer is not None:
            raise SyncError(f"{self.name}: already connected")
        self._conn = SyncConnection(
            Role.CLIENT, self._key, secrets.token_bytes(32), compress=self._compress
        )
        self.manifest = None
        try:
            async with asyncio.timeout(self._timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=self._tls,
                    server_hostname=host if self._tls else None,
                    limit=_READ_SIZE,
                )
                sock = self._writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                hello = await self._next()
                if not isinstance(hello, ev.Hello):
                    raise ProtocolError(f"expected Hello, got {type(hello).__name__}")
                self._send(self._conn.auth())
                ok = await self._next()
                if not isinstance(ok, ev.AuthOk):
                    raise ProtocolError(f"expected AuthOk, got {type(ok).__name__}")
        except TimeoutError:
            await self.close()
            raise TimeoutError(f"{self.name}: no answer within {self._timeout} s") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            w, self._writer = self._writer, None
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()

    async def __aenter__(self) -> SyncSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def bytes_sent(self) -> int:
        return self._conn.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self._conn.bytes_received

    def _send(self, event: ev.Event) -> None:
        assert self._writer is not None
        self._writer.write(self._conn.send(event))

    async def _drain(self) -> None:
        assert self._writer is not None
        if self._inbox.failure is not None:
            raise self._inbox.failure
        await self._writer.drain()

    async def _next(self) -> ev.Event:
        """Read until one event is complete (used before the push's reader task runs)."""
        assert self._reader is not None
        while True:
            event = self._conn.next_event()
            if event is not NEED_DATA:
                if isinstance(event, ev.Error):
                    raise SyncError(f"{self.name}: {event.message}")
                return event
            self._conn.receive_data(await self._reader.read(_READ_SIZE))

    async def _read_loop(self) -> None:
        inbox = self._inbox
        try:
            while True:
                event = await self._next()
                inbox.put(event)
                if isinstance(event, ev.Done):
                    return
        except asyncio.CancelledError:
            raise
        except ProtocolError as e:
            inbox.fail(SyncError(f"{self.name}: {e}"))
        except Exception as e:
            inbox.fail(e)

    # --- pushing -----------------------------------------------------------------------------

    async def push(
        self,
        src: str | os.PathLike[str],
        *,
        paths: Iterable[str] | None = None,
        checksum: bool = False,
        excludes: Iterable[str] = (),
        delete: bool = True,
        delay_updates: bool = True,
        whole_file: bool = False,
        dry_run: bool = False,
        refresh: bool = False,
        progress: ProgressCallback | None = None,
    ) -> SyncStats:
        """Push ``src`` (or only ``paths`` under it, relative; a directory brings its subtree,
        a vanished path is deleted) and return the statistics. Path errors at the receiver
        land in ``stats.errors``; a failure of the whole push raises."""
        excl = Excluder(excludes)
        src_s = os.fspath(src)
        scope: list[str] | None = None
        tree: Manifest | asyncio.Future[Manifest] | _SharedScan
        if paths is None or self.manifest is None:
            tree = _SharedScan(src_s, excl, checksum)
        else:
            scope = [p.strip("/") or "." for p in paths]
            if len(scope) <= _INLINE_PATHS and not checksum:
                # A few paths (a watcher's event): a thread hop would cost more than the lstats.
                tree = scan_paths(src_s, scope, excl)
            else:
                tree = asyncio.ensure_future(
                    asyncio.to_thread(scan_paths, src_s, scope, excl, checksum=checksum)
                )
        opts = PushOptions(checksum, excl, delete, delay_updates, whole_file, dry_run)
        try:
            return await self.push_tree(
                src_s, tree, opts, scope=scope, refresh=refresh, progress=progress
            )
        finally:
            task = tree.task if isinstance(tree, _SharedScan) else tree
            if isinstance(task, asyncio.Future) and not task.done():
                task.cancel()

    async def push_tree(
        self,
        src: str,
        tree: Manifest | Awaitable[Manifest] | Callable[[], Awaitable[Manifest]],
        opts: PushOptions,
        *,
        scope: Sequence[str] | None = None,
        refresh: bool = False,
        progress: ProgressCallback | None = None,
        stats: SyncStats | None = None,
    ) -> SyncStats:
        """Push the scanned source ``tree`` (see :meth:`push`). It may still be scanning
        (an awaitable), or be a function that starts the scan, called once the receiver has
        been asked for its file list: both sides scan at the same time."""
        if self._writer is None:
            raise SyncError(f"{self.name}: not connected")
        st = stats if stats is not None else SyncStats(address=self.name)
        t0 = time.perf_counter()
        sent0, recv0 = self.bytes_sent, self.bytes_received
        self._unsent = set()
        checksum = opts.checksum
        want = refresh or self.manifest is None or (scope is None and checksum)
        try:
            inbox = self._start_round()
            self._send(ev.Begin(want, checksum, opts.delay_updates, opts.excludes.patterns))
            if callable(tree):
                tree = tree()
            if not isinstance(tree, dict):
                tree = await tree
            if want:
                # Our tree encoded as the receiver encodes its own (sorted rows): equal bytes
                # mean nothing changed, and its rows need not be built. Made while its list is
                # on the way; decoding it instead, then the garbage collector's first look at
                # the 2,000 new rows, cost ~1.5 ms of a 30 ms no-change push.
                ours = None
                if not checksum and len(tree) <= MANIFEST_ROWS:
                    ours = encode_manifest(sorted_rows(tree))
                self.manifest = {}
                while True:
                    m: ev.Manifest = await inbox.get(ev.Manifest)
                    if not (self.manifest or m.more) and m.rows == ours:
                        self.manifest = dict(tree)
                        break
                    self.manifest.update(decode_manifest(m.rows))
                    if not m.more:
                        break
                scope = None
            # else: the cached list is used and the receiver's empty Manifest reply is not
            # waited for (one round trip less per push of a watcher's few paths).
            assert self.manifest is not None
            plan = compare(tree, self.manifest, checksum=checksum, delete=opts.delete, scope=scope)
            if opts.whole_file:
                plan.basis.clear()  # no signatures: changed files go whole (rsync -W)
            st.files_scanned += len(tree)
            st.total_size += sum([r[SIZE] for r in tree.values() if r[KIND] == FILE])
            st.unchanged += plan.unchanged
            if opts.dry_run:
                self._tally(plan, st, progress)
                self._send(ev.End())
            else:
                await self._run_plan(src, tree, plan, st, progress)
            done: ev.Done = await inbox.get(ev.Done)
            await self._finish_round()
            counts = Counter(done.counts)
            failed = set(done.failed)
            errors = list(inbox.errors)
            if done.redo:
                # Deltas that did not rebuild at the receiver (its file changed meanwhile):
                # a second round sends them whole.
                inbox = self._start_round()
                self._send(ev.Begin(False, checksum, opts.delay_updates, opts.excludes.patterns))
                for p in done.redo:
                    if p in tree and tree[p][KIND] == FILE:
                        await self._send_literal(src, Entry._make(tree[p]), st, progress)
                self._send(ev.End())
                again: ev.Done = await inbox.get(ev.Done)
                await self._finish_round()
                counts.update(again.counts)
                failed |= set(again.failed)
                errors += inbox.errors
        except BaseException:
            if self._reader_task is not None:
                self._reader_task.cancel()
            self.manifest = None
            await self.close()
            raise
        st.files_deleted += counts["deleted"]
        st.files_moved += counts["moved"]
        st.dirs_created += counts["dirs"]
        st.symlinks += counts["symlinks"]
        st.meta_updates += counts["meta"]
        st.errors.extend(errors)
        if not opts.dry_run:
            # Without --delete the receiver keeps its extra files: so must its cached list.
            kept = {} if opts.delete else {p: e for p, e in self.manifest.items() if p not in tree}
            update_manifest(self.manifest, tree, scope=scope, failed=failed | self._unsent)
            self.manifest.update(kept)
        st.bytes_sent += self.bytes_sent - sent0
        st.bytes_received += self.bytes_received - recv0
        st.elapsed += time.perf_counter() - t0
        return st

    def _tally(self, plan: Plan, st: SyncStats, progress: ProgressCallback | None) -> None:
        """Count what ``plan`` would do (``--dry-run``)."""
        st.files_sent += len(plan.send)
        st.literal_bytes += sum(e.size for e in plan.send)
        st.files_deleted += len(plan.deletes)
        st.dirs_created += len(plan.mkdirs)
        st.symlinks += len(plan.symlinks)
        st.meta_updates += len(plan.meta) + len(plan.dir_meta)
        if progress is not None:
            for e in [*plan.mkdirs, *plan.send, *plan.symlinks]:
                progress(self.name, e.path, e.size)
            for p in plan.deletes:
                progress(self.name, f"deleting {p}", 0)

    def _start_round(self) -> _Inbox:
        self._inbox = _Inbox()
        self._reader_task = asyncio.create_task(self._read_loop())
        return self._inbox

    async def _finish_round(self) -> None:
        task, self._reader_task = self._reader_task, None
        if task is not None:
            await task

    async def _run_plan(
        self,
        src: str,
        tree: Manifest,
        plan: Plan,
        st: SyncStats,
        progress: ProgressCallback | None,
    ) -> None:
        inbox = self._inbox
        cand_src, cand_dst = move_candidates(plan)
        need_hash = [p for p in cand_dst if not self.manifest or not self.manifest[p][DIGEST]]
        for part in _batches(need_hash):
            self._send(ev.HashRequest(part))
        basis = [e for e in plan.send if e.path in plan.basis]
        if basis:
            # A basis of the same size may differ only in mtime: send our digest so the
            # receiver can answer "same" instead of a signature.
            assert self.manifest is not None
            same_size = [e for e in basis if self.manifest[e.path][SIZE] == e.size]
            if sum(e.size for e in same_size) <= _INLINE_BYTES:
                digests = _digests(src, same_size)
            else:
                digests = await asyncio.to_thread(_digests, src, same_size)
            for chunk in _batches(basis):
                paths = tuple(e.path for e in chunk)
                self._send(ev.SigRequest(paths, tuple(digests.get(p, "") for p in paths)))
        for rows in _batches(plan.mkdirs):
            self._send(ev.Mkdirs(rows))
        for rows in _batches(plan.symlinks):
            self._send(ev.Symlinks(rows))
        held = set(cand_src)
        for e in plan.send:
            if e.path not in plan.basis and e.path not in held:
                await self._send_literal(src, e, st, progress)
        if cand_src:
            by_path = {e.path: e for e in plan.send}
            src_dg = await asyncio.to_thread(_digests, src, [by_path[p] for p in cand_src])
            dst_dg: dict[str, str] = {}
            for _ in _batches(need_hash):
                dst_dg.update((await inbox.get(ev.Hashes)).pairs)
            resolve_moves(plan, src_dg, dst_dg)
            failed: list[str] = []
            for moves in _batches(plan.moves):
                self._send(ev.Moves(moves))
                failed += (await inbox.get(ev.MovesDone)).failed
            if plan.moves and progress is not None:
                for mv in plan.moves:
                    progress(self.name, f"{mv.old} => {mv.new}", 0)
            leftover = [e for e in plan.send if e.path in held]
            leftover += [Entry._make(tree[p]) for p in failed if p in tree]
            for e in leftover:
                await self._send_literal(src, e, st, progress)
        touched: list[Entry] = []
        for e in basis:
            sig: ev.Signature = await inbox.get(ev.Signature)
            if sig.path != e.path:
                raise SyncError(f"{self.name}: signature for {sig.path!r}, expected {e.path!r}")
            if sig.same:
                touched.append(e)
            else:
                await self._send_delta(src, e, sig.data, st, progress)
        for rows in _batches(plan.meta + touched + plan.dir_meta):
            self._send(ev.Meta(rows))
        for paths in _batches(plan.deletes):
            self._send(ev.Delete(paths))
        if plan.deletes and progress is not None:
            for p in plan.deletes:
                progress(self.name, f"deleting {p}", 0)
        self._send(ev.End())
        await self._drain()

    async def _send_literal(
        self, src: str, e: Entry, st: SyncStats, progress: ProgressCallback | None
    ) -> None:
        full = os.path.join(src, e.path)
        try:
            f = _open_source(full)
        except OSError as exc:
            st.errors.append((e.path, f"cannot read: {exc.strerror}"))
            self._unsent.add(e.path)
            return
        with f:
            data = f.read(_CHUNK + 1)
            if len(data) <= _CHUNK:
                self._send(
                    ev.File(e.path, e.mode, e.mtime_ns, xxhash.xxh3_128_hexdigest(data), data)
                )
                n = len(data)
            else:
                h = xxhash.xxh3_128()
                self._send(ev.FileBegin(e.path, e.mode, e.mtime_ns, e.size, False))
                n = 0
                while data:
                    h.update(data)
                    n += len(data)
                    self._send(ev.FileData(data))
                    await self._drain()
                    data = f.read(_CHUNK)
                self._send(ev.FileEnd(h.hexdigest()))
        st.files_sent += 1
        st.literal_bytes += n
        if progress is not None:
            progress(self.name, e.path, n)
        await self._drain()

    async def _send_delta(
        self, src: str, e: Entry, sig_data: bytes, st: SyncStats, progress: ProgressCallback | None
    ) -> None:
        if not sig_data:
            await self._send_literal(src, e, st, progress)
            return
        sig = dl.decode_signature(sig_data)
        full = os.path.join(src, e.path)
        try:
            f = _open_source(full)
        except OSError as exc:
            st.errors.append((e.path, f"cannot read: {exc.strerror}"))
            self._unsent.add(e.path)
            return
        h = xxhash.xxh3_128()
        ds = dl.DeltaStats()

        def chunks() -> Iterator[bytes]:
            while piece := f.read(_READ_CHUNK):
                h.update(piece)
                yield piece

        ops = dl.delta(sig, chunks(), stats=ds)

        def batch() -> bytes:
            parts: list[bytes] = []
            size = 0
            for op in ops:
                b = dl.encode_op(op)
                parts.append(b)
                size += len(b)
                if size >= _CHUNK:
                    break
            return b"".join(parts)

        with f:
            self._send(ev.FileBegin(e.path, e.mode, e.mtime_ns, e.size, True))
            threaded = e.size >= _THREAD_MIN
            while True:
                data = await asyncio.to_thread(batch) if threaded else batch()
                if not data:
                    break
                self._send(ev.FileData(data))
                await self._drain()
            self._send(ev.FileEnd(h.hexdigest()))
        st.files_sent += 1
        st.literal_bytes += ds.literal_bytes
        st.matched_bytes += ds.matched_bytes
        if progress is not None:
            progress(self.name, e.path, ds.literal_bytes)
        await self._drain()


async def _scan_entries(src: str, excl: Excluder, checksum: bool) -> Manifest:
    return (await asyncio.to_thread(scan, src, excl, checksum=checksum)).entries


class _SharedScan:
    """The scan of the source, shared by a push's receivers: calling it starts the scan (once)
    and returns its future. A push calls it after sending Begin, when the receiver starts its
    own scan. Started before connecting, the scan thread held the GIL while the connection
    was made and authenticated, which put off Begin, and so the receiver's scan, by 2-4 ms of
    a 35 ms no-change push of 2,000 files."""

    def __init__(self, src: str, excl: Excluder, checksum: bool) -> None:
        self._args = (src, excl, checksum)
        self.task: asyncio.Future[Manifest] | None = None

    def __call__(self) -> asyncio.Future[Manifest]:
        if self.task is None:
            self.task = asyncio.ensure_future(_scan_entries(*self._args))
        return self.task


def _open_source(path: str) -> io.FileIO:
    """Open a source file for reading, refusing a symlink put in its place since the scan (so
    a push never sends what a link points to)."""
    return io.FileIO(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")


_T = TypeVar("_T")


_BATCH = 20_000  # paths or rows per control message


def _batches(items: Sequence[_T]) -> Iterator[tuple[_T, ...]]:
    """``items`` in tuples of at most ``_BATCH``: every message stays far below the frame
    limit whatever the tree's size."""
    size = _BATCH
    for i in range(0, len(items), size):
        yield tuple(items[i : i + size])


def _digests(src: str, entries: Iterable[Entry]) -> dict[str, str]:
    out = {}
    for e in entries:
        if e.digest:
            out[e.path] = e.digest
        else:
            with contextlib.suppress(OSError):
                out[e.path] = hash_file(os.path.join(src, e.path))
    return out


async def push(
    src: str | os.PathLike[str],
    addresses: Sequence[str | Address],
    *,
    key: bytes,
    checksum: bool = False,
    excludes: Iterable[str] = (),
    compress: bool = True,
    delete: bool = True,
    delay_updates: bool = True,
    whole_file: bool = False,
    dry_run: bool = False,
    tls: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    progress: ProgressCallback | None = None,
) -> list[SyncStats]:
    """Push the tree ``src`` to every receiver in ``addresses`` in parallel.

    Returns one :class:`~.stats.SyncStats` per receiver, in order; a receiver that could not
    be reached or failed as a whole has ``error`` set, and does not affect the others."""
    excl = Excluder(excludes)
    opts = PushOptions(checksum, excl, delete, delay_updates, whole_file, dry_run)
    src_s = os.fspath(src)
    tree = _SharedScan(src_s, excl, checksum)

    async def one(address: str | Address) -> SyncStats:
        st = SyncStats(address=str(address))
        t0 = time.perf_counter()
        session: SyncSession | None = None
        try:
            session = SyncSession(address, key, tls=tls, compress=compress, timeout=timeout)
            st.address = session.name
            await session.connect()
        except (OSError, ProtocolError, SyncError, ValueError, ssl.SSLError) as e:
            st.error = _describe(e)
            session = None
        if session is not None:
            try:
                await session.push_tree(src_s, tree, opts, progress=progress, stats=st)
            except (OSError, ProtocolError, SyncError, ValueError, ssl.SSLError) as e:
                st.error = _describe(e)
            finally:
                await session.close()
        st.elapsed = time.perf_counter() - t0
        return st

    try:
        results = list(await asyncio.gather(*(one(a) for a in addresses)))
        await tree()  # a scan failure is everyone's (even with no receiver up): it propagates
        return results
    finally:
        if tree.task is not None:
            if not tree.task.done():
                tree.task.cancel()
            await asyncio.gather(tree.task, return_exceptions=True)


def _describe(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the receiver running?)"
    if isinstance(e, TimeoutError):
        return str(e) or "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
