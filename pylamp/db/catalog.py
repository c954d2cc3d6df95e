"""The MySQL view of a table, which SQLite cannot keep: column types, keys, indexes.

SQLite stores only a type affinity per column, so each database file keeps a catalog table
(``_pylamp_tables``) with a :class:`TableSpec` per table as JSON.  From it come SHOW CREATE
TABLE, SHOW COLUMNS/DESCRIBE, the MySQL types of result columns, the SQLite DDL that stores the
table, and the key names in duplicate-entry errors.

Storage choices (see the README): integers as INTEGER; FLOAT/DOUBLE as REAL; DECIMAL as
NUMERIC affinity (exact for values of up to 15 significant digits, which covers DECIMAL(15, s)
money columns; results are scaled back to the declared decimals); character types as TEXT with
``COLLATE NOCASE`` (MySQL's default collations compare case-insensitively); binary types as
BLOB; dates and times as TEXT in MySQL's own formats.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pylamp.db.results import BINARY_CHARSET, Column, ColumnFlag, FieldType

__all__ = [
    "ColumnSpec",
    "ForeignKeySpec",
    "IndexSpec",
    "TableSpec",
    "TypeInfo",
    "convert_value",
    "quote_ident",
    "sqlite_table_ddl",
    "type_info",
]


@dataclass
class ColumnSpec:
    """One column as MySQL declares it."""

    name: str
    type: str  # MySQL type text, lower case: "int unsigned", "varchar(20)", "decimal(10,2)"
    nullable: bool = True
    default: str | None = None  # MySQL SQL text of the default ("'x'", "0", "CURRENT_TIMESTAMP")
    auto_increment: bool = False
    on_update: str | None = None
    comment: str = ""


@dataclass
class IndexSpec:
    """A named index: ``kind`` is "PRIMARY", "UNIQUE" or "KEY"."""

    name: str
    columns: list[str]
    kind: str = "KEY"


@dataclass
class ForeignKeySpec:
    """A FOREIGN KEY as declared: kept and shown (SHOW CREATE TABLE, reflection), not enforced."""

    name: str
    columns: list[str]
    ref_table: str
    ref_columns: list[str]
    ref_db: str = ""
    actions: str = ""  # "ON DELETE CASCADE ON UPDATE ..." as written


@dataclass
class TableSpec:
    """A table as MySQL would describe it."""

    name: str
    columns: list[ColumnSpec]
    indexes: list[IndexSpec] = field(default_factory=list)
    engine: str = "InnoDB"
    charset: str = "utf8mb4"
    foreign_keys: list[ForeignKeySpec] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TableSpec:
        data = json.loads(text)
        return cls(
            name=data["name"],
            columns=[ColumnSpec(**c) for c in data["columns"]],
            indexes=[IndexSpec(**i) for i in data["indexes"]],
            engine=data.get("engine", "InnoDB"),
            charset=data.get("charset", "utf8mb4"),
            foreign_keys=[ForeignKeySpec(**f) for f in data.get("foreign_keys", [])],
        )

    def column(self, name: str) -> ColumnSpec | None:
        lname = name.lower()
        for c in self.columns:
            if c.name.lower() == lname:
                return c
        return None

    @property
    def primary(self) -> list[str]:
        for idx in self.indexes:
            if idx.kind == "PRIMARY":
                return idx.columns
        return []

    def auto_increment_column(self) -> ColumnSpec | None:
        for c in self.columns:
            if c.auto_increment:
                return c
        return None

    def key_flags(self, column: str) -> int:
        flags = 0
        lname = column.lower()
        for idx in self.indexes:
            cols = [c.lower() for c in idx.columns]
            if lname not in cols:
                continue
            if idx.kind == "PRIMARY":
                flags |= ColumnFlag.PRI_KEY
            elif idx.kind == "UNIQUE" and len(cols) == 1:
                flags |= ColumnFlag.UNIQUE_KEY
            elif cols[0] == lname:
                flags |= ColumnFlag.MULTIPLE_KEY
        return flags

    def key_label(self, column: str) -> str:
        """DESCRIBE's Key column: PRI, UNI, MUL or ''."""
        flags = self.key_flags(column)
        if flags & ColumnFlag.PRI_KEY:
            return "PRI"
        if flags & ColumnFlag.UNIQUE_KEY:
            return "UNI"
        if flags & ColumnFlag.MULTIPLE_KEY:
            return "MUL"
        return ""

    def show_create(self) -> str:
        """MySQL's SHOW CREATE TABLE text (the layout SQLAlchemy's reflection parses)."""
        lines = []
        for c in self.columns:
            parts = [quote_ident(c.name), c.type]
            if not c.nullable:
                parts.append("NOT NULL")
            if c.default is not None:
                parts.append(f"DEFAULT {c.default}")
            elif c.nullable and not _is_blob(c.type):
                parts.append("DEFAULT NULL")
            if c.on_update:
                parts.append(f"ON UPDATE {c.on_update}")
            if c.auto_increment:
                parts.append("AUTO_INCREMENT")
            if c.comment:
                parts.append("COMMENT '" + c.comment.replace("'", "''") + "'")
            lines.append("  " + " ".join(parts))
        for idx in self.indexes:
            cols = ",".join(quote_ident(c) for c in idx.columns)
            if idx.kind == "PRIMARY":
                lines.append(f"  PRIMARY KEY ({cols})")
            elif idx.kind == "UNIQUE":
                lines.append(f"  UNIQUE KEY {quote_ident(idx.name)} ({cols})")
            else:
                lines.append(f"  KEY {quote_ident(idx.name)} ({cols})")
        for fk in self.foreign_keys:
            cols = ",".join(quote_ident(c) for c in fk.columns)
            refs = ",".join(quote_ident(c) for c in fk.ref_columns)
            table = quote_ident(fk.ref_table)
            if fk.ref_db:
                table = quote_ident(fk.ref_db) + "." + table
            line = (
                f"  CONSTRAINT {quote_ident(fk.name)} FOREIGN KEY ({cols}) "
                f"REFERENCES {table} ({refs})"
            )
            lines.append(line + (" " + fk.actions if fk.actions else ""))
        body = ",\n".join(lines)
        return (
            f"CREATE TABLE {quote_ident(self.name)} (\n{body}\n) "
            f"ENGINE={self.engine} DEFAULT CHARSET={self.charset}"
        )

    def result_column(self, column: ColumnSpec, db: str, label: str, table_alias: str) -> Column:
        """The result-set column definition for a table column."""
        info = type_info(column.type)
        flags = info.flags | self.key_flags(column.name)
        if not column.nullable:
            flags |= ColumnFlag.NOT_NULL
        if column.auto_increment:
            flags |= ColumnFlag.AUTO_INCREMENT
        return Column(
            name=label,
            type_code=info.type_code,
            flags=flags,
            length=info.length,
            decimals=info.decimals,
            table=table_alias,
            db=db,
            org_name=column.name,
            org_table=self.name,
            charset=info.charset,
        )


