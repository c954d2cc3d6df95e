"""DDL statements: CREATE/DROP DATABASE, CREATE/ALTER/DROP/RENAME/TRUNCATE TABLE, CREATE/DROP
INDEX, run against SQLite inside the writer lock.

:func:`execute_ddl` is what the session's dispatcher calls: it commits an open transaction
first (as MySQL does), applies the statement and its catalog change
(:mod:`pylamp.db.ddl` turns the sqlglot tree into a :class:`~pylamp.db.catalog.TableSpec`),
logs it to the binlog and commits, and clears the engine's compile cache.  Each function takes
the :class:`~pylamp.db.engine.Session` it runs in as its first argument.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sqlglot import exp

from pylamp.db import sql as sqlmod
from pylamp.db.catalog import ColumnSpec, IndexSpec, TableSpec, sqlite_table_ddl
from pylamp.db.compiler import compile_text
from pylamp.db.dbfiles import (
    DB_NAME,
    IDENT_PART,
    RESERVED,
    has_sequence,
    init_db_file,
    write_position,
)
from pylamp.db.ddl import add_index, alter_spec, key_part_name, mysql_type_of, spec_from_schema
from pylamp.db.errors import map_error
from pylamp.db.results import Ok, SqlError
from pylamp.db.sql import Kind, Shape

if TYPE_CHECKING:
    from pylamp.db.session import Session

__all__ = ["execute_ddl"]

_KEYS_TOGGLE = re.compile(r"\s*ALTER\s+TABLE\s+\S+\s+(?:DISABLE|ENABLE)\s+KEYS\s*", re.I)


def execute_ddl(session: Session, stmt: str) -> Ok:
    if _KEYS_TOGGLE.fullmatch(stmt):
        return Ok()  # mysqldump's ALTER TABLE t DISABLE/ENABLE KEYS: nothing to do here
    session._check_writable()
    session._implicit_commit()
    words = stmt.split(None, 3)
    upper = [w.upper() for w in words]
    if (
        len(upper) >= 2
        and upper[0] in ("CREATE", "DROP")
        and upper[1]
        in (
            "DATABASE",
            "SCHEMA",
        )
    ):
        return _database_ddl(session, stmt)
    tree = sqlmod.parse_mysql(stmt)
    for table in tree.find_all(exp.Table):
        db = table.args.get("db")
        name = db.name if db is not None else session.db
        if name and session.engine.db_exists(name):
            session._attach(name)
    session._begin_write()
    binlog = session.engine.binlog
    position: tuple[str, int] | None = None
    try:
        touched = _apply_ddl(session, tree)
        if touched and not session.replaying:
            # shown to binlog readers only once SQLite has committed (rotate_if_full)
            position = session._log([(session.db or "", stmt)], ddl=True, rotate=False)
            if position is not None:
                session._store_position(position, touched)
        session._conn.execute("COMMIT")
    except BaseException as e:
        if position is not None and binlog is not None:
            binlog.undo(position)
        session._rollback()
        if isinstance(e, sqlite3.Error):
            raise map_error(session, e, None) from None
        raise
    finally:
        session._end_txn()
        session.engine.invalidate()
    if position is not None and binlog is not None:
        binlog.rotate_if_full()
    return Ok()


def _database_ddl(session: Session, stmt: str) -> Ok:
    m = re.fullmatch(
        r"\s*(CREATE|DROP)\s+(?:DATABASE|SCHEMA)\s+(IF\s+(?:NOT\s+)?EXISTS\s+)?"
        r"(`(?:[^`]|``)+`|[\w$-]+)(.*)",
        stmt,
        re.I | re.S,
    )
    if not m:
        raise sqlmod.syntax_error(stmt)
    verb = m.group(1).upper()
    guarded = m.group(2) is not None
    name = sqlmod.unquote_ident(m.group(3))
    if verb == "CREATE":
        session._require_db("CREATE", name)
        if not DB_NAME.fullmatch(name) and name.lower() not in RESERVED:
            raise SqlError(1102, f"Incorrect database name '{name}'")
        with session._writer():  # checked under the lock: two creators cannot both pass
            if name.lower() in RESERVED or session.engine.db_exists(name):
                if guarded:
                    return Ok()
                raise SqlError(1007, f"Can't create database '{name}'; database exists")
            position = (
                session._log([(session.db or "", stmt)], ddl=True)
                if not session.replaying
                else session.replay_end
            )
            _create_db_file(session, name, position)
            session.engine.db_exists(name)  # now known
        session.engine.bump_epoch(name)
        return Ok(affected_rows=1)
    session._require_db("DROP", name)
    with session._writer():
        if not session.engine.db_exists(name):
            if guarded:
                return Ok()
            raise SqlError(1008, f"Can't drop database '{name}'; database doesn't exist")
        if not session.replaying:
            session._log([(session.db or "", stmt)], ddl=True)
        if name in session._attached:
            session._conn.execute(f'DETACH DATABASE "{name}"')
            del session._attached[name]
        path = session.engine.db_path(name)
        with session.engine.files_lock:  # not while the checkpointer has the file open
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        session.engine.forget_db(name)
    session.engine.bump_epoch(name)
    session.engine.invalidate()
    if session.db == name:
        session.db = None
    return Ok()


def _create_db_file(session: Session, name: str, position: tuple[str, int] | None) -> None:
    path = session.engine.db_path(name)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {session.engine.page_size}")  # before the first write
        conn.execute("PRAGMA journal_mode = WAL")
        init_db_file(conn, "main")
        if position is not None:
            write_position(conn, "main", position, session.position_key)
    finally:
        conn.close()
    os.replace(tmp, path)


def _table_ref(session: Session, table: exp.Table) -> tuple[str, str]:
    db = table.args.get("db")
    dbname = db.name if db is not None else session.db
    if dbname is None:
        raise SqlError(1046, "No database selected")
    if not session.engine.db_exists(dbname):
        raise SqlError(1049, f"Unknown database '{dbname}'")
    if table.name.lower().startswith(("_pylamp_", "sqlite_")):
        raise SqlError(1103, f"Incorrect table name '{table.name}'")
    session._attach(dbname)
    return dbname, table.name


def _apply_ddl(session: Session, tree: exp.Expression) -> set[str]:
    """Run one DDL statement inside the open write transaction; the databases touched."""
    if isinstance(tree, exp.Create):
        kind = (tree.args.get("kind") or "").upper()
        if kind == "TABLE":
            return _create_table(session, tree)
        if kind == "INDEX":
            return _create_index(session, tree)
        if kind == "VIEW":
            raise SqlError(1235, "This version of MySQL doesn't yet support 'CREATE VIEW'")
    if isinstance(tree, exp.Drop):
        kind = (tree.args.get("kind") or "").upper()
        if kind == "TABLE":
            return _drop_tables(session, tree)
        if kind == "INDEX":
            return _drop_index(session, tree)
    if isinstance(tree, exp.Alter):
        return _alter_table(session, tree)
    if isinstance(tree, exp.TruncateTable):
        touched: set[str] = set()
        for t in tree.expressions:
            db, name = _table_ref(session, t)
            session._require_table("DROP", db, name)
            if session.engine.table_spec(session._conn, db, name) is None:
                raise SqlError(1146, f"Table '{db}.{name}' doesn't exist")
            session._conn.execute(f'DELETE FROM "{db}"."{name}"')
            session._conn.execute(
                f'DELETE FROM "{db}".sqlite_sequence WHERE name = ?', (name,)
            ) if has_sequence(session._conn, db) else None
            touched.add(db)
        return touched
    if isinstance(tree, exp.Command) and tree.name.upper() == "RENAME":
        return _rename_tables(session, tree.expression.name if tree.expression else "")
    raise SqlError(1235, f"This version of MySQL doesn't yet support '{tree.sql('mysql')[:60]}'")


def _save_spec(session: Session, db: str, spec: TableSpec) -> None:
    session._conn.execute(
        f'INSERT OR REPLACE INTO "{db}"._pylamp_tables (name, spec) VALUES (?, ?)',
        (spec.name, spec.to_json()),
    )
    session.engine.invalidate()


def _create_table(session: Session, tree: exp.Create) -> set[str]:
    schema = tree.this
    if not isinstance(schema, exp.Schema):
        if isinstance(schema, exp.Table) and tree.args.get("expression") is None:
            like = tree.find(exp.LikeProperty)
            if like is not None:
                return _create_like(session, tree, schema, like)
        if isinstance(schema, exp.Table) and isinstance(tree.expression, exp.Query):
            return _create_as_select(session, tree, schema, tree.expression)
        raise SqlError(1235, "This version of MySQL doesn't yet support this CREATE TABLE")
    db, name = _table_ref(session, schema.this)
    session._require_table("CREATE", db, name)
    if session.engine.table_spec(session._conn, db, name) is not None:
        if tree.args.get("exists"):
            session.warnings.append(("Note", 1050, f"Table '{name}' already exists"))
            return set()
        raise SqlError(1050, f"Table '{name}' already exists")
    spec = spec_from_schema(name, schema, tree)
    for ddl in sqlite_table_ddl(db, spec):
        session._conn.execute(ddl)
    _save_spec(session, db, spec)
    return {db}


def _create_as_select(
    session: Session, tree: exp.Create, table: exp.Table, query: exp.Query
) -> set[str]:
    """CREATE TABLE t AS SELECT ...: column types from the query's result columns."""
    db, name = _table_ref(session, table)
    session._require_table("CREATE", db, name)
    if session.engine.table_spec(session._conn, db, name) is not None:
        if tree.args.get("exists"):
            return set()
        raise SqlError(1050, f"Table '{name}' already exists")
    compiled = compile_text(session, query.sql("mysql"), Kind.READ)
    for src_db, src_table in compiled.reads:
        session._require_table("SELECT", src_db, src_table)
    try:
        cur = session._conn.execute(compiled.sql, session._bind(compiled, Shape("", [])))
        raw = cur.fetchall()
    except sqlite3.Error as e:
        raise map_error(session, e, compiled) from None
    names = [d[0] for d in cur.description or ()]
    result = session._result_set(compiled, names, raw)
    columns = [ColumnSpec(c.name, mysql_type_of(c)) for c in result.columns]
    spec = TableSpec(name, columns)
    for ddl in sqlite_table_ddl(db, spec):
        session._conn.execute(ddl)
    if raw:
        marks = ", ".join("?" * len(columns))
        session._conn.executemany(f'INSERT INTO "{db}"."{name}" VALUES ({marks})', raw)
    _save_spec(session, db, spec)
    return {db}


