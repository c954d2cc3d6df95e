"""MySQL DDL as catalog changes: CREATE TABLE and ALTER TABLE trees -> :class:`TableSpec`.

Pure functions over sqlglot trees and table specs; the engine turns the resulting spec into
SQLite tables (``catalog.sqlite_table_ddl``) and stores it in the database's catalog.
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp

from pylamp.db.catalog import ColumnSpec, ForeignKeySpec, IndexSpec, TableSpec
from pylamp.db.results import BINARY_CHARSET, Column, ColumnFlag, FieldType, SqlError

__all__ = ["add_index", "alter_spec", "key_part_name", "mysql_type_of", "spec_from_schema"]


_TYPE_NAMES = {
    FieldType.TINY: "tinyint",
    FieldType.SHORT: "smallint",
    FieldType.INT24: "mediumint",
    FieldType.LONG: "int",
    FieldType.LONGLONG: "bigint",
    FieldType.FLOAT: "float",
    FieldType.DOUBLE: "double",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
    FieldType.TIMESTAMP: "timestamp",
    FieldType.TIME: "time",
    FieldType.YEAR: "year",
    FieldType.JSON: "json",
}


def mysql_type_of(column: Column) -> str:
    """A MySQL column type for a result column (CREATE TABLE ... AS SELECT)."""
    code = column.type_code
    if code in _TYPE_NAMES:
        unsigned = " unsigned" if column.flags & ColumnFlag.UNSIGNED and code < 10 else ""
        return _TYPE_NAMES[code] + unsigned
    if code == FieldType.NEWDECIMAL:
        digits = max(column.length - (1 if column.decimals else 0) - 1, 1)
        return f"decimal({min(digits, 65)},{min(column.decimals, 30)})"
    if column.charset == BINARY_CHARSET:
        return "longblob"
    if code in (FieldType.VAR_STRING, FieldType.STRING) and 0 < column.length <= 4 * 16383:
        return f"varchar({max(column.length // 4, 1)})"
    return "longtext"


def _foreign_key(node: exp.ForeignKey, name: str, table: str, count: int) -> ForeignKeySpec:
    """A FOREIGN KEY clause; unnamed ones get MySQL's ``<table>_ibfk_<n>`` names."""
    reference = node.args.get("reference")
    target = reference.this if isinstance(reference, exp.Reference) else None
    if not isinstance(target, exp.Schema) or not isinstance(target.this, exp.Table):
        raise SqlError(1064, "FOREIGN KEY needs REFERENCES table (columns)")
    ref = target.this
    options = reference.args.get("options") if isinstance(reference, exp.Reference) else None
    return ForeignKeySpec(
        name=name or f"{table}_ibfk_{count + 1}",
        columns=[key_part_name(e) for e in node.expressions],
        ref_table=ref.name,
        ref_columns=[key_part_name(e) for e in target.expressions],
        ref_db=ref.args["db"].name if ref.args.get("db") is not None else "",
        actions=" ".join(str(o) for o in options or []).upper(),
    )


def key_part_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Ordered):
        node = node.this
    return node.name


