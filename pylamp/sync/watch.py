"""Push on change: watchdog events, debounced, plus a periodic full scan (the article's cron).

:class:`SyncWatcher` pushes the whole tree at start, then pushes only the paths that changed,
shortly after a burst of changes settles (``debounce``), and every ``interval`` seconds a full
scan that catches whatever events missed (it also re-reads the receivers' file lists). It keeps
one :class:`~.sender.SyncSession` per receiver open between pushes, so an event-driven push
neither reconnects nor re-reads the receiver's tree. A kept connection found dead (the receiver
restarted) is replaced within the round; a receiver that is down gets an error in the round's
statistics and is fully pushed once it is back, while the others carry on.

The debouncing rules are the pure :class:`Debouncer` (time passed in); the watcher is the thin
asyncio shell around it and watchdog's observer thread. :meth:`SyncWatcher.sync_once` is the
public one-shot the loop calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .manifest import Excluder
from .sender import Address, SyncSession
from .stats import SyncStats

__all__ = ["MAX_SCOPE", "Debouncer", "PushRound", "SyncWatcher", "format_round"]

log = logging.getLogger("pylamp.sync.watch")

_EVENT_TYPES = frozenset({"created", "modified", "deleted", "moved", "closed"})
MAX_SCOPE = 100
"""More changed paths than this are pushed as a full push (one scan of the tree), which costs
less than a push scoped to very many paths."""


@dataclass
class Debouncer:
    """Coalesces bursts of changed paths into one push.

    Pending paths become due ``debounce`` seconds after the last change, or at the latest
    ``max_wait`` seconds after the first one, so a file that changes without pause is still
    pushed regularly. A path whose ancestor is also pending is dropped (pushing a directory
    brings its subtree). Times are plain numbers passed in by the caller.
    """

    debounce: float = 0.2
    max_wait: float = 2.0
    _paths: set[str] = field(default_factory=set)
    _first: float = 0.0
    _last: float = 0.0

    def __post_init__(self) -> None:
        if self.debounce < 0 or self.max_wait < 0:
            raise ValueError("debounce and max_wait must not be negative")

    def add(self, path: str, now: float) -> None:
        """Record a change of ``path`` (relative, ``"."`` for the root) at time ``now``."""
        if not self._paths:
            self._first = now
        self._paths.add(path)
        self._last = now

    @property
    def pending(self) -> int:
        """Number of paths waiting."""
        return len(self._paths)

    def deadline(self) -> float | None:
        """When the pending paths are due, or None when nothing is pending."""
        if not self._paths:
            return None
        return min(self._last + self.debounce, self._first + max(self.max_wait, self.debounce))

    def take(self, now: float) -> list[str]:
        """The due paths (sorted, ancestors only), emptying the set; ``[]`` if not yet due."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        paths = _outermost(self._paths)
        self._paths.clear()
        return paths

    def clear(self) -> None:
        """Forget pending paths (a full push covers them)."""
        self._paths.clear()


def _outermost(paths: Iterable[str]) -> list[str]:
    """Sorted paths, without those inside another listed path."""
    listed = set(paths)
    if "." in listed:
        return ["."]
    out: list[str] = []
    for p in sorted(listed):
        parts = p.split("/")
        if not any("/".join(parts[:i]) in listed for i in range(1, len(parts))):
            out.append(p)
    return out


@dataclass(frozen=True)
class PushRound:
    """One push to every receiver: the paths pushed (None for a full push), when it started
    (monotonic seconds), how long it took, and each receiver's statistics."""

    paths: tuple[str, ...] | None
    started: float
    elapsed: float
    stats: tuple[SyncStats, ...]

    @property
    def ok(self) -> bool:
        """True when every receiver completed without error."""
        return all(s.ok for s in self.stats)