def _create_like(
    session: Session, tree: exp.Create, table: exp.Table, like: exp.LikeProperty
) -> set[str]:
    db, name = _table_ref(session, table)
    src_db, src_name = _table_ref(session, like.this)
    src = session.engine.table_spec(session._conn, src_db, src_name)
    if src is None:
        raise SqlError(1146, f"Table '{src_db}.{src_name}' doesn't exist")
    if session.engine.table_spec(session._conn, db, name) is not None:
        if tree.args.get("exists"):
            return set()
        raise SqlError(1050, f"Table '{name}' already exists")
    spec = TableSpec.from_json(src.to_json())
    spec.name = name
    for ddl in sqlite_table_ddl(db, spec):
        session._conn.execute(ddl)
    _save_spec(session, db, spec)
    return {db}


def _create_index(session: Session, tree: exp.Create) -> set[str]:
    index = tree.this
    table = index.args.get("table")
    db, name = _table_ref(session, table)
    session._require_table("INDEX", db, name)
    spec = session.engine.table_spec(session._conn, db, name)
    if spec is None:
        raise SqlError(1146, f"Table '{db}.{name}' doesn't exist")
    params = index.args.get("params")
    cols = [key_part_name(c) for c in (params.args.get("columns") if params else [])]
    kind = "UNIQUE" if tree.args.get("unique") else "KEY"
    spec = TableSpec.from_json(spec.to_json())
    add_index(spec, IndexSpec(index.name, cols, kind))
    _rebuild(session, db, spec, spec)
    return {db}