def spec_from_schema(name: str, schema: exp.Schema, tree: exp.Create) -> TableSpec:
    columns: list[ColumnSpec] = []
    indexes: list[IndexSpec] = []
    foreign_keys: list[ForeignKeySpec] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            col, extra = _column_spec(item)
            columns.append(col)
            for idx in extra:
                _add_index_raw(indexes, idx)
        elif isinstance(item, exp.PrimaryKey):
            _add_index_raw(
                indexes,
                IndexSpec("PRIMARY", [key_part_name(e) for e in item.expressions], "PRIMARY"),
            )
        elif isinstance(item, exp.UniqueColumnConstraint):
            target = item.this
            cols = (
                [key_part_name(e) for e in target.expressions]
                if isinstance(target, exp.Schema)
                else []
            )
            idx_name = target.this.name if isinstance(target, exp.Schema) and target.this else ""
            _add_index_raw(indexes, IndexSpec(idx_name or cols[0], cols, "UNIQUE"))
        elif isinstance(item, exp.IndexColumnConstraint):
            cols = [key_part_name(e) for e in item.expressions]
            kind = str(item.args.get("kind") or "").upper()
            if kind in ("FULLTEXT", "SPATIAL"):
                continue
            idx_name = item.this.name if item.this else cols[0]
            _add_index_raw(
                indexes, IndexSpec(idx_name, cols, "UNIQUE" if kind == "UNIQUE" else "KEY")
            )
        elif isinstance(item, exp.Constraint):
            for sub in item.expressions:
                if isinstance(sub, exp.PrimaryKey):
                    _add_index_raw(
                        indexes,
                        IndexSpec(
                            "PRIMARY", [key_part_name(e) for e in sub.expressions], "PRIMARY"
                        ),
                    )
                elif isinstance(sub, exp.UniqueColumnConstraint):
                    target = sub.this
                    cols = (
                        [key_part_name(e) for e in target.expressions]
                        if isinstance(target, exp.Schema)
                        else []
                    )
                    _add_index_raw(indexes, IndexSpec(item.name or cols[0], cols, "UNIQUE"))
                elif isinstance(sub, exp.ForeignKey):
                    foreign_keys.append(_foreign_key(sub, item.name, name, len(foreign_keys)))
        elif isinstance(item, exp.ForeignKey):
            foreign_keys.append(_foreign_key(item, "", name, len(foreign_keys)))
    names = {c.name.lower() for c in columns}
    for idx in indexes:
        for c in idx.columns:
            if c.lower() not in names:
                raise SqlError(1072, f"Key column '{c}' doesn't exist in table")
    for idx in indexes:
        if idx.kind == "PRIMARY":
            for column in columns:
                if column.name.lower() in {x.lower() for x in idx.columns}:
                    column.nullable = False
    spec = TableSpec(name, columns, indexes, foreign_keys=foreign_keys)
    props = tree.args.get("properties")
    if props is not None:
        for p in props.expressions:
            if isinstance(p, exp.EngineProperty):
                spec.engine = p.name or "InnoDB"
            elif isinstance(p, exp.CharacterSetProperty):
                spec.charset = p.name or "utf8mb4"
    return spec


def _add_index_raw(indexes: list[IndexSpec], idx: IndexSpec) -> None:
    if idx.kind == "PRIMARY":
        if any(i.kind == "PRIMARY" for i in indexes):
            raise SqlError(1068, "Multiple primary key defined")
        indexes.insert(0, idx)
        return
    base = idx.name
    n = 2
    while any(i.name.lower() == idx.name.lower() for i in indexes):
        idx = IndexSpec(f"{base}_{n}", idx.columns, idx.kind)
        n += 1
    indexes.append(idx)


def add_index(spec: TableSpec, idx: IndexSpec) -> None:
    if idx.kind != "PRIMARY" and any(i.name.lower() == idx.name.lower() for i in spec.indexes):
        raise SqlError(1061, f"Duplicate key name '{idx.name}'")
    for c in idx.columns:
        if spec.column(c) is None:
            raise SqlError(1072, f"Key column '{c}' doesn't exist in table")
    _add_index_raw(spec.indexes, idx)


def _normalise_type(kind: exp.DataType) -> str:
    text = kind.sql("mysql").lower().replace(", ", ",")
    if text in ("boolean", "bool"):
        return "tinyint(1)"
    m = re.fullmatch(r"(int|smallint|mediumint|bigint)\(\d+\)(.*)", text)
    if m:
        text = m.group(1) + m.group(2)
    if text.startswith("integer"):
        text = "int" + text[len("integer") :]
    return text


def _column_spec(item: exp.ColumnDef) -> tuple[ColumnSpec, list[IndexSpec]]:
    kind = item.args.get("kind")
    mysql_type = _normalise_type(kind) if isinstance(kind, exp.DataType) else "text"
    col = ColumnSpec(item.name, mysql_type)
    extra: list[IndexSpec] = []
    for cons in item.args.get("constraints") or []:
        k = cons.args.get("kind")
        if isinstance(k, exp.NotNullColumnConstraint):
            col.nullable = bool(k.args.get("allow_null"))
        elif isinstance(k, exp.AutoIncrementColumnConstraint):
            col.auto_increment = True
        elif isinstance(k, exp.DefaultColumnConstraint):
            col.default = _default_text(k.this)
        elif isinstance(k, exp.OnUpdateColumnConstraint):
            col.on_update = "CURRENT_TIMESTAMP"
        elif isinstance(k, exp.CommentColumnConstraint):
            col.comment = k.this.name if isinstance(k.this, exp.Literal) else ""
        elif isinstance(k, exp.PrimaryKeyColumnConstraint):
            extra.append(IndexSpec("PRIMARY", [col.name], "PRIMARY"))
        elif isinstance(k, exp.UniqueColumnConstraint):
            extra.append(IndexSpec(col.name, [col.name], "UNIQUE"))
    if col.type == "serial":
        col.type = "bigint unsigned"
        col.auto_increment = True
        col.nullable = False
        extra.append(IndexSpec(col.name, [col.name], "UNIQUE"))
    return col, extra


