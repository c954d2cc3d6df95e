"""Database files and names: what makes a name a valid database, and pylamp's own tables in
each database's SQLite file.

Every ``<db>.sqlite`` holds, besides the user's tables, ``_pylamp_tables`` (the catalog: one
:class:`~pylamp.db.catalog.TableSpec` per table, as JSON), ``_pylamp_meta`` (for settings of
our own) and the binlog position the file has applied up to, per log, as two rows of SQLite's
``sqlite_sequence`` (see :func:`write_position`).  Shared by the engine (recovery, commits) and
the DDL statements (:mod:`pylamp.db.ddl_exec`, CREATE DATABASE).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

__all__ = [
    "DB_NAME",
    "DEFAULT_PAGE_SIZE",
    "IDENT_PART",
    "PAGE_SIZES",
    "RESERVED",
    "has_sequence",
    "init_db_file",
    "read_position",
    "write_position",
]

_SYSTEM_DBS = {"information_schema", "mysql", "performance_schema", "sys"}
RESERVED = _SYSTEM_DBS | {"main", "temp"}
DB_NAME = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}")
IDENT_PART = re.compile(r"`(?:[^`]|``)+`|[^.`\s]+")

# Default page size of new database files (Engine's page_size; --page-size). SQLite's WAL logs
# whole pages: a single-row autocommit INSERT dirties two (the table's leaf, and sqlite_sequence
# for AUTO_INCREMENT and the binlog position), so 4 KiB pages write 8 KiB to the WAL per
# commit and 1 KiB pages 2 KiB. When the position still had a page of its own (three pages a
# commit), 1 KiB pages made small durable INSERTs ~10% faster here (3 paired runs, 684/777 ->
# 619/647 us each). But rows beyond ~1 KiB then overflow into page chains: with 3 KB TEXT rows
# a primary-key SELECT took 22 us instead of 12 and a full scan 2.3x as long. Web content has
# such rows, so the default stays SQLite's 4 KiB.
DEFAULT_PAGE_SIZE = 4096
PAGE_SIZES = frozenset(1 << n for n in range(9, 17))  # what SQLite accepts: 512 to 65536

Executor = sqlite3.Connection | sqlite3.Cursor
"""What runs a statement here: a connection, or a session's cursor (its write path's own)."""


# The position rows in sqlite_sequence: user tables cannot be named _pylamp_* (DDL refuses it),
# so SQLite's AUTOINCREMENT never takes them for a table's counter.
def _position_names(key: str) -> tuple[str, str]:
    return f"_pylamp_{key}_file", f"_pylamp_{key}_pos"


def _legacy_names(key: str) -> tuple[str, str]:
    # where files written before positions moved to sqlite_sequence keep it: _pylamp_meta
    return f"{key}_file", f"{key}_pos"


def read_position(
    conn: sqlite3.Connection, schema: str, key: str = "binlog"
) -> tuple[str, int] | None:
    """The (file, pos) stored under ``key`` in a database (None when there is none)."""
    file_name, pos_name = _position_names(key)
    rows = _select_pairs(
        conn,
        f'SELECT name, seq FROM "{schema}".sqlite_sequence WHERE name IN (?, ?)',
        (file_name, pos_name),
    )
    if rows.get(file_name):
        return (str(rows[file_name]), int(rows[pos_name]))
    file_name, pos_name = _legacy_names(key)
    rows = _select_pairs(
        conn, f'SELECT k, v FROM "{schema}"._pylamp_meta WHERE k IN (?, ?)', (file_name, pos_name)
    )
    if rows.get(file_name):
        return (str(rows[file_name]), int(rows[pos_name]))
    return None


def _select_pairs(conn: sqlite3.Connection, sql: str, args: tuple[str, str]) -> dict[Any, Any]:
    try:
        return dict(conn.execute(sql, args).fetchall())
    except sqlite3.Error:  # no such table
        return {}


def write_position(
    conn: Executor, schema: str, position: tuple[str, int], key: str = "binlog"
) -> None:
    """Store (file, pos) under ``key`` ("binlog": this server's own log; a replica may keep
    its master's position under another key) in the current transaction.

    The position is two rows of ``sqlite_sequence`` (its ``seq`` column has no type, so a file
    name fits). An autocommit INSERT into an AUTO_INCREMENT table dirties that page anyway, so
    storing the position there costs its commit no page of its own: one page less to write to
    the WAL and to checkpoint, ~19 us a commit here (a table of its own: 66 us for BEGIN,
    INSERT, position and COMMIT; here: 47).
    """
    sql = _UPDATE_POSITION.get((schema, key))
    if sql is None:
        sql = _UPDATE_POSITION[schema, key] = _update_position_sql(schema, key)
    try:
        updated = conn.execute(sql, position).rowcount
    except sqlite3.OperationalError:
        if has_sequence(conn, schema):
            raise
        updated = 0
    if updated != 2:  # the first position stored in this file
        file_name, pos_name = _position_names(key)
        _ensure_sequence(conn, schema)
        conn.execute(
            f'DELETE FROM "{schema}".sqlite_sequence WHERE name IN (?, ?)', (file_name, pos_name)
        )
        conn.execute(
            f'INSERT INTO "{schema}".sqlite_sequence (name, seq) VALUES (?, ?), (?, ?)',
            (file_name, position[0], pos_name, position[1]),
        )
        conn.execute(f'DELETE FROM "{schema}"._pylamp_meta WHERE k IN (?, ?)', _legacy_names(key))


def _update_position_sql(schema: str, key: str) -> str:
    # the names written into the statement: with only the two values bound, and the same string
    # each time (its hash kept: the sqlite3 module finds its prepared statement by the text)
    if not re.fullmatch(r"\w+", key):
        raise ValueError(f"bad position key {key!r}")
    file_name, pos_name = _position_names(key)
    return (
        f"UPDATE \"{schema}\".sqlite_sequence SET seq = CASE name WHEN '{file_name}' THEN ? "
        f"ELSE ? END WHERE name IN ('{file_name}', '{pos_name}')"
    )


_UPDATE_POSITION: dict[tuple[str, str], str] = {}


def has_sequence(conn: Executor, schema: str) -> bool:
    """Whether the database has SQLite's sqlite_sequence table yet."""
    row = conn.execute(
        f"SELECT 1 FROM \"{schema}\".sqlite_master WHERE name = 'sqlite_sequence'"
    ).fetchone()
    return row is not None


def _ensure_sequence(conn: Executor, schema: str) -> None:
    # SQLite makes sqlite_sequence with the first AUTOINCREMENT table (it cannot be created by
    # name); this empty one exists so that every database file has it
    conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}"._pylamp_sequence '
        "(id INTEGER PRIMARY KEY AUTOINCREMENT)"
    )


def init_db_file(conn: sqlite3.Connection, schema: str) -> None:
    conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}"._pylamp_meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID'
    )
    conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}"._pylamp_tables (name TEXT PRIMARY KEY, spec TEXT)'
    )
    _ensure_sequence(conn, schema)