def quote_ident(name: str) -> str:
    """MySQL backtick quoting."""
    return "`" + name.replace("`", "``") + "`"


def _is_blob(mysql_type: str) -> bool:
    base = _base(mysql_type)
    return base.endswith("text") or base.endswith("blob") or base == "json"


def _base(mysql_type: str) -> str:
    m = re.match(r"[a-z_ ]+?(?=\(|$| unsigned| zerofill| signed)", mysql_type.lower())
    return (m.group(0) if m else mysql_type.lower()).strip()


@dataclass(frozen=True)
class TypeInfo:
    """How a MySQL type is stored in SQLite and described to clients."""

    sqlite_type: str
    type_code: int
    flags: int = 0
    length: int = 0
    decimals: int = 0
    charset: int = 255
    scale: int | None = None  # DECIMAL: digits after the point, for output formatting


_INT_TYPES = {
    "tinyint": (FieldType.TINY, 4),
    "bool": (FieldType.TINY, 1),
    "boolean": (FieldType.TINY, 1),
    "smallint": (FieldType.SHORT, 6),
    "mediumint": (FieldType.INT24, 9),
    "int": (FieldType.LONG, 11),
    "integer": (FieldType.LONG, 11),
    "bigint": (FieldType.LONGLONG, 20),
    "serial": (FieldType.LONGLONG, 20),
}
_TEXT_LIKE = {
    "tinytext": 255,
    "text": 65535,
    "mediumtext": 16777215,
    "longtext": 4294967295,
}
_BLOB_LIKE = {
    "tinyblob": 255,
    "blob": 65535,
    "mediumblob": 16777215,
    "longblob": 4294967295,
}
_type_cache: dict[str, TypeInfo] = {}