def _default_text(node: exp.Expression) -> str:
    if isinstance(node, exp.Null):
        return "NULL"
    if isinstance(node, exp.CurrentTimestamp):
        return "CURRENT_TIMESTAMP"
    if isinstance(node, exp.Literal):
        if node.is_string:
            return "'" + node.this.replace("'", "''") + "'"
        return "'" + node.this + "'"
    if isinstance(node, exp.Boolean):
        return "'1'" if node.this else "'0'"
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return "'-" + node.this.this + "'"
    return "(" + node.sql("mysql") + ")"


def alter_spec(spec: TableSpec, action: exp.Expression, rename_to: str | None) -> str | None:
    if isinstance(action, exp.ColumnDef):
        col, extra = _column_spec(action)
        if spec.column(col.name) is not None:
            raise SqlError(1060, f"Duplicate column name '{col.name}'")
        position = action.args.get("position")
        _insert_column(spec, col, position)
        for idx in extra:
            add_index(spec, idx)
        return rename_to
    if isinstance(action, exp.Drop):
        kind = (action.args.get("kind") or "").upper()
        dropped = action.args.get("tables") or []
        name = dropped[0].name if dropped else (action.this.name if action.this else "")
        if kind in ("COLUMN", ""):
            if spec.column(name) is None:
                raise SqlError(1091, f"Can't DROP '{name}'; check that column/key exists")
            spec.columns = [c for c in spec.columns if c.name.lower() != name.lower()]
            for idx in spec.indexes:
                idx.columns = [c for c in idx.columns if c.lower() != name.lower()]
            spec.indexes = [i for i in spec.indexes if i.columns]
            spec.foreign_keys = [
                f for f in spec.foreign_keys if name.lower() not in {c.lower() for c in f.columns}
            ]
            return rename_to
        if kind == "FOREIGN KEY":
            before = len(spec.foreign_keys)
            spec.foreign_keys = [f for f in spec.foreign_keys if f.name.lower() != name.lower()]
            if len(spec.foreign_keys) == before:
                raise SqlError(1091, f"Can't DROP '{name}'; check that column/key exists")
            return rename_to
        if kind in ("INDEX", "KEY"):
            before = len(spec.indexes)
            spec.indexes = [i for i in spec.indexes if i.name.lower() != name.lower()]
            if len(spec.indexes) == before:
                raise SqlError(1091, f"Can't DROP '{name}'; check that column/key exists")
            return rename_to
        if kind == "PRIMARY KEY" or name.upper() == "PRIMARY":
            spec.indexes = [i for i in spec.indexes if i.kind != "PRIMARY"]
            return rename_to
    if isinstance(action, exp.AlterRename):
        return action.this.name
    if isinstance(action, exp.RenameColumn):
        old = action.this.name
        new = action.args["to"].name
        renamed = spec.column(old)
        if renamed is None:
            raise SqlError(1054, f"Unknown column '{old}' in '{spec.name}'")
        _rename_column(spec, renamed, new)
        return rename_to
    if isinstance(action, exp.AlterColumn):
        altered = spec.column(action.this.name)
        if altered is None:
            raise SqlError(1054, f"Unknown column '{action.this.name}' in '{spec.name}'")
        col = altered
        if action.args.get("drop"):
            col.default = None
        elif action.args.get("default") is not None:
            col.default = _default_text(action.args["default"])
        if isinstance(action.args.get("dtype"), exp.DataType):
            col.type = _normalise_type(action.args["dtype"])
        return rename_to
    if isinstance(action, exp.ModifyColumn):
        coldef = action.this
        old_name = action.args.get("rename_from")
        old_name = old_name.name if old_name is not None else coldef.name
        existing = spec.column(old_name)
        if existing is None:
            raise SqlError(1054, f"Unknown column '{old_name}' in '{spec.name}'")
        col, extra = _column_spec(coldef)
        if col.name.lower() != old_name.lower() and spec.column(col.name) is not None:
            raise SqlError(1060, f"Duplicate column name '{col.name}'")
        col_from = getattr(existing, "_from", existing.name)
        index = spec.columns.index(existing)
        spec.columns[index] = col
        object.__setattr__(col, "_from", col_from)
        for idx in spec.indexes:
            idx.columns = [col.name if c.lower() == old_name.lower() else c for c in idx.columns]
        for fk in spec.foreign_keys:
            fk.columns = [col.name if c.lower() == old_name.lower() else c for c in fk.columns]
        position = coldef.args.get("position")
        if position is not None:
            spec.columns.remove(col)
            _insert_column(spec, col, position)
        for idx in extra:
            add_index(spec, idx)
        return rename_to
    if isinstance(action, exp.AddConstraint | exp.Constraint):
        for sub in action.expressions or [action.this]:
            if isinstance(sub, exp.Constraint) and any(
                isinstance(e, exp.ForeignKey) for e in sub.expressions
            ):
                for fk in sub.expressions:
                    spec.foreign_keys.append(
                        _foreign_key(fk, sub.name, spec.name, len(spec.foreign_keys))
                    )
            elif isinstance(sub, exp.ForeignKey):
                spec.foreign_keys.append(_foreign_key(sub, "", spec.name, len(spec.foreign_keys)))
            else:
                _alter_add_index(spec, sub)
        return rename_to
    if isinstance(action, exp.IndexColumnConstraint | exp.UniqueColumnConstraint | exp.PrimaryKey):
        _alter_add_index(spec, action)
        return rename_to
    raise SqlError(
        1235, f"This version of MySQL doesn't yet support 'ALTER TABLE {action.sql('mysql')[:60]}'"
    )


