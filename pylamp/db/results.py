"""What the SQL engine hands back: result sets, OK results and MySQL errors.

These are the seam between the engine (SQLite execution) and the wire protocol: the protocol
turns a :class:`ResultSet` into column definitions and text rows, an :class:`Ok` into an OK
packet, and a :class:`SqlError` into an ERR packet.  Row values are plain Python values:
``None`` (SQL NULL), ``int``, ``float``, ``str``, ``bytes`` or ``decimal.Decimal`` (already
scaled to the column's declared number of decimals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "BINARY_CHARSET",
    "SERVER_VERSION",
    "UTF8MB4_CHARSET",
    "Column",
    "ColumnFlag",
    "FieldType",
    "Ok",
    "ResultSet",
    "SqlError",
]

#: The version string reported by VERSION(), @@version and the handshake.
SERVER_VERSION = "8.0.36-pylamp"

#: MySQL collation ids for the column definition's character set field.
UTF8MB4_CHARSET = 255
BINARY_CHARSET = 63


class FieldType:
    """MySQL column type codes (``enum_field_types``)."""

    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    VARCHAR = 15
    BIT = 16
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254


class ColumnFlag:
    """MySQL column definition flags."""

    NOT_NULL = 1
    PRI_KEY = 2
    UNIQUE_KEY = 4
    MULTIPLE_KEY = 8
    BLOB = 16
    UNSIGNED = 32
    ZEROFILL = 64
    BINARY = 128
    ENUM = 256
    AUTO_INCREMENT = 512
    TIMESTAMP = 1024
    SET = 2048
    NUM = 32768


@dataclass(frozen=True)
class Column:
    """One result column as MySQL describes it in a column definition packet."""

    name: str
    type_code: int = FieldType.VAR_STRING
    flags: int = 0
    length: int = 0
    decimals: int = 0
    table: str = ""
    db: str = ""
    org_name: str = ""
    org_table: str = ""
    charset: int = UTF8MB4_CHARSET


@dataclass(frozen=True)
class ResultSet:
    """Rows from a statement that returns rows (SELECT, SHOW, DESCRIBE)."""

    columns: list[Column]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    warnings: int = 0


class Ok(NamedTuple):
    """The outcome of a statement that returns no rows (a NamedTuple: one per statement, and
    ~5x cheaper to make than a frozen dataclass)."""

    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    info: str = ""


class SqlError(Exception):
    """A MySQL error: number, SQLSTATE and message, as an ERR packet carries them."""

    def __init__(self, errno: int, message: str, sqlstate: str | None = None) -> None:
        super().__init__(f"({errno}) {message}")
        self.errno = errno
        self.message = message
        self.sqlstate = sqlstate if sqlstate is not None else _SQLSTATES.get(errno, "HY000")

    def __repr__(self) -> str:
        return f"SqlError({self.errno}, {self.message!r}, {self.sqlstate!r})"


_SQLSTATES = {
    1007: "HY000",
    1008: "HY000",
    1044: "42000",
    1045: "28000",
    1046: "3D000",
    1048: "23000",
    1049: "42000",
    1050: "42S01",
    1051: "42S02",
    1054: "42S22",
    1060: "42S21",
    1061: "42000",
    1062: "23000",
    1064: "42000",
    1065: "42000",
    1091: "42000",
    1136: "21S01",
    1142: "42000",
    1146: "42S02",
    1193: "HY000",
    1205: "HY000",
    1213: "40001",
    1227: "42000",
    1235: "42000",
    1290: "HY000",
    1305: "42000",
    1396: "HY000",
    1406: "22001",
    1582: "42000",
    1451: "23000",
    1452: "23000",
}
