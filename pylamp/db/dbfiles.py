"""Database files and names: what makes a name a valid database, and pylamp's own tables in
each database's SQLite file.

Every ``<db>.sqlite`` holds, besides the user's tables, ``_pylamp_tables`` (the catalog: one
:class:`~pylamp.db.catalog.TableSpec` per table, as JSON) and ``_pylamp_meta`` (the binlog
position the file has applied up to, per log).  Shared by the engine (recovery, commits) and
the DDL statements (:mod:`pylamp.db.ddl_exec`, CREATE DATABASE).
"""

from __future__ import annotations

import re
import sqlite3

__all__ = [
    "DB_NAME",
    "DEFAULT_PAGE_SIZE",
    "IDENT_PART",
    "PAGE_SIZES",
    "RESERVED",
    "init_db_file",
    "read_position",
    "write_position",
]

_SYSTEM_DBS = {"information_schema", "mysql", "performance_schema", "sys"}
RESERVED = _SYSTEM_DBS | {"main", "temp"}
DB_NAME = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}")
IDENT_PART = re.compile(r"`(?:[^`]|``)+`|[^.`\s]+")

# Default page size of new database files (Engine's page_size; --page-size). SQLite's WAL logs
# whole pages: a single-row autocommit INSERT dirties three (the table's leaf, sqlite_sequence
# for AUTO_INCREMENT, _pylamp_meta for the binlog position), so 4 KiB pages write 12 KiB to
# the WAL per commit and 1 KiB pages 3 KiB, which made small durable INSERTs ~10% faster here
# (3 paired runs, 684/777 -> 619/647 us each). But rows beyond ~1 KiB then overflow into page
# chains: with 3 KB TEXT rows a primary-key SELECT took 22 us instead of 12 and a full scan
# 2.3x as long. Web content has such rows, so the default stays SQLite's 4 KiB.
DEFAULT_PAGE_SIZE = 4096
PAGE_SIZES = frozenset(1 << n for n in range(9, 17))  # what SQLite accepts: 512 to 65536


def read_position(
    conn: sqlite3.Connection, schema: str, key: str = "binlog"
) -> tuple[str, int] | None:
    """The (file, pos) stored under ``key`` in a database's ``_pylamp_meta``."""
    try:
        rows = dict(
            conn.execute(
                f'SELECT k, v FROM "{schema}"._pylamp_meta WHERE k IN (?, ?)',
                (f"{key}_file", f"{key}_pos"),
            ).fetchall()
        )
    except sqlite3.Error:
        return None
    if not rows.get(f"{key}_file"):
        return None
    return (str(rows[f"{key}_file"]), int(rows[f"{key}_pos"]))


def write_position(
    conn: sqlite3.Connection, schema: str, position: tuple[str, int], key: str = "binlog"
) -> None:
    """Store (file, pos) under ``key`` ("binlog": this server's own log; a replica may keep
    its master's position under another key) in the current transaction."""
    conn.execute(
        f'INSERT OR REPLACE INTO "{schema}"._pylamp_meta (k, v) VALUES (?, ?), (?, ?)',
        (f"{key}_file", position[0], f"{key}_pos", position[1]),
    )


def init_db_file(conn: sqlite3.Connection, schema: str) -> None:
    # WITHOUT ROWID: one b-tree, so storing the position on every commit dirties one page,
    # not two (a table and its key's index); COMMIT is ~10 us cheaper
    conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}"._pylamp_meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID'
    )
    conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}"._pylamp_tables (name TEXT PRIMARY KEY, spec TEXT)'
    )