def _alter_add_index(spec: TableSpec, item: exp.Expression) -> None:
    if isinstance(item, exp.PrimaryKey):
        add_index(
            spec, IndexSpec("PRIMARY", [key_part_name(e) for e in item.expressions], "PRIMARY")
        )
    elif isinstance(item, exp.UniqueColumnConstraint):
        target = item.this
        cols = (
            [key_part_name(e) for e in target.expressions] if isinstance(target, exp.Schema) else []
        )
        name = target.this.name if isinstance(target, exp.Schema) and target.this else cols[0]
        add_index(spec, IndexSpec(name, cols, "UNIQUE"))
    elif isinstance(item, exp.IndexColumnConstraint):
        cols = [key_part_name(e) for e in item.expressions]
        kind = str(item.args.get("kind") or "").upper()
        add_index(
            spec,
            IndexSpec(
                item.this.name if item.this else cols[0],
                cols,
                "UNIQUE" if kind == "UNIQUE" else "KEY",
            ),
        )
    else:
        raise SqlError(
            1235, f"This version of MySQL doesn't yet support '{item.sql('mysql')[:60]}'"
        )


def _insert_column(spec: TableSpec, col: ColumnSpec, position: Any) -> None:
    if position is None:
        spec.columns.append(col)
        return
    where = str(position.args.get("position") or "").upper()
    if where == "FIRST":
        spec.columns.insert(0, col)
        return
    # AFTER col: MySQL puts it after that column (kept, so SHOW CREATE matches)
    after = position.this.name if isinstance(position, exp.Expression) and position.this else ""
    for i, c in enumerate(spec.columns):
        if c.name.lower() == after.lower():
            spec.columns.insert(i + 1, col)
            return
    spec.columns.append(col)


def _rename_column(spec: TableSpec, col: ColumnSpec, new: str) -> None:
    old = col.name
    col.name = new
    object.__setattr__(col, "_from", old)
    for idx in spec.indexes:
        idx.columns = [new if c.lower() == old.lower() else c for c in idx.columns]
    for fk in spec.foreign_keys:
        fk.columns = [new if c.lower() == old.lower() else c for c in fk.columns]
