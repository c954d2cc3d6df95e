"""Re-applying logged (binlog) transactions: crash recovery now, a replica's applier next.

:func:`recover` replays the complete transactions past each database's stored position on a
replaying root session (:func:`apply_logged`, one transaction at a time), skipping the
databases that already have a transaction, so each statement is applied exactly once.
:func:`apply_statement` applies a single logged statement.  Both run statements through the
same ``Session.execute`` path as clients, so a logged statement is applied exactly as it first
ran.

Why a module of its own: replay is not part of running a client's statements
(:mod:`pylamp.db.session`) nor of owning files and caches (:mod:`pylamp.db.engine`), and the
replica's applier will reuse it for its master's log (positions kept under another ``key``).
``pylamp.db.engine`` re-exports :func:`apply_statement` and keeps :meth:`Engine.recover`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from pylamp.db import sql as sqlmod
from pylamp.db.accounts import Account
from pylamp.db.compiler import compile_shape
from pylamp.db.dbfiles import write_position
from pylamp.db.results import Ok, ResultSet, SqlError

# Session is constructed here (the replaying root session), so it is a runtime import; no
# cycle, since pylamp.db.session does not import this module.
from pylamp.db.session import Session
from pylamp.db.sql import Kind

if TYPE_CHECKING:
    from pylamp.db.engine import Engine

__all__ = ["apply_logged", "apply_statement", "recover"]


def apply_statement(session: Session, db: str | None, sql: str) -> list[ResultSet | Ok]:
    """Apply one logged (already determinised) statement in ``db`` on ``session``.

    The one function that master execution, crash recovery and a replica's applier share: the
    statement runs exactly as it ran on the master, through the same translation.
    """
    if db and db != session.db:
        session.use(db)
    return session.execute(sql)


def recover(
    engine: Engine,
    transactions: Callable[[tuple[str, int] | None], Iterable[Any]],
    *,
    key: str = "binlog",
    up_to: tuple[str, int] | None = None,
) -> int:
    """Re-apply logged transactions that the database files do not have yet.

    ``transactions(after)`` yields binlog transactions (objects with ``end`` and
    ``statements`` of ``(db, sql)``, like pylamp.db.binlog's) ending after ``after``.  A
    statement is applied to a database only when that database's stored position is
    before the transaction's end, so each is applied exactly once.  Returns how many
    transactions were (partly) re-applied.  ``key`` names the stored positions to compare
    with ("binlog" for this server's own log; a replica applying its master's log can keep
    those positions under another key).

    ``up_to`` is the end of the log (its position when nothing can write to it): once
    every transaction has been re-applied, every database has all of the log, so it is
    stored as each one's position under ``key``; the next recovery then starts there
    instead of at the last transaction that happened to touch a rarely written database.
    """
    positions = engine.positions(key)
    known = [p for p in positions.values() if p is not None]
    start = min(known) if known and len(known) == len(positions) else None
    count = 0
    session = Session(engine, "root", "localhost", Account("root", "localhost"), 0)
    session.replaying = True
    session.position_key = key
    try:
        for txn in transactions(start):
            end = tuple(txn.end)
            if apply_logged(session, txn, end, positions):
                count += 1
                if getattr(txn, "xid", 1) is None:
                    positions = engine.positions(key)  # DDL may create or drop databases
                else:
                    positions.update(dict.fromkeys(session.applied_dbs, end))
    finally:
        session.close()
    if up_to is not None:
        end = (up_to[0], up_to[1])
        stale = [db for db, pos in engine.positions(key).items() if pos is None or pos < end]
        engine.store_positions(end, key, stale)
    return count


def apply_logged(
    session: Session, txn: Any, end: tuple[str, int], positions: dict[str, tuple[str, int] | None]
) -> bool:
    """Apply one logged transaction during recovery, skipping databases that have it."""
    applied = False
    stmts = [(getattr(s, "db", None), getattr(s, "sql", s)) for s in txn.statements]
    session._now = float(getattr(txn, "timestamp", 0.0))
    session.replay_end = end
    ddl = getattr(txn, "xid", 1) is None
    try:
        for db, text in stmts:
            session.db = db if db and session.engine.db_exists(db) else None
            target_db = _target_db(session, text)
            if target_db is not None:
                pos = positions.get(target_db)
                if pos is not None and pos >= end:
                    continue
            elif ddl and _database_stmt_done(text, session.engine):
                continue
            if not ddl and not session.in_transaction:
                session.in_transaction = True
            try:
                session.execute(text)
            except SqlError as e:
                # account changes are not position-tracked: replaying one that is
                # already there (user exists / is gone) is a no-op
                if sqlmod.classify(text) is Kind.ACCOUNT and e.errno in (1396, 1133, 1141):
                    continue
                raise
            applied = True
            if target_db is not None and session._holds_writer:
                session._txn_dbs.add(target_db)
            if ddl and target_db is not None and session.engine.db_exists(target_db):
                _store_recovered(session, target_db, end)
        session.applied_dbs = set(session._txn_dbs)
        if session._holds_writer:
            session._store_position(end, session._txn_dbs)
            session._conn.execute("COMMIT")
            session._end_txn()
    except BaseException:
        session._rollback()
        raise
    session.in_transaction = False
    return applied


def _target_db(session: Session, text: str) -> str | None:
    """The database a logged statement changes (None: a database or account statement)."""
    kind = sqlmod.classify(text)
    if kind is Kind.WRITE:
        compiled = compile_shape(session, sqlmod.strip_literals(text), kind)
        return compiled.target[0] if compiled.target is not None else session.db
    if kind is Kind.DDL:
        if re.match(r"\s*(?:CREATE|DROP)\s+(?:DATABASE|SCHEMA)\b", text, re.I):
            return None
        table = sqlmod.parse_mysql(text).find(exp.Table)
        db = table.args.get("db") if table is not None else None
        return db.name if db is not None else session.db
    return None


def _store_recovered(session: Session, db: str, end: tuple[str, int]) -> None:
    session._attach(db)
    write_position(session._conn, db, end, session.position_key)


def _database_stmt_done(text: str, engine: Engine) -> bool:
    m = re.match(
        r"\s*(CREATE|DROP)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
        r"(`(?:[^`]|``)+`|[\w$-]+)",
        text,
        re.I,
    )
    if m:
        exists = engine.db_exists(sqlmod.unquote_ident(m.group(2)))
        return exists if m.group(1).upper() == "CREATE" else not exists
    return False
