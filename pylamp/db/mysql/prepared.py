"""The prepared-statement (binary) protocol: COM_STMT_* parameters in, binary rows out.

Statements here are SQL text for the engine, which caches its translation by statement shape
anyway, so "preparing" only finds the ``?`` placeholders (outside quotes and comments) and
hands out a statement id; the result columns are announced with each execution's result set
(num_columns is 0 in the prepare answer, which clients accept). COM_STMT_EXECUTE decodes the
bound parameter values (binary, typed by the client) and substitutes them into the text as SQL
literals. A result set then goes back in the binary row format: a NULL bitmap and each value in
its column type's binary form; a column whose values do not fit its declared type (SQLite's
types are dynamic) is announced as a string column instead.
"""

from __future__ import annotations

import datetime
import decimal
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .packets import (
    ProtocolError,
    append_packet,
    lenenc_bytes,
    read_fixed_int,
    read_lenenc_bytes,
)
from .results import (
    ColumnLike,
    append_result_end,
    append_result_header,
    column_definition,
    encode_value,
)

__all__ = [
    "PreparedStatement",
    "append_binary_result_set",
    "find_placeholders",
    "parse_execute",
    "prepare_ok",
    "sql_literal",
]

# Column/parameter type codes (enum_field_types) used here.
_DECIMAL, _TINY, _SHORT, _LONG, _FLOAT, _DOUBLE, _NULL, _TIMESTAMP = 0, 1, 2, 3, 4, 5, 6, 7
_LONGLONG, _INT24, _DATE, _TIME, _DATETIME, _YEAR = 8, 9, 10, 11, 12, 13
_VAR_STRING = 253
_UNSIGNED = 32
_INT_FORMATS = {
    _TINY: ("<b", "<B"),
    _SHORT: ("<h", "<H"),
    _YEAR: ("<h", "<H"),
    _INT24: ("<i", "<I"),
    _LONG: ("<i", "<I"),
    _LONGLONG: ("<q", "<Q"),
}
_INT_SIZES = {_TINY: 1, _SHORT: 2, _YEAR: 2, _INT24: 4, _LONG: 4, _LONGLONG: 8}

_TOKENS = re.compile(
    r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`]|``)*`"""
    r"""|--[ \t][^\n]*|\#[^\n]*|/\*.*?\*/|\?""",
    re.S,
)
_DATETIME_TEXT = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?)?"
)
_TIME_TEXT = re.compile(r"(-)?(\d{1,3}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?")
_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"}
)


@dataclass
class PreparedStatement:
    """A statement prepared on one connection: its text, placeholders and bound state."""

    statement_id: int
    sql: str
    placeholders: list[int]
    types: list[tuple[int, bool]] = field(default_factory=list)
    long_data: dict[int, bytearray] = field(default_factory=dict)


def find_placeholders(sql: str) -> list[int]:
    """Offsets of the ``?`` placeholders of ``sql``, skipping quoted text and comments."""
    return [m.start() for m in _TOKENS.finditer(sql) if m.group() == "?"]


@dataclass(frozen=True, slots=True)
class _Param:
    """The column definition sent for each parameter of a prepared statement."""

    name: str = "?"
    type_code: int = _VAR_STRING
    flags: int = 128
    length: int = 0
    decimals: int = 0
    table: str = ""
    db: str = ""
    org_name: str = ""
    org_table: str = ""
    charset: int = 63


_PARAM_DEFINITION = column_definition(_Param())


def prepare_ok(statement: PreparedStatement, deprecate_eof: bool, eof: bytes) -> list[bytes]:
    """Payloads answering COM_STMT_PREPARE: STMT_PREPARE_OK and one definition per parameter."""
    count = len(statement.placeholders)
    payloads = [struct.pack("<BIHHBH", 0, statement.statement_id, 0, count, 0, 0)]
    if count:
        payloads.extend([_PARAM_DEFINITION] * count)
        if not deprecate_eof:
            payloads.append(eof)
    return payloads