def _drop_index(session: Session, tree: exp.Drop) -> set[str]:
    """DROP INDEX name ON table."""
    on = tree.args.get("cluster")
    indexes = tree.args.get("tables") or []
    if not isinstance(on, exp.OnProperty) or len(indexes) != 1:
        raise SqlError(1235, "DROP INDEX needs one index and ON table")
    db, name = _table_ref(session, on.this)
    session._require_table("INDEX", db, name)
    old = session.engine.table_spec(session._conn, db, name)
    if old is None:
        raise SqlError(1146, f"Table '{db}.{name}' doesn't exist")
    index = indexes[0].name
    spec = TableSpec.from_json(old.to_json())
    spec.indexes = [i for i in spec.indexes if i.name.lower() != index.lower()]
    if len(spec.indexes) == len(old.indexes):
        raise SqlError(1091, f"Can't DROP '{index}'; check that column/key exists")
    _rebuild(session, db, old, spec)
    return {db}


def _drop_tables(session: Session, tree: exp.Drop) -> set[str]:
    tables = list(tree.args.get("tables") or [])
    touched: set[str] = set()
    missing = []
    for t in tables:
        if not isinstance(t, exp.Table):
            continue
        db, name = _table_ref(session, t)
        session._require_table("DROP", db, name)
        spec = session.engine.table_spec(session._conn, db, name)
        if spec is None:
            missing.append(f"{db}.{name}")
            continue
        session._conn.execute(f'DROP TABLE "{db}"."{spec.name}"')
        session._conn.execute(f'DELETE FROM "{db}"._pylamp_tables WHERE name = ?', (spec.name,))
        session.engine.invalidate()
        touched.add(db)
    if missing and not tree.args.get("exists"):
        raise SqlError(1051, f"Unknown table '{','.join(missing)}'")
    return touched


