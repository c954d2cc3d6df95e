"""Python values as MySQL result columns and SQLite parameters.

Small pure helpers shared by the engine (:mod:`pylamp.db.engine`) and the statement modules
split out of it (:mod:`~pylamp.db.show`, :mod:`~pylamp.db.compiler`,
:mod:`~pylamp.db.errors`): describing a column from the values it holds, building
a text result, turning a value into something SQLite accepts, and reading a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from pylamp.db.results import BINARY_CHARSET, Column, ColumnFlag, FieldType, ResultSet

__all__ = ["number", "sqlite_value", "text_result", "value_column"]


def value_column(name: str, values: Iterable[Any]) -> Column:
    """A result column described from Python values (expressions without a table column)."""
    sample = None
    for v in values:
        if v is not None:
            sample = v
            break
    if sample is None:
        return Column(name, FieldType.NULL, ColumnFlag.BINARY, 0, 0, charset=BINARY_CHARSET)
    if isinstance(sample, bool | int):
        return Column(name, FieldType.LONGLONG, ColumnFlag.NUM, 21, 0, charset=BINARY_CHARSET)
    if isinstance(sample, float):
        return Column(name, FieldType.DOUBLE, ColumnFlag.NUM, 23, 31, charset=BINARY_CHARSET)
    if isinstance(sample, Decimal):
        return Column(name, FieldType.NEWDECIMAL, ColumnFlag.NUM, 65, 30, charset=BINARY_CHARSET)
    if isinstance(sample, bytes):
        return Column(name, FieldType.BLOB, ColumnFlag.BINARY, 65535, 0, charset=BINARY_CHARSET)
    return Column(name, FieldType.VAR_STRING, 0, 1024, 31)


def text_result(names: Sequence[str], rows_in: Iterable[Sequence[Any]]) -> ResultSet:
    rows = [tuple(r) for r in rows_in]
    cols = [value_column(n, (r[i] for r in rows)) for i, n in enumerate(names)]
    cols = [
        c if c.type_code != FieldType.NULL else Column(c.name, FieldType.VAR_STRING) for c in cols
    ]
    return ResultSet(cols, rows)


def sqlite_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bool):
        return int(value)
    return value


def number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)