def sql_literal(value: object) -> str:
    """``value`` as a MySQL literal: NULL, a number, a quoted string, or X'hex' for bytes."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "X'" + raw.hex() + "'"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        value = encode_value(value).decode()
    return "'" + str(value).translate(_ESCAPES) + "'"


def parse_execute(
    payload: bytes, statements: dict[int, PreparedStatement]
) -> tuple[PreparedStatement | None, str]:
    """Decode COM_STMT_EXECUTE; return the statement (None if unknown) and the SQL to run.

    Raises :class:`ProtocolError` when the parameter block is malformed.
    """
    statement_id, pos = read_fixed_int(payload, 1, 4)
    statement = statements.get(statement_id)
    if statement is None:
        return None, ""
    pos += 5  # flags (cursor type: no cursors here, rows are sent at once), iteration count
    count = len(statement.placeholders)
    if not count:
        return statement, statement.sql
    bitmap_len = (count + 7) // 8
    if pos + bitmap_len + 1 > len(payload):
        raise ProtocolError("COM_STMT_EXECUTE parameter block truncated")
    nulls = payload[pos : pos + bitmap_len]
    pos += bitmap_len
    bound = payload[pos]
    pos += 1
    if bound:
        if pos + 2 * count > len(payload):
            raise ProtocolError("COM_STMT_EXECUTE parameter types truncated")
        statement.types = [
            (payload[pos + 2 * i], bool(payload[pos + 2 * i + 1] & 0x80)) for i in range(count)
        ]
        pos += 2 * count
    elif len(statement.types) != count:
        raise ProtocolError("COM_STMT_EXECUTE without parameter types")
    values: list[object] = []
    for i, (ptype, unsigned) in enumerate(statement.types):
        if nulls[i // 8] & (1 << (i % 8)):
            values.append(None)
        elif i in statement.long_data:
            values.append(bytes(statement.long_data[i]))
        else:
            value, pos = _read_value(payload, pos, ptype, unsigned)
            values.append(value)
    statement.long_data.clear()
    return statement, _substitute(statement, values)


def _substitute(statement: PreparedStatement, values: Sequence[object]) -> str:
    sql = statement.sql
    parts = []
    last = 0
    for offset, value in zip(statement.placeholders, values, strict=True):
        parts.append(sql[last:offset])
        parts.append(sql_literal(value))
        last = offset + 1
    parts.append(sql[last:])
    return "".join(parts)


def _read_value(payload: bytes, pos: int, ptype: int, unsigned: bool) -> tuple[object, int]:
    if ptype in _INT_FORMATS:
        size = _INT_SIZES[ptype]
        if pos + size > len(payload):
            raise ProtocolError("parameter value truncated")
        fmt = _INT_FORMATS[ptype][unsigned]
        return struct.unpack_from(fmt, payload, pos)[0], pos + size
    if ptype in (_FLOAT, _DOUBLE):
        size = 4 if ptype == _FLOAT else 8
        if pos + size > len(payload):
            raise ProtocolError("parameter value truncated")
        value = struct.unpack_from("<f" if size == 4 else "<d", payload, pos)[0]
        return (float(f"{value:.7g}") if size == 4 else value), pos + size
    if ptype == _NULL:
        return None, pos
    if ptype in (_DATE, _DATETIME, _TIMESTAMP):
        length, pos = read_fixed_int(payload, pos, 1)
        raw = payload[pos : pos + length]
        if len(raw) != length or length not in (0, 4, 7, 11):
            raise ProtocolError("bad date parameter")
        year, month, day, hour, minute, second, micro = (0, 0, 0, 0, 0, 0, 0)
        if length >= 4:
            year, month, day = struct.unpack_from("<HBB", raw)
        if length >= 7:
            hour, minute, second = raw[4], raw[5], raw[6]
        if length == 11:
            micro = struct.unpack_from("<I", raw, 7)[0]
        text = f"{year:04d}-{month:02d}-{day:02d}"
        if ptype != _DATE:
            text += f" {hour:02d}:{minute:02d}:{second:02d}" + (f".{micro:06d}" if micro else "")
        return text, pos + length
    if ptype == _TIME:
        length, pos = read_fixed_int(payload, pos, 1)
        raw = payload[pos : pos + length]
        if len(raw) != length or length not in (0, 8, 12):
            raise ProtocolError("bad time parameter")
        if not length:
            return "00:00:00", pos
        negative, days, hour, minute, second = struct.unpack_from("<BIBBB", raw)
        micro = struct.unpack_from("<I", raw, 8)[0] if length == 12 else 0
        text = f"{'-' if negative else ''}{days * 24 + hour:02d}:{minute:02d}:{second:02d}"
        return text + (f".{micro:06d}" if micro else ""), pos + length
    # Strings, decimals, blobs, JSON, BIT...: a length-encoded string.
    return read_lenenc_bytes(payload, pos)


# -- binary result rows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Retyped:
    """A result column re-announced with another type (its values did not fit the first)."""

    name: str
    type_code: int
    flags: int
    length: int
    decimals: int
    table: str
    db: str
    org_name: str
    org_table: str
    charset: int


def _retyped(col: ColumnLike, type_code: int) -> _Retyped:
    textual = type_code == _VAR_STRING
    return _Retyped(
        col.name,
        type_code,
        col.flags & ~(128 | 32768) if textual else col.flags,
        col.length,
        31 if type_code == _DOUBLE else col.decimals,
        col.table,
        col.db,
        col.org_name,
        col.org_table,
        33 if textual else 63,
    )


def _date_parts(value: object) -> tuple[int, ...] | None:
    if isinstance(value, datetime.datetime):
        return (value.year, value.month, value.day, value.hour, value.minute, value.second,
                value.microsecond)  # fmt: skip
    if isinstance(value, datetime.date):
        return (value.year, value.month, value.day, 0, 0, 0, 0)
    if isinstance(value, str) and (m := _DATETIME_TEXT.fullmatch(value)):
        return tuple(int(g or 0) if i < 6 else int((g or "0").ljust(6, "0"))
                     for i, g in enumerate(m.groups()))  # fmt: skip
    return None


def _time_parts(value: object) -> tuple[int, ...] | None:
    if isinstance(value, datetime.timedelta):
        total = abs(value)
        negative = int(value < datetime.timedelta(0))
        seconds = total.days * 86400 + total.seconds
        return (negative, seconds // 86400, seconds // 3600 % 24, seconds // 60 % 60,
                seconds % 60, total.microseconds)  # fmt: skip
    if isinstance(value, datetime.time):
        return (0, 0, value.hour, value.minute, value.second, value.microsecond)
    if isinstance(value, str) and (m := _TIME_TEXT.fullmatch(value)):
        hours = int(m.group(2))
        micro = int((m.group(5) or "0").ljust(6, "0"))
        return (int(bool(m.group(1))), hours // 24, hours % 24, int(m.group(3)),
                int(m.group(4)), micro)  # fmt: skip
    return None


def _fits(ctype: int, unsigned: bool, value: object) -> bool:
    if ctype in _INT_SIZES:
        if not isinstance(value, int):
            return False
        bits = _INT_SIZES[ctype] * 8
        if unsigned:
            return 0 <= value < 1 << bits
        return -(1 << (bits - 1)) <= value < 1 << (bits - 1)
    if ctype in (_FLOAT, _DOUBLE):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ctype in (_DATE, _DATETIME, _TIMESTAMP):
        return _date_parts(value) is not None
    if ctype == _TIME:
        return _time_parts(value) is not None
    return True


def _binary_value(ctype: int, unsigned: bool, value: object) -> bytes:
    if ctype in _INT_FORMATS:
        return struct.pack(_INT_FORMATS[ctype][unsigned], value)
    if ctype == _DOUBLE:
        return struct.pack("<d", value)
    if ctype in (_DATE, _DATETIME, _TIMESTAMP):
        year, month, day, hour, minute, second, micro = _date_parts(value) or (0,) * 7
        if micro:
            return b"\x0b" + struct.pack("<HBBBBBI", year, month, day, hour, minute, second, micro)
        if hour or minute or second:
            return b"\x07" + struct.pack("<HBBBBB", year, month, day, hour, minute, second)
        if year or month or day:
            return b"\x04" + struct.pack("<HBB", year, month, day)
        return b"\x00"
    if ctype == _TIME:
        negative, days, hour, minute, second, micro = _time_parts(value) or (0,) * 6
        if micro:
            return b"\x0c" + struct.pack("<BIBBBI", negative, days, hour, minute, second, micro)
        if days or hour or minute or second:
            return b"\x08" + struct.pack("<BIBBB", negative, days, hour, minute, second)
        return b"\x00"
    return lenenc_bytes(encode_value(value))


def append_binary_result_set(
    out: bytearray,
    seq: int,
    columns: Sequence[ColumnLike],
    rows: Iterable[Sequence[object]],
    status: int,
    warnings: int,
    deprecate_eof: bool,
) -> int:
    """Append a result set in the binary row format (answering COM_STMT_EXECUTE)."""
    rows = list(rows)
    kinds: list[tuple[int, bool]] = []
    announced: list[Any] = []
    for i, col in enumerate(columns):
        ctype = _DOUBLE if col.type_code == _FLOAT else col.type_code
        unsigned = bool(col.flags & _UNSIGNED)
        if not all(row[i] is None or _fits(ctype, unsigned, row[i]) for row in rows):
            ctype = _VAR_STRING
        kinds.append((ctype, unsigned))
        announced.append(col if ctype == col.type_code else _retyped(col, ctype))
    seq = append_result_header(out, seq, announced, status, warnings, deprecate_eof)
    bitmap_len = (len(columns) + 9) // 8
    for row in rows:
        nulls = bytearray(bitmap_len)
        body = bytearray()
        for i, value in enumerate(row):
            if value is None:
                nulls[(i + 2) // 8] |= 1 << ((i + 2) % 8)
            else:
                ctype, unsigned = kinds[i]
                body += _binary_value(ctype, unsigned, value)
        seq = append_packet(out, b"\x00" + bytes(nulls) + bytes(body), seq)
    return append_result_end(out, seq, status, warnings, deprecate_eof)