def _rename_tables(session: Session, text: str) -> set[str]:
    """RENAME TABLE a TO b [, c TO d ...] within a database."""
    m = re.fullmatch(r"\s*TABLES?\s+(.+)", text, re.I | re.S)
    if not m:
        raise sqlmod.syntax_error(text)
    touched: set[str] = set()
    for pair in m.group(1).split(","):
        names = re.fullmatch(r"\s*(\S+)\s+TO\s+(\S+)\s*", pair, re.I)
        if not names:
            raise sqlmod.syntax_error(pair)
        old_ref, new_ref = (_parse_table_name(n) for n in names.groups())
        db, name = _table_ref(session, old_ref)
        new_db, new_name = _table_ref(session, new_ref)
        if new_db != db:
            raise SqlError(1235, "RENAME TABLE across databases is not supported")
        session._require_table("ALTER", db, name)
        old = session.engine.table_spec(session._conn, db, name)
        if old is None:
            raise SqlError(1146, f"Table '{db}.{name}' doesn't exist")
        if session.engine.table_spec(session._conn, db, new_name) is not None:
            raise SqlError(1050, f"Table '{new_name}' already exists")
        spec = TableSpec.from_json(old.to_json())
        spec.name = new_name
        _rebuild(session, db, old, spec)
        touched.add(db)
    return touched


def _parse_table_name(text: str) -> exp.Table:
    parts = [sqlmod.unquote_ident(p) for p in IDENT_PART.findall(text)]
    if len(parts) == 2:
        return exp.Table(this=exp.to_identifier(parts[1]), db=exp.to_identifier(parts[0]))
    return exp.Table(this=exp.to_identifier(parts[-1]))


def _alter_table(session: Session, tree: exp.Alter) -> set[str]:
    db, name = _table_ref(session, tree.this)
    session._require_table("ALTER", db, name)
    old = session.engine.table_spec(session._conn, db, name)
    if old is None:
        raise SqlError(1146, f"Table '{db}.{name}' doesn't exist")
    spec = TableSpec.from_json(old.to_json())
    rename_to: str | None = None
    for action in tree.args.get("actions") or []:
        rename_to = alter_spec(spec, action, rename_to)
    if rename_to is not None:
        if session.engine.table_spec(session._conn, db, rename_to) is not None:
            raise SqlError(1050, f"Table '{rename_to}' already exists")
        spec.name = rename_to
    _rebuild(session, db, old, spec)
    return {db}


def _rebuild(session: Session, db: str, old: TableSpec, new: TableSpec) -> None:
    """Recreate a table from a new spec, copying the columns both have (SQLite's ALTER
    TABLE cannot change types, keys or column order)."""
    tmp = f"_pylamp_new_{new.name}"
    for ddl in sqlite_table_ddl(db, new, tmp)[:1]:
        session._conn.execute(ddl)
    old_names = {c.name.lower(): c.name for c in old.columns}
    common = []
    for c in new.columns:
        src = old_names.get(c.name.lower()) or old_names.get(getattr(c, "_from", "").lower())
        if src is not None:
            common.append((c.name, src))
    if common:
        dst = ", ".join(f'"{n}"' for n, _ in common)
        srcs = ", ".join(f'"{s}"' for _, s in common)
        try:
            session._conn.execute(
                f'INSERT INTO "{db}"."{tmp}" ({dst}) SELECT {srcs} FROM "{db}"."{old.name}"'
            )
        except sqlite3.IntegrityError as e:
            raise map_error(session, e, None) from None
    session._conn.execute(f'DROP TABLE "{db}"."{old.name}"')
    session._conn.execute(f'ALTER TABLE "{db}"."{tmp}" RENAME TO "{new.name}"')
    for ddl in sqlite_table_ddl(db, new)[1:]:
        session._conn.execute(ddl)
    session._conn.execute(f'DELETE FROM "{db}"._pylamp_tables WHERE name = ?', (old.name,))
    _save_spec(session, db, new)