def type_info(mysql_type: str) -> TypeInfo:
    """Storage and protocol description of a MySQL column type text."""
    cached = _type_cache.get(mysql_type)
    if cached is not None:
        return cached
    info = _type_info(mysql_type.lower())
    _type_cache[mysql_type] = info
    return info


def _type_info(t: str) -> TypeInfo:
    base = _base(t)
    args = [a.strip() for a in re.findall(r"\(([^)]*)\)", t)[0].split(",")] if "(" in t else []
    unsigned = ColumnFlag.UNSIGNED if "unsigned" in t else 0
    num = ColumnFlag.NUM
    if base in _INT_TYPES:
        code, length = _INT_TYPES[base]
        if args and args[0].isdigit():
            length = int(args[0])
        return TypeInfo("INTEGER", code, num | unsigned, length, 0, BINARY_CHARSET)
    if base in ("float",):
        return TypeInfo("REAL", FieldType.FLOAT, num | unsigned, 12, 31, BINARY_CHARSET)
    if base in ("double", "real", "double precision"):
        return TypeInfo("REAL", FieldType.DOUBLE, num | unsigned, 22, 31, BINARY_CHARSET)
    if base in ("decimal", "numeric", "dec", "fixed"):
        precision = int(args[0]) if args and args[0].isdigit() else 10
        scale = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
        length = precision + (1 if scale else 0) + (0 if unsigned else 1)
        return TypeInfo(
            "NUMERIC", FieldType.NEWDECIMAL, num | unsigned, length, scale, BINARY_CHARSET, scale
        )
    if base == "bit":
        return TypeInfo("INTEGER", FieldType.BIT, ColumnFlag.UNSIGNED, int(args[0]) if args else 1)
    if base == "date":
        return TypeInfo("TEXT", FieldType.DATE, ColumnFlag.BINARY, 10, 0, BINARY_CHARSET)
    if base == "datetime":
        fsp = int(args[0]) if args else 0
        return TypeInfo(
            "TEXT", FieldType.DATETIME, ColumnFlag.BINARY, 19 + (fsp + 1 if fsp else 0), fsp, 63
        )
    if base == "timestamp":
        fsp = int(args[0]) if args else 0
        flags = ColumnFlag.BINARY | ColumnFlag.TIMESTAMP
        return TypeInfo("TEXT", FieldType.TIMESTAMP, flags, 19 + (fsp + 1 if fsp else 0), fsp, 63)
    if base == "time":
        return TypeInfo("TEXT", FieldType.TIME, ColumnFlag.BINARY, 10, 0, BINARY_CHARSET)
    if base == "year":
        return TypeInfo("INTEGER", FieldType.YEAR, num | ColumnFlag.UNSIGNED, 4, 0, 63)
    if base == "char":
        n = int(args[0]) if args and args[0].isdigit() else 1
        return TypeInfo("TEXT COLLATE NOCASE", FieldType.STRING, 0, n * 4)
    if base in ("varchar", "character varying", "nvarchar", "nchar"):
        n = int(args[0]) if args and args[0].isdigit() else 255
        return TypeInfo("TEXT COLLATE NOCASE", FieldType.VAR_STRING, 0, n * 4)
    if base in _TEXT_LIKE:
        return TypeInfo("TEXT COLLATE NOCASE", FieldType.BLOB, ColumnFlag.BLOB, _TEXT_LIKE[base])
    if base == "binary":
        n = int(args[0]) if args and args[0].isdigit() else 1
        return TypeInfo("BLOB", FieldType.STRING, ColumnFlag.BINARY, n, 0, BINARY_CHARSET)
    if base == "varbinary":
        n = int(args[0]) if args and args[0].isdigit() else 255
        return TypeInfo("BLOB", FieldType.VAR_STRING, ColumnFlag.BINARY, n, 0, BINARY_CHARSET)
    if base in _BLOB_LIKE:
        flags = ColumnFlag.BLOB | ColumnFlag.BINARY
        return TypeInfo("BLOB", FieldType.BLOB, flags, _BLOB_LIKE[base], 0, BINARY_CHARSET)
    if base == "enum":
        return TypeInfo("TEXT COLLATE NOCASE", FieldType.STRING, ColumnFlag.ENUM, 4 * 255)
    if base == "set":
        return TypeInfo("TEXT COLLATE NOCASE", FieldType.STRING, ColumnFlag.SET, 4 * 255)
    if base == "json":
        return TypeInfo("TEXT", FieldType.JSON, ColumnFlag.BLOB | ColumnFlag.BINARY, 2**32 - 1)
    return TypeInfo("TEXT", FieldType.VAR_STRING, 0, 255 * 4)


