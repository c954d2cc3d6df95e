"""SQLite errors as MySQL errors: what a client sees when a statement fails in SQLite.

:func:`map_error` turns a ``sqlite3.Error`` raised while running a compiled statement into the
:class:`~pylamp.db.results.SqlError` MySQL would have sent (its number, SQL state and message
text: ORMs and applications match on them), e.g. a UNIQUE violation into 1062 "Duplicate entry
'<value>' for key '<table>.<index>'", finding the duplicate value as MySQL names it.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from pylamp.db import sql as sqlmod
from pylamp.db.catalog import TableSpec
from pylamp.db.compiler import Compiled
from pylamp.db.results import SqlError
from pylamp.db.values import number

if TYPE_CHECKING:
    from pylamp.db.session import Session

__all__ = ["map_error"]


def map_error(
    session: Session,
    e: sqlite3.Error,
    compiled: Compiled | None,
    params: dict[str, Any] | None = None,
) -> SqlError:
    msg = str(e)
    m = re.match(r"no such table: (?:(\w+)\.)?(.+)", msg)
    if m:
        db = m.group(1) if m.group(1) not in (None, "main") else session.db
        if db is None:
            return SqlError(1046, "No database selected")
        return SqlError(1146, f"Table '{db}.{m.group(2)}' doesn't exist")
    m = re.match(r"no such column: (.+)", msg)
    if m:
        return SqlError(1054, f"Unknown column '{m.group(1)}' in 'field list'")
    m = re.match(r"UNIQUE constraint failed: (.+)", msg)
    if m:
        return _duplicate_error(session, m.group(1), compiled, params or {})
    m = re.match(r'CHECK constraint failed: length\("?([^")]+)"?\) <=', msg)
    if m:
        return SqlError(1406, f"Data too long for column '{m.group(1)}' at row 1")
    m = re.match(r"NOT NULL constraint failed: \w+\.(.+)", msg)
    if m:
        return SqlError(1048, f"Column '{m.group(1)}' cannot be null")
    m = re.match(r"table \S+ has no column named (.+)", msg)
    if m:
        return SqlError(1054, f"Unknown column '{m.group(1)}' in 'field list'")
    m = re.match(r"table \S+ has (\d+) columns but (\d+) values were supplied", msg)
    if m or re.match(r"\d+ values for \d+ columns", msg) or "VALUES terms" in msg:
        return SqlError(1136, "Column count doesn't match value count at row 1")
    m = re.match(r"wrong number of arguments to function (\w+)", msg)
    if m:
        name = m.group(1).removeprefix("PYLAMP_")
        return SqlError(1582, f"Incorrect parameter count in the call to native function '{name}'")
    m = re.match(r"no such function: (\w+)", msg)
    if m:
        return SqlError(1305, f"FUNCTION {session.db or 'mysql'}.{m.group(1)} does not exist")
    if "syntax error" in msg or "incomplete input" in msg:
        near = re.search(r'near "(.*)"', msg)
        return sqlmod.syntax_error(near.group(1) if near else msg)
    if "ambiguous column name" in msg:
        col = msg.split(":", 1)[1].strip()
        return SqlError(1052, f"Column '{col}' in field list is ambiguous", "23000")
    if "database is locked" in msg:
        return SqlError(1205, "Lock wait timeout exceeded; try restarting transaction")
    return SqlError(1105, f"Unknown error: {msg}")


def _duplicate_error(
    session: Session, cols_text: str, compiled: Compiled | None, params: dict[str, Any]
) -> SqlError:
    cols = [c.strip().split(".")[-1] for c in cols_text.split(",")]
    table = cols_text.split(",")[0].strip().split(".")[0]
    key = "PRIMARY"
    value = "?"
    if compiled is not None and compiled.target is not None:
        db, tname = compiled.target
        spec = session._spec_or_none(db or "", tname)
        if spec is not None:
            table = spec.name
            wanted = [c.lower() for c in cols]
            for idx in spec.indexes:
                if [c.lower() for c in idx.columns] == wanted:
                    key = idx.name if idx.kind != "PRIMARY" else "PRIMARY"
            if compiled.insert_rows:
                value = _dup_value(session, spec, compiled, params, cols, db or "", tname)
    return SqlError(1062, f"Duplicate entry '{value}' for key '{table}.{key}'")


def _dup_value(
    session: Session,
    spec: TableSpec,
    compiled: Compiled,
    params: dict[str, Any],
    cols: list[str],
    db: str,
    table: str,
) -> str:
    names = compiled.insert_columns or [c.name for c in spec.columns]
    lower = [n.lower() for n in names]
    seen: set[tuple[Any, ...]] = set()
    for row in compiled.insert_rows or []:
        values = []
        for col in cols:
            if col.lower() not in lower:
                return "?"
            node = row[lower.index(col.lower())]
            values.append(_eval_simple(node, params))
        key = tuple(values)
        text = "-".join("NULL" if v is None else _display(v) for v in values)
        if key in seen:
            return text
        seen.add(key)
        where = " AND ".join(f'"{c}" = ?' for c in cols)
        try:
            hit = session._conn.execute(
                f'SELECT 1 FROM "{db}"."{table}" WHERE {where} LIMIT 1', values
            ).fetchone()
        except sqlite3.Error:
            hit = None
        if hit:
            return text
    return "?"


def _display(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _eval_simple(node: exp.Expression | str, params: dict[str, Any]) -> Any:
    if isinstance(node, str):  # from the plain-INSERT path: "NULL", "l3" or "-l3"
        if node == "NULL":
            return None
        value = params.get(node.lstrip("-"))
        return -value if node.startswith("-") and isinstance(value, int | float) else value
    if isinstance(node, exp.Placeholder):
        return params.get(node.name)
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else number(node.this)
    if isinstance(node, exp.Neg):
        inner = _eval_simple(node.this, params)
        return -inner if isinstance(inner, int | float) else None
    return None
