"""Sessions: one client connection's state, and the running of its statements.

:class:`Session` dispatches each statement by kind: DML is compiled
(:mod:`pylamp.db.compiler`) and run here, with privilege checks, the writer lock, transactions,
savepoints and the commit path (binlog first, then SQLite's COMMIT: see :mod:`pylamp.db.engine`);
DDL, SHOW, SET and account statements are run by :mod:`~pylamp.db.ddl_exec`,
:mod:`~pylamp.db.show`, :mod:`~pylamp.db.variables` and :mod:`~pylamp.db.account_statements`.
Logged statements (crash recovery, a replica) are re-applied through the same path by
:mod:`pylamp.db.recovery`.  ``pylamp.db.engine`` re-exports :class:`Session`.
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pylamp.db import ddl_exec, show
from pylamp.db import sql as sqlmod
from pylamp.db.account_statements import execute_account
from pylamp.db.accounts import GLOBAL_ONLY, Account
from pylamp.db.catalog import ColumnSpec, TableSpec, TypeInfo, convert_value, type_info
from pylamp.db.compiler import Compiled, compile_shape
from pylamp.db.dbfiles import write_position
from pylamp.db.errors import map_error
from pylamp.db.functions import register_functions
from pylamp.db.results import BINARY_CHARSET, Column, ColumnFlag, FieldType, Ok, ResultSet, SqlError
from pylamp.db.sql import AdminCommand, Kind, NonDeterministic, Shape
from pylamp.db.values import sqlite_value, text_result, value_column
from pylamp.db.variables import execute_set, variable

if TYPE_CHECKING:
    from pylamp.db.engine import Engine

__all__ = ["Session"]

# logged under the engine's name, as before sessions had their own module
log = logging.getLogger("pylamp.db.engine")

_LOCK_WAIT_TIMEOUT = 50.0  # seconds, MySQL's innodb_lock_wait_timeout
_FAST_KINDS = {
    "SELECT": Kind.READ,
    "INSERT": Kind.WRITE,
    "UPDATE": Kind.WRITE,
    "DELETE": Kind.WRITE,
    "REPLACE": Kind.WRITE,
}
_READ, _WRITE = Kind.READ, Kind.WRITE
_LOCKING_READ = re.compile(r"\bFOR\s+(?:UPDATE|SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b", re.I)


# ---------------------------------------------------------------------------------------------
# Sessions.


class Session:
    """One client connection's state: current database, transaction, variables, privileges.

    Not thread-safe itself (one client, one thread at a time); the engine is shared.
    """

    def __init__(self, engine: Engine, user: str, host: str, account: Account, conn_id: int):
        self.engine = engine
        self.user = user
        self.host = host
        self.account = account
        self.connection_id = conn_id
        self.db: str | None = None
        self.autocommit = True
        self.in_transaction = False
        self.last_insert_id = 0
        self.user_vars: dict[str, Any] = {}
        self.session_vars: dict[str, Any] = {}
        self.warnings: list[tuple[str, int, str]] = []
        self._info_attached = False
        self.applied_dbs: set[str] = set()
        """During recovery: the databases the last applied transaction wrote."""
        self._nd_cache: tuple[tuple[float, int, bool], NonDeterministic] | None = None
        self.replaying = False
        self.position_key = "binlog"
        """Under which key committed positions are stored ("binlog": this server's log)."""
        self.replay_end: tuple[str, int] | None = None
        """While replaying: the end position of the transaction being applied."""
        self._holds_writer = False
        self._txn_statements: list[tuple[str, str]] = []
        self._txn_dbs: set[str] = set()
        self._savepoints: dict[str, tuple[int, set[str]]] = {}
        self._txn_ddl = False
        self._attached: dict[str, int] = {}
        self._priv_gen = -1
        self._privs: dict[str, set[str]] = {}
        self._now = 0.0
        self._closed = False
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._cur = self._conn.cursor()
        """Runs the write path's statements (BEGIN, the write, the position, COMMIT): reusing
        one cursor saves making one per statement (~0.5 us each)."""
        self._conn.execute("PRAGMA wal_autocheckpoint = 0")  # the engine's thread does it
        # attached now: ATTACH is impossible inside a transaction; filled when queried
        self._conn.execute("ATTACH DATABASE ':memory:' AS information_schema")
        register_functions(self._conn)
        self._conn.create_function("pylamp_now", 0, self._now_text, deterministic=True)
        self._conn.create_function("LAST_INSERT_ID", 0, lambda: self.last_insert_id)
        self._conn.create_function("PYLAMP_RAND", 0, self.engine._rand.random)
        self._conn.create_function("PYLAMP_RAND", 1, lambda seed: random.Random(seed).random())
        self._conn.create_function("PYLAMP_UUID", 0, lambda: str(uuid.uuid1()))
        self._conn.create_function("LAST_INSERT_ID", 1, self._set_last_insert_id)

    # -- public API ------------------------------------------------------------------------

    def execute(self, sql: str) -> list[ResultSet | Ok]:
        """Run one or more ';'-separated statements; one result per statement.

        On an error, SqlError is raised; its ``results`` attribute holds the results of the
        statements before the failing one (MySQL stops a multi-statement at the first error).
        """
        results: list[ResultSet | Ok] = []
        statements = sqlmod.split_statements(sqlmod.preprocess(sql))
        if not statements:
            raise SqlError(1065, "Query was empty")
        for stmt in statements:
            try:
                results.append(self._execute_one(stmt))
            except SqlError as e:
                e.results = results  # type: ignore[attr-defined]
                raise
            except Exception as e:
                # a statement we mistranslated must not kill the connection or the server:
                # report it as MySQL's generic error; an autocommit write was rolled back
                log.warning("statement failed unexpectedly: %r", stmt[:200], exc_info=True)
                if self._holds_writer and not self.in_transaction:
                    self._rollback()
                err = SqlError(1105, f"Unknown error: {type(e).__name__}: {e}")
                err.results = results  # type: ignore[attr-defined]
                raise err from None
        return results

    def use(self, db: str) -> None:
        """Change the current database (COM_INIT_DB and USE)."""
        if not self.engine.db_exists(db):
            raise SqlError(1049, f"Unknown database '{db}'")
        self._check_db_access(db)
        self.db = db

    def close(self) -> None:
        """End the session; an open transaction is rolled back."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.in_transaction or self._holds_writer:
                self._rollback()
        finally:
            self._conn.close()

    # -- helpers -----------------------------------------------------------------------------

    def _now_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._now))

    def _set_last_insert_id(self, value: Any) -> Any:
        if value is not None:
            self.last_insert_id = int(value)
        return value

    def _nd(self, *, per_row: bool = False) -> NonDeterministic:
        key = (self._now, self.last_insert_id, per_row)
        if self._nd_cache is None or self._nd_cache[0] != key:
            nd = NonDeterministic(
                now=self._now,
                random=self.engine._rand.random,
                last_insert_id=self.last_insert_id,
                per_row=per_row,
                user=f"{self.user}@{self.host}",
                connection_id=self.connection_id,
            )
            self._nd_cache = (key, nd)
        return self._nd_cache[1]

    def _attach(self, db: str, keep: frozenset[str] = frozenset()) -> None:
        """ATTACH ``db`` under its name (again if it was dropped and re-created); at most 9
        are kept (SQLite's limit is 10 with information_schema), evicting those not in
        ``keep`` (the other databases the current statement needs)."""
        epoch = self.engine.epoch(db)
        have = self._attached.get(db)
        if have == epoch:
            return
        if have is not None:
            if self._holds_writer:
                return
            self._conn.execute(f'DETACH DATABASE "{db}"')
            del self._attached[db]
        if not self.engine.db_exists(db):
            raise SqlError(1049, f"Unknown database '{db}'")
        if len(self._attached) >= 9 and not self._holds_writer:
            for other in list(self._attached):
                if other not in keep and other != self.db:
                    self._conn.execute(f'DETACH DATABASE "{other}"')
                    del self._attached[other]
            if len(self._attached) >= 9:
                raise SqlError(1105, "too many databases in one statement (at most 9)")
        try:
            self._conn.execute("ATTACH DATABASE ? AS " + f'"{db}"', (str(self.engine.db_path(db)),))
        except sqlite3.OperationalError as e:
            raise SqlError(
                1105, f"cannot open database '{db}' inside this transaction ({e})"
            ) from None
        self._attached[db] = epoch
        # With a binlog, the binlog is the redo log (fsynced before SQLite commits), so SQLite
        # need not fsync its own commits. Without one, SQLite's commit is all there is: FULL,
        # so an acknowledged commit survives an operating-system crash too.
        sync = "NORMAL" if self.engine.binlog is not None else "FULL"
        self._conn.execute(f'PRAGMA "{db}".synchronous = {sync}')

    def _refresh_privileges(self) -> None:
        gen = self.engine.accounts.generation
        if gen != self._priv_gen:
            self._privs = self.engine.accounts.privileges(self.account)
            self._priv_gen = gen

    def _has(self, priv: str, db: str | None) -> bool:
        self._refresh_privileges()
        glob = self._privs.get("*", set())
        if priv in glob:
            return True
        if db is not None and priv not in GLOBAL_ONLY:
            return priv in self._privs.get(db.lower(), set()) or priv in self._privs.get(db, set())
        return False

    def _require_table(self, priv: str, db: str | None, table: str) -> None:
        if self.replaying or self._has(priv, db):
            return
        raise SqlError(
            1142,
            f"{priv} command denied to user '{self.user}'@'{self.host}' for table '{table}'",
        )

    def _require_global(self, priv: str) -> None:
        if self.replaying or self._has(priv, None):
            return
        raise SqlError(
            1227,
            f"Access denied; you need (at least one of) the {priv} privilege(s) for this operation",
        )

    def _require_db(self, priv: str, db: str) -> None:
        if self.replaying or self._has(priv, db):
            return
        raise SqlError(
            1044, f"Access denied for user '{self.user}'@'{self.host}' to database '{db}'"
        )

    def _check_db_access(self, db: str) -> None:
        if self.replaying:
            return
        self._refresh_privileges()
        if self._privs.get("*") or self._privs.get(db) or self._privs.get(db.lower()):
            return
        raise SqlError(
            1044, f"Access denied for user '{self.user}'@'{self.host}' to database '{db}'"
        )

    def _check_writable(self) -> None:
        if self.engine.read_only and not self.replaying and not self._has("SUPER", None):
            raise SqlError(
                1290,
                "The MySQL server is running with the --read-only option so it cannot execute "
                "this statement",
            )

    # -- dispatch ----------------------------------------------------------------------------

    def _execute_one(self, stmt: str) -> ResultSet | Ok:
        self.engine.status["Questions"] += 1
        if not self.replaying:
            self._now = float(int(self.engine.clock()))
        kind = _FAST_KINDS.get(sqlmod.first_word(stmt)) or sqlmod.classify(stmt)
        if kind is _READ or kind is _WRITE:  # (module aliases: Kind.X is a slow enum lookup)
            if self.warnings:
                self.warnings = []
            return self._execute_dml(stmt, kind)
        if kind is not Kind.SHOW or not re.match(r"\s*SHOW\s+WARNINGS", stmt, re.I):
            self.warnings = []
        if kind is Kind.DDL:
            return ddl_exec.execute_ddl(self, stmt)
        if kind is Kind.TRANSACTION:
            return self._execute_transaction(stmt)
        if kind is Kind.SET:
            return execute_set(self, stmt)
        if kind is Kind.SHOW:
            return show.execute_show(self, stmt)
        if kind is Kind.USE:
            m = re.fullmatch(r"\s*USE\s+(`(?:[^`]|``)+`|\S+)\s*", stmt, re.I)
            if not m:
                raise sqlmod.syntax_error(stmt)
            self.use(sqlmod.unquote_ident(m.group(1)))
            return Ok()
        if kind is Kind.ACCOUNT:
            return execute_account(self, stmt)
        if kind is Kind.ADMIN:
            return self._execute_admin(stmt)
        return self._execute_other(stmt)

    # -- DML ---------------------------------------------------------------------------------

    def _execute_dml(self, stmt: str, kind: Kind) -> ResultSet | Ok:
        shape = sqlmod.strip_literals(stmt, self._nd(per_row=kind is _READ))
        compiled = compile_shape(self, shape, kind, stmt)
        params = self._bind(compiled, shape)
        for db, table in compiled.reads:
            self._require_table("SELECT", db, table)
        if compiled.target is not None:
            self._require_table(compiled.verb, compiled.target[0], compiled.target[1])
        for db in compiled.dbs:
            self._attach(db, compiled.dbs)
        if compiled.info_schema:
            show.fill_information_schema(self)
        if compiled.kind is _READ:
            if (self.in_transaction or not self.autocommit) and _LOCKING_READ.search(shape.text):
                # SELECT ... FOR UPDATE: serialise with writers, as InnoDB's row locks would
                self._check_writable()
                self._begin_write()
                self.in_transaction = True
            return self._run_read(compiled, params)
        self._check_writable()
        logged = sqlmod.restore(shape) if shape.determinised or shape.user_vars else stmt
        if shape.user_vars:
            logged = _inline_user_vars(logged, self.user_vars)
        return self._run_write(compiled, params, logged)

    def _bind(self, compiled: Compiled, shape: Shape) -> list[Any]:
        """The values for the compiled statement's ``?`` parameters, in order."""
        values: list[Any] = []
        for _name, source, key in compiled.params:
            if source == "l":
                values.append(sqlite_value(shape.literals[key].value))
            elif source == "u":
                values.append(sqlite_value(self.user_vars.get(key)))
            else:
                values.append(sqlite_value(variable(self, key)))
        return [values[i] for i in compiled.order]

    def _spec_or_none(self, db: str, table: str) -> TableSpec | None:
        if not self.engine.db_exists(db):
            return None
        self._attach(db)
        try:
            return self.engine.table_spec(self._conn, db, table)
        except sqlite3.Error:
            return None

    # -- running -----------------------------------------------------------------------------

    def _run_read(self, compiled: Compiled, params: list[Any]) -> ResultSet:
        try:
            cur = self._conn.execute(compiled.sql, params)
            rows = cur.fetchall()
        except sqlite3.Error as e:
            raise map_error(self, e, compiled) from None
        description = cur.description or ()
        return self._result_set(compiled, [d[0] for d in description], rows)

    def _result_set(
        self, compiled: Compiled, names: list[str], rows: list[tuple[Any, ...]]
    ) -> ResultSet:
        resolved = compiled.resolved
        if resolved is None or len(resolved) != len(names):
            resolved = self._resolve_columns(compiled, names)
            if compiled.cacheable_columns:
                compiled.resolved = resolved
        columns: list[Column] = []
        converters: list[Any] = []
        for i, entry in enumerate(resolved):
            if isinstance(entry, tuple):
                columns.append(entry[0])
                converters.append(entry[1])
            else:
                columns.append(value_column(entry, (r[i] for r in rows)))
                converters.append(None)
        if any(c is not None for c in converters):
            rows = [
                tuple(
                    convert_value(v, conv) if conv is not None else v
                    for v, conv in zip(row, converters, strict=True)
                )
                for row in rows
            ]
        return ResultSet(columns, rows)

    def _resolve_columns(
        self, compiled: Compiled, names: list[str]
    ) -> list[tuple[Column, Any] | str]:
        """Per result column: (table column definition, converter), or the name of a column
        whose type is inferred from its values."""
        sources = compiled.columns
        if sources is None or len(sources) != len(names):
            sources = [None] * len(names)
        out: list[tuple[Column, Any] | str] = []
        for i, src in enumerate(sources):
            spec = None
            col_spec: ColumnSpec | None = None
            if src is not None and src.db and src.table and src.column:
                spec = self._spec_or_none(src.db, src.table)
                col_spec = spec.column(src.column) if spec else None
            if spec is not None and col_spec is not None and src is not None:
                column = spec.result_column(
                    col_spec, src.db or "", src.name, src.alias or spec.name
                )
                info = type_info(col_spec.type)
                out.append((column, info if info.scale is not None else None))
            elif src is not None and src.decimal_scale is not None:
                scale = src.decimal_scale
                column = Column(
                    src.name,
                    FieldType.NEWDECIMAL,
                    ColumnFlag.NUM,
                    65,
                    scale,
                    charset=BINARY_CHARSET,
                )
                out.append((column, TypeInfo("NUMERIC", FieldType.NEWDECIMAL, scale=scale)))
            elif src is not None and src.count:
                flags = ColumnFlag.NUM | ColumnFlag.NOT_NULL
                count = Column(src.name, FieldType.LONGLONG, flags, 21, 0, charset=BINARY_CHARSET)
                out.append((count, None))
            else:
                out.append(src.name if src is not None else names[i])
        return out

    def _begin_write(self) -> None:
        if self._holds_writer:
            return
        if len(self._attached) < 9 and len(self._attached) < self.engine.known_count():
            # SQLite cannot ATTACH inside a transaction: open the other databases now, so a
            # transaction can go on to write to any of them
            for db in sorted(self.engine.known_databases()):
                if len(self._attached) >= 9:
                    break
                if db not in self._attached and self.engine.db_exists(db):
                    self._attach(db)
        if not self.engine.writer_lock.acquire(timeout=_LOCK_WAIT_TIMEOUT):
            raise SqlError(1205, "Lock wait timeout exceeded; try restarting transaction")
        self._holds_writer = True
        try:
            self._cur.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            self._holds_writer = False
            self.engine.writer_lock.release()
            raise SqlError(1205, f"Lock wait timeout exceeded ({e})") from None

    def _run_write(self, compiled: Compiled, params: list[Any], logged: str) -> Ok:
        self._begin_write()
        before = self._conn.total_changes
        # inside a transaction a failed statement must undo only itself (as InnoDB does)
        savepoint = self.in_transaction or not self.autocommit
        rowid_before = self._last_rowid() if compiled.upsert else 0
        try:
            if savepoint:
                self._conn.execute("SAVEPOINT _pylamp_stmt")
            try:
                cur = self._cur.execute(compiled.sql, params)
            except sqlite3.Error as e:
                if savepoint:
                    self._conn.execute("ROLLBACK TO _pylamp_stmt")
                    self._conn.execute("RELEASE _pylamp_stmt")
                named = {
                    compiled.params[i][0]: v for i, v in zip(compiled.order, params, strict=True)
                }
                raise map_error(self, e, compiled, named) from None
            if savepoint:
                self._conn.execute("RELEASE _pylamp_stmt")
        except SqlError:
            if not savepoint:
                self._rollback()
            raise
        changes = self._conn.total_changes - before
        affected = max(cur.rowcount, 0)
        single = affected == 1 and len(compiled.insert_rows or ()) == 1
        if compiled.upsert and single and self._last_rowid() == rowid_before:
            affected = 2  # MySQL counts an ON DUPLICATE KEY UPDATE that updated a row as 2
        insert_id = 0
        if compiled.verb == "INSERT" and compiled.target is not None and affected:
            auto = compiled.auto_increment
            if auto is None:
                spec = self._spec_or_none(compiled.target[0] or "", compiled.target[1])
                auto = spec is not None and spec.auto_increment_column() is not None
                compiled.auto_increment = auto
            if auto:
                last = cur.lastrowid or 0
                insert_id = max(last - affected + 1, 1) if compiled.insert_rows else last
                if len(compiled.insert_rows or ()) <= 1:
                    insert_id = last
                self.last_insert_id = insert_id
        if changes:
            self._txn_statements.append((self.db or "", logged))
            if compiled.target is not None and compiled.target[0]:
                self._txn_dbs.add(compiled.target[0])
        if self.autocommit and not self.in_transaction:
            self._commit()
        elif not self.autocommit:
            self.in_transaction = True  # autocommit=0: the first write opened a transaction
        return Ok(affected_rows=affected, last_insert_id=insert_id)

    def _last_rowid(self) -> int:
        return int(self._conn.execute("SELECT last_insert_rowid()").fetchone()[0])

    def _commit(self) -> None:
        if not self._holds_writer:
            self.in_transaction = False
            return
        binlog = self.engine.binlog
        position: tuple[str, int] | None = None
        try:
            if self._txn_statements and not self.replaying:
                position = self._log(self._txn_statements, ddl=False, rotate=False)
                if position is not None:
                    self._store_position(position, self._txn_dbs)
            try:
                self._cur.execute("COMMIT")
            except BaseException as e:
                if position is not None and binlog is not None:
                    # the tables roll back: the binlog must not keep (and recovery must not
                    # re-apply) the transaction
                    binlog.undo(position)
                if isinstance(e, sqlite3.Error):
                    raise SqlError(1180, f"Got error during COMMIT ({e})") from None
                raise
            self.engine.note_commit(self._txn_dbs)
        except BaseException:
            self._rollback()
            raise
        finally:
            self._end_txn()
        if position is not None and binlog is not None:
            binlog.rotate_if_full()

    def _log(
        self, statements: list[tuple[str, str]], *, ddl: bool, rotate: bool = True
    ) -> tuple[str, int] | None:
        binlog = self.engine.binlog
        if binlog is None:
            return None
        pos = binlog.append_transaction(
            statements[0][0],
            statements,
            self._now,
            ddl=ddl,
            thread_id=self.connection_id,
            rotate=rotate,
        )
        return (pos[0], pos[1])

    def _store_position(self, position: tuple[str, int], dbs: Iterable[str]) -> None:
        for db in dbs:
            if db not in self._attached:
                continue
            write_position(self._cur, db, position, self.position_key)

    def _rollback(self) -> None:
        try:
            if self._holds_writer:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
        finally:
            self._end_txn()

    def _end_txn(self) -> None:
        if self._savepoints:
            self._savepoints = {}
        if self._txn_statements:
            self._txn_statements = []
        if self._txn_dbs:
            self._txn_dbs = set()
        self.in_transaction = False
        if self._holds_writer:
            self._holds_writer = False
            self.engine.writer_lock.release()

    def _implicit_commit(self) -> None:
        if self.in_transaction or self._holds_writer:
            self._commit()

    # -- the writer lock (DDL, account statements) ------------------------------------------------

    class _WriterCtx:
        def __init__(self, session: Session) -> None:
            self.session = session

        def __enter__(self) -> None:
            if not self.session.engine.writer_lock.acquire(timeout=_LOCK_WAIT_TIMEOUT):
                raise SqlError(1205, "Lock wait timeout exceeded; try restarting transaction")

        def __exit__(self, *exc: object) -> None:
            self.session.engine.writer_lock.release()

    def _writer(self) -> Session._WriterCtx:
        return Session._WriterCtx(self)

    # -- transactions ------------------------------------------------------------------------

    def _execute_transaction(self, stmt: str) -> Ok:
        word = sqlmod.first_word(stmt)
        if word in ("BEGIN", "START"):
            self._implicit_commit()
            self.in_transaction = True
            return Ok()
        if word == "COMMIT":
            self.engine.status["Com_commit"] += 1
            self._commit()
            return Ok()
        m = re.fullmatch(
            r"\s*ROLLBACK\s+(?:WORK\s+)?TO\s+(?:SAVEPOINT\s+)?(`(?:[^`]|``)+`|\w+)\s*",
            stmt,
            re.I,
        )
        if m:
            return self._savepoint("rollback", sqlmod.unquote_ident(m.group(1)))
        self.engine.status["Com_rollback"] += 1
        self._rollback()
        return Ok()

    def _savepoint(self, verb: str, name: str) -> Ok:
        """SAVEPOINT / ROLLBACK TO SAVEPOINT / RELEASE SAVEPOINT inside a transaction.

        A savepoint takes the writer lock (a rollback to it must be able to undo writes), and
        remembers how many statements the transaction had logged, so rolling back to it also
        drops the undone statements from what will be written to the binlog."""
        if not (self.in_transaction or not self.autocommit):
            if verb == "set":
                return Ok()  # outside a transaction MySQL accepts it and forgets it at once
            raise SqlError(1305, f"SAVEPOINT {name} does not exist")
        quoted = '"' + name.replace('"', '""') + '"'
        if verb == "set":
            self._begin_write()
            self.in_transaction = True
            self._conn.execute(f"SAVEPOINT {quoted}")
            self._savepoints[name.lower()] = (len(self._txn_statements), set(self._txn_dbs))
            return Ok()
        if name.lower() not in self._savepoints:
            raise SqlError(1305, f"SAVEPOINT {name} does not exist")
        if verb == "rollback":
            self._conn.execute(f"ROLLBACK TO {quoted}")
            count, dbs = self._savepoints[name.lower()]
            del self._txn_statements[count:]
            self._txn_dbs = set(dbs)
            return Ok()
        self._conn.execute(f"RELEASE {quoted}")
        del self._savepoints[name.lower()]
        return Ok()

    # -- admin and others --------------------------------------------------------------------

    def _execute_admin(self, stmt: str) -> ResultSet | Ok:
        command = sqlmod.parse_admin(stmt)
        assert command is not None
        needs = {
            "show_master_status": "REPLICATION CLIENT",
            "show_slave_status": "REPLICATION CLIENT",
            "show_binary_logs": "REPLICATION CLIENT",
            "show_binlog_events": "REPLICATION SLAVE",
        }.get(command.kind, "SUPER")
        if needs != "SUPER" and self._has("SUPER", None):
            needs = "SUPER"
        self._require_global(needs)
        if self.engine.admin is None:
            if command.kind == "show_master_status":
                return text_result(["File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB"], [])
            if command.kind == "show_slave_status":
                return text_result(["Slave_IO_State"], [])
            raise SqlError(1381, "You are not using binary logging")
        if command.kind == "reset_master":
            return self._reset_master(command)
        if command.kind == "flush_logs" and not self._holds_writer:
            # under the writer lock: rotating closes the file, which would show readers (and
            # put out of undo's reach) a transaction another session has appended but not yet
            # committed
            with self._writer():
                return self.engine.admin(command)
        return self.engine.admin(command)

    def _reset_master(self, command: AdminCommand) -> ResultSet | Ok:
        # (db-binlog) RESET MASTER restarts the binlog at .000001: positions stored before it
        # would compare after the new log's transactions and make crash recovery skip them.
        # Under the writer lock (no commit in between), every database moves to the new start.
        assert self.engine.admin is not None
        self._implicit_commit()
        if not self.engine.writer_lock.acquire(timeout=_LOCK_WAIT_TIMEOUT):
            raise SqlError(1205, "Lock wait timeout exceeded; try restarting transaction")
        try:
            result = self.engine.admin(command)
            if self.engine.binlog is not None:
                self.engine.store_positions(self.engine.binlog.position())
        finally:
            self.engine.writer_lock.release()
        return result

    def _execute_other(self, stmt: str) -> Ok | ResultSet:
        word = sqlmod.first_word(stmt)
        if word in ("LOCK", "UNLOCK", "ANALYZE", "OPTIMIZE", "CHECK", "REPAIR", "DO"):
            return Ok()
        if word == "FLUSH":
            self._require_global("RELOAD")
            return Ok()
        if word == "SET" or word == "START":
            return Ok()
        if word == "XA":
            return text_result(["formatID", "gtrid_length", "bqual_length", "data"], [])
        m = re.fullmatch(
            r"\s*(SAVEPOINT|RELEASE\s+SAVEPOINT)\s+(`(?:[^`]|``)+`|\w+)\s*", stmt, re.I
        )
        if m:
            verb = "set" if m.group(1).upper() == "SAVEPOINT" else "release"
            return self._savepoint(verb, sqlmod.unquote_ident(m.group(2)))
        if word == "KILL":
            return Ok()
        raise sqlmod.syntax_error(stmt)


# ---------------------------------------------------------------------------------------------
# Small helpers.


def _inline_user_vars(text: str, values: dict[str, Any]) -> str:
    shape = sqlmod.strip_literals(text)
    out = re.sub(
        r"@(?!@)(`[^`]*`|[A-Za-z0-9_.$]+)",
        lambda m: sqlmod.literal_sql(values.get(m.group(1).strip("`").lower())),
        shape.text,
    )
    return sqlmod.restore(Shape(out, shape.literals))