def convert_value(value: Any, info: TypeInfo) -> Any:
    """A stored SQLite value as the client should see it (DECIMAL scaled, exact)."""
    if value is None:
        return None
    if info.scale is not None and isinstance(value, int | float):
        try:
            dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            return dec.quantize(Decimal(1).scaleb(-info.scale))
        except InvalidOperation:
            return value
    return value


def _column_sql(c: ColumnSpec, inline_pk: bool) -> str:
    info = type_info(c.type)
    parts = [f'"{c.name}"', info.sqlite_type.split(" ")[0]]
    if inline_pk:
        parts.append("PRIMARY KEY AUTOINCREMENT" if c.auto_increment else "PRIMARY KEY")
    if not c.nullable:
        parts.append("NOT NULL")
    if c.default is not None and c.default.upper() != "NULL":
        parts.append("DEFAULT " + _default_sql(c.default))
    if "COLLATE" in info.sqlite_type:
        parts.append("COLLATE NOCASE")
    m = re.fullmatch(r"(?:var)?char\((\d+)\)", c.type)
    if m:
        # strict mode: MySQL refuses a longer string (error 1406), SQLite would store it
        parts.append(f'CHECK (length("{c.name}") <= {int(m.group(1))})')
    return " ".join(parts)


def _default_sql(default: str) -> str:
    upper = default.upper()
    if upper.startswith("CURRENT_TIMESTAMP") or upper.startswith("NOW("):
        # the statement's timestamp, set per statement by the engine (replays identically)
        return "(pylamp_now())"
    if default.startswith("'") and "\\" in default:
        body = default[1:-1].replace("\\'", "''").replace("\\\\", "\\")
        return "'" + body + "'"
    if re.fullmatch(r"-?[\d.]+(?:[eE][-+]?\d+)?|'(?:[^']|'')*'", default):
        return default
    return "(" + default + ")"


def sqlite_table_ddl(db: str, spec: TableSpec, table_name: str | None = None) -> list[str]:
    """SQLite statements that create ``spec`` in attached database ``db``."""
    name = table_name or spec.name
    pk = spec.primary
    inline = len(pk) == 1 and type_info(_col(spec, pk[0]).type).sqlite_type == "INTEGER"
    cols = [_column_sql(c, inline and c.name.lower() == pk[0].lower()) for c in spec.columns]
    if pk and not inline:
        cols.append("PRIMARY KEY (" + ", ".join(f'"{c}"' for c in pk) + ")")
    stmts = [f'CREATE TABLE "{db}"."{name}" (' + ", ".join(cols) + ")"]
    for idx in spec.indexes:
        if idx.kind == "PRIMARY":
            continue
        unique = "UNIQUE " if idx.kind == "UNIQUE" else ""
        stmts.append(
            f'CREATE {unique}INDEX "{db}"."{index_sqlite_name(name, idx.name)}" ON "{name}" ('
            + ", ".join(f'"{c}"' for c in idx.columns)
            + ")"
        )
    return stmts


def index_sqlite_name(table: str, index: str) -> str:
    """SQLite index names are per database, MySQL's per table: prefix the table."""
    return f"{table}.{index}"


def _col(spec: TableSpec, name: str) -> ColumnSpec:
    col = spec.column(name)
    if col is None:
        raise KeyError(name)
    return col