def format_round(rnd: PushRound) -> str:
    """One line about a push round, for the ``watch`` command's log."""
    what = "everything" if rnd.paths is None else f"{len(rnd.paths)} path(s)"
    sent = sum(s.files_sent for s in rnd.stats)
    deleted = sum(s.files_deleted for s in rnd.stats)
    moved = sum(s.files_moved for s in rnd.stats)
    wire = sum(s.wire_bytes for s in rnd.stats)
    line = (
        f"pushed {what} to {len(rnd.stats)} receiver(s) in {rnd.elapsed * 1000:.0f} ms: "
        f"{sent} sent, {moved} moved, {deleted} deleted, {wire:,} bytes on the wire"
    )
    for s in rnd.stats:
        if s.error is not None:
            line += f"; {s.address}: ERROR {s.error}"
        for path, message in s.errors:
            line += f"; {s.address}: {path}: {message}"
    return line


class _Target:
    """One receiver: its open session, if any, and whether it needs a full push."""

    def __init__(self, address: str | Address) -> None:
        self.address = address
        self.session: SyncSession | None = None
        self.needs_full = True


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's thread: hands (relative path, is_dir) to the event loop."""

    def __init__(
        self,
        root: str,
        loop: asyncio.AbstractEventLoop,
        sink: Callable[[str, bool], None],
    ) -> None:
        self._root = root
        self._loop = loop
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _EVENT_TYPES:
            return
        if event.is_directory and event.event_type in ("modified", "closed"):
            return  # a directory's own change comes with its children's events
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = os.fsdecode(raw)
            rel = os.path.relpath(path, self._root)
            if rel == ".." or rel.startswith("../"):
                continue
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(
                    self._sink, rel.replace(os.sep, "/"), event.is_directory
                )


