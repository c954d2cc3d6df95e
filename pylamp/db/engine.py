"""SQLite execution of MySQL statements: databases, sessions, transactions, users, binlog hook.

Layout: one SQLite file per database (``<data_dir>/<db>.sqlite``, WAL mode) plus the system
file ``mysql.sqlite`` (users, grants).  Each :class:`Session` owns one SQLite connection whose
main database is an empty in-memory one; MySQL databases are ATTACHed under their own names as
statements need them, and unqualified table names are qualified with the current database when
a statement is compiled, so ``USE`` is just a session variable and ``SELECT * FROM other.t``
works across databases.

Concurrency: reads run on the session's own connection without any lock (WAL: a long read never
blocks a writer).  Writes take the engine's single writer lock, held from a transaction's first
write to its commit or rollback, because the binlog orders all writes.  Inside an explicit
transaction, reads before the first write see the latest committed data (READ COMMITTED); from
the first write on they see the transaction's own snapshot.

Commit path (the binlog is the redo log): inside the writer lock, right before SQLite's COMMIT,
the transaction's determinised statements go to ``binlog.append_transaction`` (appended and
fsynced), and the returned end position is written into ``sqlite_sequence`` of every database the
transaction touched, in the same SQLite transaction; should SQLite's COMMIT still fail, the
append is undone (``binlog.undo``) so that the binlog never holds a transaction the tables do
not.  WAL checkpoints run in a background thread (:meth:`Engine.note_commit`) instead of inline
in a committing writer.  :meth:`Engine.recover` re-applies
complete transactions past each database's stored position (:mod:`pylamp.db.recovery`).
Clients, recovery and a replica (:func:`apply_statement`) all run statements through the same
``Session.execute`` path, so a logged statement is applied exactly as it first ran.

Statement cache: DML is compiled once per *shape* (``sql.strip_literals``: literals replaced by
placeholders) and current database; the SQLite text, its parameters, the tables it reads and
writes (for privilege checks) and its result column types are cached in the engine and shared
by sessions; any DDL clears the cache.

Layout: this module holds :class:`Engine` (files, catalog, caches, checkpoints);
:class:`Session` is in :mod:`pylamp.db.session` and replay (:meth:`Engine.recover`,
:func:`apply_statement`) in :mod:`pylamp.db.recovery` (both re-exported here); the session
runs DML and transactions and hands the other statements to
:mod:`~pylamp.db.compiler`, :mod:`~pylamp.db.ddl_exec`, :mod:`~pylamp.db.show`,
:mod:`~pylamp.db.variables` and :mod:`~pylamp.db.account_statements`.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pylamp.db import recovery
from pylamp.db.accounts import ALL_PRIVILEGES, Account, Accounts, native_password_hash
from pylamp.db.catalog import TableSpec
from pylamp.db.compiler import Compiled, ShapeInfo
from pylamp.db.dbfiles import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    RESERVED,
    read_position,
    write_position,
)
from pylamp.db.recovery import apply_statement
from pylamp.db.results import Ok, ResultSet, SqlError
from pylamp.db.session import Session
from pylamp.db.sql import AdminCommand
from pylamp.db.variables import DEFAULT_VARIABLES

__all__ = [
    "AdminHandler",
    "BinlogWriter",
    "Engine",
    "Session",
    "apply_statement",
]

log = logging.getLogger(__name__)

_CACHE_LIMIT = 20000
_CHECKPOINT_EVERY = 256  # commits to a database between background WAL checkpoints
_CHECKPOINT_IDLE_S = 1.0  # ... or this long after the last one
_CHECKPOINT_LOCK_WAIT_S = 0.05
_WAL_RESTART_FRAMES = 4096  # pages: 16 MiB


class BinlogWriter(Protocol):
    """What the engine needs from the binary log (pylamp.db.binlog.Binlog provides it)."""

    def append_transaction(
        self,
        db: str,
        statements: Sequence[Any],
        timestamp: float,
        *,
        ddl: bool = False,
        thread_id: int = 0,
        rotate: bool = True,
    ) -> tuple[str, int]: ...

    def undo(self, end: tuple[str, int]) -> None: ...

    def rotate_if_full(self) -> None: ...

    def position(self) -> tuple[str, int]: ...


class AdminHandler(Protocol):
    """Runs binlog/replication admin statements (SHOW MASTER STATUS, FLUSH LOGS, ...)."""

    def __call__(self, command: AdminCommand) -> ResultSet | Ok: ...


# ---------------------------------------------------------------------------------------------
# The engine.


class Engine:
    """All databases of one server: files, catalog, users, the writer lock and the binlog hook.

    Thread-safe: sessions run in different threads.  ``binlog`` (a :class:`BinlogWriter`) is
    called inside the writer lock for every committed write transaction; ``admin`` handles
    binlog and replication statements; ``clock`` is the time source for NOW() and friends.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        root_password: str | None = None,
        read_only: bool = False,
        binlog: BinlogWriter | None = None,
        clock: Callable[[], float] = time.time,
        admin: AdminHandler | None = None,
        server_id: int = 1,
        variables: dict[str, Any] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if page_size not in PAGE_SIZES:
            raise ValueError(f"page_size must be a power of two from 512 to 65536, not {page_size}")
        self.page_size = page_size
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        self.binlog = binlog
        self.admin = admin
        self.clock = clock
        self.writer_lock = threading.Lock()
        self.variables: dict[str, Any] = dict(DEFAULT_VARIABLES)
        self.variables["server_id"] = server_id
        self.variables["datadir"] = str(self.data_dir) + "/"
        self.variables["log_bin"] = "ON" if binlog is not None else "OFF"
        self.variables["page_size"] = page_size
        if variables:
            self.variables.update(variables)
        self._rand = random.Random()
        self._state_lock = threading.Lock()
        self._epochs: dict[str, int] = {}
        self._known_dbs: set[str] = set(self.databases())
        self._catalog: dict[tuple[str, str], TableSpec | None] = {}
        self._shapes: dict[tuple[str | None, str], ShapeInfo] = {}
        self._compiled: dict[tuple[Any, ...], Compiled] = {}
        self._next_conn_id = 0
        self.files_lock = threading.Lock()
        """Held while a database file is opened by the checkpointer or deleted by DROP."""
        self._ckpt = threading.Condition()
        self._ckpt_dirty: dict[str, int] = {}
        self._ckpt_thread: threading.Thread | None = None
        self._ckpt_stop = False
        self.status: dict[str, int] = {"Questions": 0, "Com_commit": 0, "Com_rollback": 0}
        self.started = clock()
        self.accounts = Accounts(self.data_dir / "mysql.sqlite")
        if root_password:
            self.accounts.drop_user(Account("root", "localhost"), if_exists=True)
            self.accounts.set_account(Account("root", "%"), native_password_hash(root_password))
        else:
            self.accounts.drop_user(Account("root", "%"), if_exists=True)
            self.accounts.set_account(Account("root", "localhost"), "")
            log.warning("root has no password: root may log in from loopback without one")
        for host in ("%", "localhost"):
            self.accounts.grant(Account("root", host), "*", [*ALL_PRIVILEGES, "GRANT OPTION"])
        if read_only:
            self.variables["read_only"] = 1

    # -- public API ------------------------------------------------------------------------

    def password_hash(self, user: str, host: str) -> str | None:
        """The stored hash ("*HEX", or '' for no password) of the account ``user`` logging in
        from ``host`` would use; None when there is no such account (the wire layer answers
        1045 then).
        """
        found = self.accounts.find(user, host)
        return None if found is None else found[1]

    def open_session(self, user: str, host: str, connection_id: int | None = None) -> Session:
        """A new client session for an authenticated login.

        ``connection_id`` is the id the wire layer gave the connection (its handshake and
        SHOW PROCESSLIST show it; CONNECTION_ID() and the binlog's thread id use it too);
        without one the engine numbers sessions itself.
        """
        found = self.accounts.find(user, host)
        if found is None:
            raise SqlError(1045, f"Access denied for user '{user}'@'{host}'")
        if connection_id is None:
            with self._state_lock:
                self._next_conn_id += 1
                connection_id = self._next_conn_id
        return Session(self, user, host, found[0], connection_id)

    def close(self) -> None:
        """Release the system database (sessions should be closed first)."""
        with self._ckpt:
            self._ckpt_stop = True
            thread = self._ckpt_thread
            self._ckpt.notify_all()
        if thread is not None:
            thread.join()
        self.accounts.close()

    def note_commit(self, dbs: Iterable[str]) -> None:
        """Count a commit to ``dbs`` for the background WAL checkpointer.

        Sessions turn SQLite's automatic checkpoint off: run inline it costs the committing
        writer a copy and an fsync of the database file every few hundred commits. A thread
        (started on demand, ending when idle) checkpoints PASSIVE from its own connection
        instead, every ``_CHECKPOINT_EVERY`` commits to a database or after a second without.
        """
        if self._ckpt_thread is not None:
            # the usual case, without taking the condition's lock (~3 us a commit): writers
            # are serialised by the writer lock; a count lost to a concurrent clear() by the
            # checkpointer only moves the next checkpoint a little
            dirty = self._ckpt_dirty
            due = False
            for db in dbs:
                n = dirty.get(db, 0) + 1
                dirty[db] = n
                due = due or n >= _CHECKPOINT_EVERY
            if due:
                with self._ckpt:
                    self._ckpt.notify()
            return
        with self._ckpt:
            if self._ckpt_stop:
                return
            for db in dbs:
                self._ckpt_dirty[db] = self._ckpt_dirty.get(db, 0) + 1
            if self._ckpt_thread is None:
                self._ckpt_thread = threading.Thread(
                    target=self._checkpointer, name="pylamp-db-checkpoint", daemon=True
                )
                self._ckpt_thread.start()

    def _checkpointer(self) -> None:
        while True:
            with self._ckpt:
                # note_commit counts without this lock: copy the values in one step
                counts = list(self._ckpt_dirty.values())
                if not self._ckpt_stop and not any(n >= _CHECKPOINT_EVERY for n in counts):
                    self._ckpt.wait(_CHECKPOINT_IDLE_S)
                if self._ckpt_stop or not self._ckpt_dirty:
                    self._ckpt_thread = None
                    return
                dbs = list(self._ckpt_dirty)
                self._ckpt_dirty.clear()
            for db in dbs:
                self._checkpoint(db)

    def _checkpoint(self, db: str) -> None:
        # First the bulk of the copying while writers go on; once the WAL is long, also the
        # few frames they added meanwhile, under the writer lock: only a fully copied WAL
        # starts over from its beginning at the next write, so a busy WAL would keep growing.
        # DROP DATABASE takes the writer lock, then files_lock: hence the short wait here.
        with self.files_lock:
            path = self.db_path(db)
            if not path.exists():
                return
            try:
                conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
            except sqlite3.Error:
                return
            try:
                _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames > _WAL_RESTART_FRAMES and self.writer_lock.acquire(
                    timeout=_CHECKPOINT_LOCK_WAIT_S
                ):
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    finally:
                        self.writer_lock.release()
            except sqlite3.Error as e:
                log.debug("checkpoint of %s failed: %s", db, e)
            finally:
                conn.close()

    def databases(self) -> list[str]:
        """Names of the user databases, sorted."""
        return sorted(
            p.name[: -len(".sqlite")]
            for p in self.data_dir.glob("*.sqlite")
            if p.name != "mysql.sqlite"
        )

    def db_path(self, db: str) -> Path:
        return self.data_dir / f"{db}.sqlite"

    def db_exists(self, db: str) -> bool:
        if db in self._known_dbs:
            return True
        if db in RESERVED or not self.db_path(db).exists():
            return False
        self._known_dbs.add(db)
        return True

    def known_count(self) -> int:
        """How many user databases this engine knows of (without copying the set)."""
        return len(self._known_dbs)

    def known_databases(self) -> frozenset[str]:
        """The user databases this engine knows of (kept up to date by CREATE/DROP)."""
        return frozenset(self._known_dbs)

    def forget_db(self, db: str) -> None:
        """Called after DROP DATABASE."""
        self._known_dbs.discard(db)

    def epoch(self, db: str) -> int:
        return self._epochs.get(db, 0)

    def bump_epoch(self, db: str) -> None:
        with self._state_lock:
            self._epochs[db] = self._epochs.get(db, 0) + 1

    def invalidate(self) -> None:
        """Forget compiled statements and catalog entries (after any DDL)."""
        with self._state_lock:
            self._compiled.clear()
            self._shapes.clear()
            self._catalog.clear()

    def store_positions(
        self, position: tuple[str, int], key: str = "binlog", dbs: Iterable[str] | None = None
    ) -> None:
        """Store ``position`` as the position under ``key`` of ``dbs`` (default: every
        database; after RESET MASTER, or after recovery)."""
        for db in self.databases() if dbs is None else dbs:
            conn = sqlite3.connect(str(self.db_path(db)), isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout = 10000")
                write_position(conn, "main", position, key)
            finally:
                conn.close()

    def positions(self, key: str = "binlog") -> dict[str, tuple[str, int] | None]:
        """Each database's stored binlog position (end of the last transaction applied)."""
        out: dict[str, tuple[str, int] | None] = {}
        for db in self.databases():
            conn = sqlite3.connect(str(self.db_path(db)))
            try:
                out[db] = read_position(conn, "main", key)
            finally:
                conn.close()
        return out

    def recover(
        self,
        transactions: Callable[[tuple[str, int] | None], Iterable[Any]],
        *,
        key: str = "binlog",
        up_to: tuple[str, int] | None = None,
    ) -> int:
        """Re-apply logged transactions that the database files do not have yet (see
        :func:`pylamp.db.recovery.recover`)."""
        return recovery.recover(self, transactions, key=key, up_to=up_to)

    # -- catalog -----------------------------------------------------------------------------

    def table_spec(self, conn: sqlite3.Connection, db: str, table: str) -> TableSpec | None:
        """The catalog entry of ``db.table`` (None if no such table)."""
        key = (db, table.lower())
        with self._state_lock:
            if key in self._catalog:
                return self._catalog[key]
        row = conn.execute(
            f'SELECT spec FROM "{db}"._pylamp_tables WHERE lower(name) = ?', (table.lower(),)
        ).fetchone()
        spec = TableSpec.from_json(row[0]) if row else None
        with self._state_lock:
            self._catalog[key] = spec
        return spec

    # -- compile cache -----------------------------------------------------------------------

    def cached(self, key: tuple[Any, ...]) -> Compiled | None:
        return self._compiled.get(key)

    def shape_info(self, key: tuple[str | None, str]) -> ShapeInfo | None:
        return self._shapes.get(key)

    def remember(
        self,
        shape_key: tuple[str | None, str],
        info: ShapeInfo,
        key: tuple[Any, ...] | None,
        compiled: Compiled | None,
    ) -> None:
        with self._state_lock:
            if len(self._compiled) > _CACHE_LIMIT:
                self._compiled.clear()
                self._shapes.clear()
            self._shapes[shape_key] = info
            if key is not None and compiled is not None:
                self._compiled[key] = compiled