class SyncWatcher:
    """Keep receivers in sync with ``src``: a full push at start, pushes on change, and a full
    scan every ``interval`` seconds. Use as ``async with SyncWatcher(src, addrs, key=K):``.

    ``debounce`` is how long a burst of changes must be quiet before it is pushed (0 pushes at
    once); ``max_wait`` bounds the delay under continuous change. ``on_push`` is called with
    every :class:`PushRound`. The push options are :func:`~.sender.push`'s. ``watch=False``
    starts no observer (pushes only on :meth:`sync_once`, :meth:`notify` and the interval).
    """

    def __init__(
        self,
        src: str | os.PathLike[str],
        addresses: Sequence[str | Address],
        *,
        key: bytes,
        debounce: float = 0.2,
        interval: float = 60.0,
        max_wait: float = 2.0,
        excludes: Iterable[str] = (),
        checksum: bool = False,
        compress: bool = True,
        delete: bool = True,
        delay_updates: bool = True,
        whole_file: bool = False,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        on_push: Callable[[PushRound], None] | None = None,
        watch: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not addresses:
            raise ValueError("a watcher needs at least one receiver")
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.src = os.path.realpath(os.fspath(src))
        self._targets = [_Target(a) for a in addresses]
        self._key = key
        self._debouncer = Debouncer(debounce, max_wait)
        self.interval = interval
        self._excludes = Excluder(excludes)
        self._checksum = checksum
        self._delete = delete
        self._delay_updates = delay_updates
        self._whole_file = whole_file
        self._tls = tls
        self._compress = compress
        self._timeout = timeout
        self._on_push = on_push
        self._watch = watch
        self._clock = clock
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._observer: BaseObserver | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_full = math.inf
        self.rounds = 0
        self.last_round: PushRound | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching, push everything once, then run the loop in the background."""
        if not os.path.isdir(self.src):
            raise NotADirectoryError(f"{self.src} is not a directory")
        if self._watch:
            loop = asyncio.get_running_loop()
            observer = Observer()
            observer.schedule(_Handler(self.src, loop, self.notify), self.src, recursive=True)
            await asyncio.to_thread(observer.start)  # watches are in place when it returns
            self._observer = observer
        await self.sync_once()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop watching and close the connections (a push in progress is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await asyncio.to_thread(observer.join)
        for t in self._targets:
            await self._drop(t)

    async def __aenter__(self) -> SyncWatcher:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- events ------------------------------------------------------------------------------

    def notify(self, path: str, is_dir: bool = False) -> None:
        """Record that ``path`` (relative to ``src``) changed; the loop pushes it when due.
        Excluded paths (or paths inside an excluded directory) are ignored."""
        if self._is_excluded(path, is_dir):
            return
        self._debouncer.add(path, self._clock())
        self._wake.set()

    def _is_excluded(self, path: str, is_dir: bool) -> bool:
        if not self._excludes or path == ".":
            return False
        parts = path.split("/")
        for i in range(1, len(parts)):
            if self._excludes.excluded("/".join(parts[:i]), True):
                return True
        return self._excludes.excluded(path, is_dir)

    @property
    def pending(self) -> int:
        """Changed paths not yet pushed."""
        return self._debouncer.pending

    async def _run(self) -> None:
        while True:
            now = self._clock()
            due = self._debouncer.deadline()
            wake_at = min(self._next_full, due if due is not None else math.inf)
            self._wake.clear()
            if wake_at > now:
                with contextlib.suppress(TimeoutError):
                    timeout = None if wake_at == math.inf else wake_at - now
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            try:
                if now >= self._next_full:
                    self._debouncer.clear()
                    await self.sync_once(refresh=True)
                else:
                    paths = self._debouncer.take(now)
                    if paths:
                        await self.sync_once(paths)
            except Exception:  # e.g. from on_push: log it, keep watching
                log.exception("push round failed")

    # --- pushing -----------------------------------------------------------------------------

    async def sync_once(
        self, paths: Iterable[str] | None = None, *, refresh: bool = False
    ) -> PushRound:
        """Push ``paths`` (relative to ``src``), or everything when None, to every receiver in
        parallel, and return the round (more than :data:`MAX_SCOPE` paths: everything). A
        receiver that fails gets its ``error`` set and is pushed in full next time; the others
        are not affected."""
        scope = None if paths is None else tuple(paths)
        if scope is not None and len(scope) > MAX_SCOPE:
            scope = None
        async with self._lock:
            started = self._clock()
            if scope is None:
                self._next_full = started + self.interval
            stats = await asyncio.gather(
                *(self._push_one(t, scope, refresh) for t in self._targets)
            )
            rnd = PushRound(scope, started, self._clock() - started, tuple(stats))
        self.rounds += 1
        self.last_round = rnd
        if self._on_push is not None:
            self._on_push(rnd)
        return rnd

    async def _push_one(
        self, t: _Target, scope: tuple[str, ...] | None, refresh: bool
    ) -> SyncStats:
        """Push to one receiver. A kept connection that turns out dead (the receiver
        restarted) is replaced once, in the same round, by a fresh one and a full push."""
        for attempt in (1, 2):
            reused = t.session is not None
            try:
                return await self._push_session(t, scope, refresh)
            except Exception as e:  # one receiver's failure must not stop the others
                await self._drop(t)
                if reused and attempt == 1:
                    log.info("connection to %s lost (%s), reconnecting", t.address, e)
                    continue
                log.warning("push to %s failed: %s", t.address, e)
                return SyncStats(address=str(t.address), error=str(e) or type(e).__name__)
        raise AssertionError("unreachable")

    async def _push_session(
        self, t: _Target, scope: tuple[str, ...] | None, refresh: bool
    ) -> SyncStats:
        if t.session is None:
            session = SyncSession(
                t.address,
                self._key,
                tls=self._tls,
                compress=self._compress,
                timeout=self._timeout,
            )
            await session.connect()
            t.session, t.needs_full = session, True
        full = scope is None or t.needs_full
        st = await t.session.push(
            self.src,
            paths=None if full else scope,
            excludes=self._excludes.patterns,
            refresh=refresh,
            checksum=self._checksum,
            delete=self._delete,
            delay_updates=self._delay_updates,
            whole_file=self._whole_file,
        )
        t.needs_full = False
        return st

    async def _drop(self, t: _Target) -> None:
        session, t.session, t.needs_full = t.session, None, True
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
