"""The statement compiler: a MySQL DML statement's shape -> :class:`Compiled` SQLite.

``sql.strip_literals`` turns a statement into a *shape* (literals replaced by placeholders);
:func:`compile_shape` translates a shape once per current database (DESIGN.md section 5: names
qualified with the current database, MySQL functions and syntax rewritten for SQLite, upserts,
multi-table UPDATE/DELETE, UPDATE/DELETE ... LIMIT) and caches the result in the engine, with
what the session needs to run it: its parameters, the tables it reads and writes (privilege
checks) and its result columns' MySQL types.  Plain multi-row INSERTs take a path without
sqlglot.  Each function takes the :class:`~pylamp.db.engine.Session` it compiles for as its
first argument; it reads the catalog through the session but runs no statement of the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from pylamp.db import sql as sqlmod
from pylamp.db.catalog import TableSpec, type_info
from pylamp.db.dbfiles import IDENT_PART
from pylamp.db.results import SERVER_VERSION, Column, SqlError
from pylamp.db.sql import Kind, Shape
from pylamp.db.values import sqlite_value

if TYPE_CHECKING:
    from pylamp.db.session import Session

__all__ = ["ColSource", "Compiled", "ShapeInfo", "compile_shape", "compile_text"]


_MAX_PARAMETERS = 30000  # SQLite allows 32766 parameters per statement
_MAX_CACHED_LITERALS = 2000
_PLACEHOLDER = re.compile(r":l(\d+)\b")
_ALL_DEFAULTS = re.compile(
    r"\s*(INSERT|REPLACE)(\s+IGNORE)?\s+(?:INTO\s+)?((?:`(?:[^`]|``)+`|[\w$]+)"
    r"(?:\.(?:`(?:[^`]|``)+`|[\w$]+))?)\s*(?:\(\s*\)\s*)?VALUES?\s*\(\s*\)\s*",
    re.I,
)
_IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z_$][\w$]*)"
_PLAIN_INSERT = re.compile(
    rf"\s*(INSERT|REPLACE)(\s+IGNORE)?\s+INTO\s+({_IDENT}(?:\.{_IDENT})?)\s*"
    rf"(?:\(\s*({_IDENT}(?:\s*,\s*{_IDENT})*)\s*\)\s*)?VALUES?\s*",
    re.I,
)
_PLAIN_VALUES = re.compile(r"(?:[\s(),-]+|:l\d+|NULL)*\s*", re.I)
_ROW = re.compile(r"\(([^()]*)\)")
_RENAMED_FUNCTIONS = re.compile(
    r"\b(DATE_FORMAT|STR_TO_DATE|RAND|UUID|LENGTH|FROM_UNIXTIME|TRUNCATE)\s*\(", re.I
)
_SQL_HINTS = re.compile(
    r"\b(?:SQL_CALC_FOUND_ROWS|SQL_NO_CACHE|SQL_CACHE|SQL_BUFFER_RESULT|HIGH_PRIORITY"
    r"|STRAIGHT_JOIN|SQL_SMALL_RESULT|SQL_BIG_RESULT)\b",
    re.I,
)


@dataclass(frozen=True)
class ColSource:
    name: str
    db: str | None = None
    table: str | None = None  # real table name
    alias: str | None = None  # name used in the query
    column: str | None = None
    decimal_scale: int | None = None  # SUM/MIN/MAX/AVG of a DECIMAL column
    count: bool = False  # COUNT(...): a BIGINT that is never NULL (MySQL flags it NOT_NULL)


@dataclass
class Compiled:
    """A MySQL statement shape translated to SQLite, with what the engine needs to run it."""

    sql: str
    kind: Kind
    params: tuple[tuple[str, str, Any], ...]  # (placeholder name, source, key)
    dbs: frozenset[str]
    reads: tuple[tuple[str | None, str], ...]
    target: tuple[str | None, str] | None
    columns: list[ColSource | None] | None  # SELECT projections; None entries -> infer
    star_expanded: bool = False
    verb: str = "SELECT"
    insert_columns: list[str] | None = None
    insert_rows: list[list[exp.Expression | str]] | None = None  # for duplicate-key messages
    info_schema: bool = False
    upsert: bool = False
    order: tuple[int, ...] = ()  # per "?" in ``sql``: its index in ``params``
    resolved: list[tuple[Column, Any] | str] | None = None
    cacheable_columns: bool = True
    auto_increment: bool | None = None
    """Whether an INSERT's table has an AUTO_INCREMENT column (found on its first run; DDL
    clears the cache of compiled statements)."""


@dataclass
class ShapeInfo:
    inline: tuple[int, ...]
    """Literals compiled in place rather than as parameters (sorted): part of the cache key."""
    cacheable: bool


_PARAM_OK_PARENTS = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Paren,
    exp.In,
    exp.Tuple,
    exp.Values,
    exp.Where,
    exp.Having,
    exp.Like,
    exp.ILike,
    exp.Between,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Neg,
    exp.Limit,
    exp.Offset,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Select,
    exp.Join,
    exp.Is,
    exp.Coalesce,
    exp.Concat,
    exp.If,
    exp.Case,
    exp.Subquery,
    exp.Union,
    exp.From,
    exp.Schema,
    exp.OnConflict,
    exp.Nullif,
    exp.Mod,
)


def _placeholder_ok(node: exp.Placeholder) -> bool:
    """Whether a literal placeholder may stay a SQLite parameter (else it is inlined)."""
    parent = node.parent
    child: exp.Expression = node
    while parent is not None:
        if isinstance(parent, exp.Select) and child in parent.expressions:
            return False  # a projection: its text is the column name
        if isinstance(parent, exp.Ordered | exp.Group | exp.Order):
            return False  # ORDER BY 1 is positional
        if not isinstance(parent, _PARAM_OK_PARENTS):
            return False
        child = parent
        parent = parent.parent
    return True


def compile_shape(session: Session, shape: Shape, kind: Kind, original: str = "") -> Compiled:
    engine = session.engine
    shape_key = (session.db, shape.text)
    info = engine.shape_info(shape_key)
    if info is not None:
        if not info.cacheable:
            return compile_text(session, sqlmod.restore(shape), kind)
        literals = shape.literals
        inline_vals = tuple(literals[i].value for i in info.inline) if info.inline else ()
        hit = engine.cached((session.db, shape.text, inline_vals))
        if hit is not None:
            return hit
    m = _ALL_DEFAULTS.fullmatch(shape.text)
    if m:
        return _compile_all_defaults(session, m)
    fast = _compile_plain_insert(session, shape)
    if fast is not None:
        if len(shape.literals) <= _MAX_CACHED_LITERALS:
            key = (session.db, shape.text, ())
            engine.remember(shape_key, ShapeInfo((), True), key, fast)
        return fast
    if len(shape.literals) > _MAX_PARAMETERS:
        # beyond SQLite's parameter limit: compile with the literals in place
        return compile_text(session, sqlmod.restore(shape), kind)
    try:
        tree = sqlmod.parse_mysql(_rename_functions(shape.text))
    except SqlError:
        engine.remember(shape_key, ShapeInfo((), False), None, None)
        return compile_text(session, sqlmod.restore(shape), kind)
    inline: set[int] = set()
    for ph in tree.find_all(exp.Placeholder):
        name = ph.name
        if name.startswith("l") and name[1:].isdigit() and not _placeholder_ok(ph):
            inline.add(int(name[1:]))
    if inline:
        # re-parse with those literals in place: sqlglot rewrites some literals while
        # parsing (DATE_FORMAT patterns, INTERVAL units), which a placeholder would skip
        text = _PLACEHOLDER.sub(
            lambda m: (
                shape.literals[int(m.group(1))].text if int(m.group(1)) in inline else m.group(0)
            ),
            shape.text,
        )
        tree = sqlmod.parse_mysql(_rename_functions(text))
    compiled = _translate(session, tree, kind, original or sqlmod.restore(shape))
    info = ShapeInfo(tuple(sorted(inline)), True)
    inline_vals = tuple(shape.literals[i].value for i in info.inline)
    if len(shape.literals) <= _MAX_CACHED_LITERALS:  # big one-off INSERTs stay out
        engine.remember(shape_key, info, (session.db, shape.text, inline_vals), compiled)
    return compiled


def _compile_plain_insert(session: Session, shape: Shape) -> Compiled | None:
    """``INSERT/REPLACE [IGNORE] INTO t [(cols)] VALUES (...), ...`` of plain values only
    (what PyMySQL's executemany and mysqldump send), translated without sqlglot: parsing a
    10,000-row INSERT would take seconds.  None for anything else."""
    m = _PLAIN_INSERT.match(shape.text)
    if m is None:
        return None
    rest = shape.text[m.end() :]
    if not _PLAIN_VALUES.fullmatch(rest):
        return None
    rows_text = _ROW.findall(rest)
    if not rows_text or _ROW.sub("", rest).replace(",", "").strip():
        return None
    parts = [sqlmod.unquote_ident(p) for p in IDENT_PART.findall(m.group(3))]
    db = parts[0] if len(parts) == 2 else session.db
    if db is None:
        raise SqlError(1046, "No database selected")
    table = parts[-1]
    if table.lower().startswith(("_pylamp_", "sqlite_")):
        raise SqlError(1146, f"Table '{db}.{table}' doesn't exist")
    columns = None
    if m.group(4) is not None:
        columns = [sqlmod.unquote_ident(c) for c in m.group(4).split(",")]
    params: list[tuple[str, str, Any]] = []
    rows: list[list[exp.Expression | str]] = []
    out_rows = []
    inline = len(shape.literals) > _MAX_PARAMETERS
    for row in rows_text:
        items = [item.strip() for item in row.split(",")]
        nodes: list[exp.Expression | str] = []  # "NULL", "l3", "-l3": cheap to keep
        out_items = []
        for item in items:
            neg = item.startswith("-")
            name = item.lstrip("-").strip()
            if name.upper() == "NULL":
                if neg:
                    return None
                nodes.append("NULL")
                out_items.append("NULL")
                continue
            if not name.startswith(":l"):
                return None
            nodes.append(("-" if neg else "") + name[1:])
            if inline:  # too many for SQLite's parameters: SQLite literals instead
                text = _sqlite_literal(shape.literals[int(name[2:])].value)
                out_items.append("-" + text if neg else text)
                continue
            params.append((name[1:], "l", int(name[2:])))
            out_items.append("-?" if neg else "?")
        rows.append(nodes)
        out_rows.append("(" + ", ".join(out_items) + ")")
    verb = m.group(1).upper()
    alternative = "OR REPLACE " if verb == "REPLACE" else ("OR IGNORE " if m.group(2) else "")
    cols_sql = ""
    if columns is not None:
        cols_sql = " (" + ", ".join('"' + c.replace('"', '""') + '"' for c in columns) + ")"
    sql = f'INSERT {alternative}INTO "{db}"."{table}"{cols_sql} VALUES ' + ", ".join(out_rows)
    return Compiled(
        sql=sql,
        kind=Kind.WRITE,
        params=tuple(params),
        dbs=frozenset({db}),
        reads=(),
        target=(db, table),
        columns=None,
        verb="INSERT",
        insert_columns=columns,
        insert_rows=rows,
        order=tuple(range(len(params))),
    )


def _compile_all_defaults(session: Session, m: re.Match[str]) -> Compiled:
    """``INSERT INTO t () VALUES ()`` (a row of defaults), which sqlglot cannot parse:
    SQLite spells it ``DEFAULT VALUES``."""
    parts = [sqlmod.unquote_ident(p) for p in re.findall(r"`(?:[^`]|``)+`|[^.`]+", m.group(3))]
    db = parts[0] if len(parts) == 2 else session.db
    if db is None:
        raise SqlError(1046, "No database selected")
    table = parts[-1]
    verb = "OR REPLACE " if m.group(1).upper() == "REPLACE" else ""
    if m.group(2):
        verb = "OR IGNORE "
    return Compiled(
        sql=f'INSERT {verb}INTO "{db}"."{table}" DEFAULT VALUES',
        kind=Kind.WRITE,
        params=(),
        dbs=frozenset({db}),
        reads=(),
        target=(db, table),
        columns=None,
        verb="INSERT",
    )


def compile_text(session: Session, text: str, kind: Kind) -> Compiled:
    return _translate(session, sqlmod.parse_mysql(_rename_functions(text)), kind, text)


def _translate(session: Session, tree: exp.Expression, kind: Kind, text: str = "") -> Compiled:
    """The MySQL -> SQLite transforms (DESIGN.md section 5) on a parsed DML statement;
    ``text`` is the statement as written (for the names of expression columns)."""
    if isinstance(tree, exp.Command) and tree.name.upper() == "REPLACE":
        tree = sqlmod.parse_mysql("INSERT" + tree.sql("mysql")[len("REPLACE") :])
        tree.set("alternative", "REPLACE")
    if isinstance(tree, exp.Delete) and (tree.args.get("tables") or tree.args.get("using")):
        tree = _multi_table_delete(tree)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    dbs: set[str] = set()
    reads: list[tuple[str | None, str]] = []
    target: tuple[str | None, str] | None = None
    target_node: exp.Table | None = None
    info_schema = False
    if isinstance(tree, exp.Insert):
        t = tree.this
        target_node = t.this if isinstance(t, exp.Schema) else t
        verb = "INSERT"
    elif isinstance(tree, exp.Update):
        target_node = tree.this
        verb = "UPDATE"
    elif isinstance(tree, exp.Delete):
        target_node = tree.this
        verb = "DELETE"
    elif isinstance(tree, exp.Query):
        verb = "SELECT"
    else:
        raise SqlError(1235, f"This version of MySQL doesn't yet support '{tree.key}'")
    if kind is Kind.WRITE and verb == "SELECT":
        kind = Kind.READ
    for table in tree.find_all(exp.Table):
        name = table.name
        if not name or (not table.args.get("db") and name.lower() in ctes | {"dual"}):
            continue
        if isinstance(table.this, exp.Func | exp.Anonymous):
            continue
        db = table.args.get("db")
        dbname = db.name if db is not None else session.db
        if dbname is None:
            if name.lower() == "dual":
                continue
            raise SqlError(1046, "No database selected")
        if name.lower().startswith(("_pylamp_", "sqlite_")):
            # the engine's own tables (catalog, positions) are not reachable from SQL
            raise SqlError(1146, f"Table '{dbname}.{name}' doesn't exist")
        if dbname.lower() == "information_schema":
            if table is target_node:
                raise SqlError(
                    1044,
                    f"Access denied for user '{session.user}'@'{session.host}' to database "
                    "'information_schema'",
                )
            info_schema = True
            continue
        if db is None:
            table.set("db", exp.to_identifier(dbname, quoted=True))
        dbs.add(dbname)
        if table is target_node:
            target = (dbname, name)
        else:
            reads.append((dbname, name))
    for table in list(tree.find_all(exp.Table)):
        if table.name.lower() == "dual" and table.args.get("db") is None:
            from_ = table.find_ancestor(exp.From)
            if from_ is not None:
                from_.pop()
    if isinstance(tree, exp.Update) and target is not None and target[0]:
        _add_on_update(session, tree, target[0], target[1])
    columns: list[ColSource | None] | None = None
    if isinstance(tree, exp.Query):
        columns = _result_sources(session, tree, sqlmod.projection_texts(text))
    _replace_functions(session, tree)
    params: list[tuple[str, str, Any]] = []
    seen: set[str] = set()
    for node in list(tree.find_all(exp.Placeholder, exp.Parameter, exp.SessionParameter)):
        if isinstance(node, exp.Placeholder):
            name = node.name
            if name.startswith("l") and name[1:].isdigit() and name not in seen:
                params.append((name, "l", int(name[1:])))
                seen.add(name)
        elif isinstance(node, exp.Parameter):
            var = node.name.lower()
            pname = "u_" + re.sub(r"\W", "_", var)
            node.replace(exp.Placeholder(this=pname))
            if pname not in seen:
                params.append((pname, "u", var))
                seen.add(pname)
        else:
            var = node.name.lower()
            kind_arg = node.args.get("kind")
            pname = "s_" + re.sub(r"\W", "_", var)
            node.replace(exp.Placeholder(this=pname))
            if pname not in seen:
                params.append((pname, "s", (str(kind_arg) + "." if kind_arg else "") + var))
                seen.add(pname)
    insert_columns = None
    insert_rows = None
    upsert = False
    if isinstance(tree, exp.Insert):
        insert_columns, insert_rows = _insert_shape(session, tree)
        upsert = _rewrite_upsert(session, tree)
    if isinstance(tree, exp.Update) and tree.this.args.get("joins"):
        _update_join(session, tree)
    if isinstance(tree, exp.Update | exp.Delete) and (
        tree.args.get("order") or tree.args.get("limit")
    ):
        tree = _rowid_limit(session, tree)
    # numbered parameters: SQLite looks named ones up linearly (quadratic for big INSERTs)
    sqlite_sql, order = _number_parameters(tree.sql("sqlite"), [p[0] for p in params])
    return Compiled(
        sql=sqlite_sql,
        order=order,
        kind=kind,
        params=tuple(params),
        dbs=frozenset(dbs),
        reads=tuple(reads),
        target=target,
        columns=columns,
        verb=verb,
        insert_columns=insert_columns,
        insert_rows=insert_rows,
        info_schema=info_schema,
        upsert=upsert,
    )


def _add_on_update(session: Session, tree: exp.Update, db: str, table: str) -> None:
    """``ON UPDATE CURRENT_TIMESTAMP`` columns get the statement's time when the UPDATE does
    not set them itself (the time comes from the statement, so a replay matches)."""
    spec = session._spec_or_none(db, table)
    if spec is None:
        return
    assigned = {eq.this.name.lower() for eq in tree.expressions if isinstance(eq, exp.EQ)}
    for col in spec.columns:
        if col.on_update and col.name.lower() not in assigned:
            tree.append(
                "expressions",
                exp.EQ(
                    this=exp.column(col.name, quoted=True),
                    expression=exp.Anonymous(this="pylamp_now", expressions=[]),
                ),
            )


def _replace_functions(session: Session, tree: exp.Expression) -> None:
    for node in list(tree.find_all(exp.CurrentSchema, exp.CurrentVersion, exp.Anonymous)):
        if isinstance(node, exp.CurrentSchema):
            node.replace(exp.Literal.string(session.db) if session.db else exp.Null())
        elif isinstance(node, exp.CurrentVersion):
            node.replace(exp.Literal.string(SERVER_VERSION))
        else:
            name = node.name.upper()
            if name in ("USER", "CURRENT_USER", "SESSION_USER", "SYSTEM_USER"):
                node.replace(exp.SessionParameter(this=exp.var("pylamp_user")))
            elif name == "CONNECTION_ID":
                node.replace(exp.SessionParameter(this=exp.var("pseudo_thread_id")))
            elif name in ("FOUND_ROWS", "ROW_COUNT"):
                node.replace(exp.Literal.number(0))
    arith: list[exp.Expression] = list(tree.find_all(exp.DateAdd, exp.DateSub, exp.Add, exp.Sub))
    for item in arith:
        if isinstance(item, exp.DateAdd | exp.DateSub):
            amount, unit = item.expression, item.text("unit") or "DAY"
        elif isinstance(item.expression, exp.Interval):
            amount, unit = item.expression.this, item.expression.text("unit") or "DAY"
        else:
            continue
        sign = -1 if isinstance(item, exp.DateSub | exp.Sub) else 1
        item.replace(
            exp.Anonymous(
                this="PYLAMP_DATE_ADD",
                expressions=[
                    item.this,
                    amount,
                    exp.Literal.string(unit.upper()),
                    exp.Literal.number(sign),
                ],
            )
        )
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name.upper() in ("ADDDATE", "SUBDATE") and len(node.expressions) == 2:
            sign = 1 if node.name.upper() == "ADDDATE" else -1
            node.replace(
                exp.Anonymous(
                    this="PYLAMP_DATE_ADD",
                    expressions=[
                        *node.expressions,
                        exp.Literal.string("DAY"),
                        exp.Literal.number(sign),
                    ],
                )
            )
    for rounded in list(tree.find_all(exp.Floor, exp.Ceil)):
        if not rounded.args.get("decimals"):
            # MySQL's FLOOR/CEIL of a number are integers (SQLite's are REAL)
            rounded.replace(exp.cast(rounded.copy(), exp.DataType.Type.BIGINT))
    for node in list(tree.find_all(exp.Left, exp.Right)):
        name = "MYSQL_LEFT" if isinstance(node, exp.Left) else "MYSQL_RIGHT"
        node.replace(exp.Anonymous(this=name, expressions=[node.this, node.expression]))
    for node in list(tree.find_all(exp.GroupConcat)):
        order = node.this
        if not isinstance(order, exp.Order):
            continue
        value = order.this
        distinct = 0
        if isinstance(value, exp.Distinct):
            distinct = 1
            value = value.expressions[0]
        first = order.expressions[0]
        key = first.this if isinstance(first, exp.Ordered) else first
        desc = 1 if isinstance(first, exp.Ordered) and first.args.get("desc") else 0
        sep = node.args.get("separator") or exp.Literal.string(",")
        node.replace(
            exp.Anonymous(
                this="PYLAMP_GROUP_CONCAT",
                expressions=[
                    value,
                    sep,
                    exp.Literal.number(distinct),
                    exp.Literal.number(desc),
                    key,
                ],
            )
        )
    for node in list(tree.find_all(exp.CurrentUser)):
        node.replace(exp.SessionParameter(this=exp.var("pylamp_user")))


def _result_sources(
    session: Session, tree: exp.Query, texts: list[str] | None = None
) -> list[ColSource | None] | None:
    if not isinstance(tree, exp.Select):
        return None
    if texts is not None and len(texts) != len(tree.expressions):
        texts = None
    tables: dict[str, tuple[str, str, TableSpec | None]] = {}
    order: list[str] = []
    from_ = tree.args.get("from_")
    direct = [from_.this] if from_ is not None else []
    direct += [j.this for j in tree.args.get("joins") or []]
    for table in direct:
        if not isinstance(table, exp.Table):
            return None
        db = table.args.get("db")
        if db is None:
            continue
        spec = session._spec_or_none(db.name, table.name)
        alias = table.alias_or_name
        tables[alias.lower()] = (db.name, table.name, spec)
        order.append(alias.lower())
    out: list[ColSource | None] = []
    for index, proj in enumerate(tree.expressions):
        if isinstance(proj, exp.Star):
            for alias in order:
                db, tname, spec = tables[alias]
                if spec is None:
                    return None
                for c in spec.columns:
                    out.append(ColSource(c.name, db, tname, alias, c.name))
            continue
        if isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
            entry = tables.get(proj.table.lower())
            if entry is None or entry[2] is None:
                return None
            for c in entry[2].columns:
                out.append(ColSource(c.name, entry[0], entry[1], proj.table, c.name))
            continue
        label = proj.alias_or_name
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(inner, exp.Column) and not isinstance(inner.this, exp.Star):
            found = _find_column(session, tables, order, inner.table, inner.name)
            if found is not None:
                db, tname, alias, cname = found
                out.append(ColSource(label, db, tname, alias, cname))
                continue
            out.append(ColSource(label))
            continue
        if isinstance(proj, exp.Alias):
            name = label
        elif texts is not None:
            name = _expression_name(texts[index])
        else:
            name = _mysql_text(proj)
        out.append(
            ColSource(
                name,
                decimal_scale=_aggregate_scale(session, inner, tables, order),
                count=isinstance(inner, exp.Count),
            )
        )
    return out


def _aggregate_scale(
    session: Session,
    node: exp.Expression,
    tables: dict[str, tuple[str, str, TableSpec | None]],
    order: list[str],
) -> int | None:
    """SUM/MIN/MAX (scale s) or AVG (s + 4, MySQL's div_precision_increment) of a
    DECIMAL(p, s) column: the result is a DECIMAL too, rounded back to exact digits."""
    if not isinstance(node, exp.Sum | exp.Min | exp.Max | exp.Avg):
        return None
    arg = node.this
    if not isinstance(arg, exp.Column) or isinstance(arg.this, exp.Star):
        return None
    found = _find_column(session, tables, order, arg.table, arg.name)
    if found is None:
        return None
    spec = tables[found[2]][2]
    col = spec.column(found[3]) if spec is not None else None
    scale = type_info(col.type).scale if col is not None else None
    if scale is None:
        return None
    return scale + 4 if isinstance(node, exp.Avg) else scale


def _find_column(
    session: Session,
    tables: dict[str, tuple[str, str, TableSpec | None]],
    order: list[str],
    qualifier: str,
    name: str,
) -> tuple[str, str, str, str] | None:
    candidates = [qualifier.lower()] if qualifier else order
    for alias in candidates:
        entry = tables.get(alias)
        if entry is None or entry[2] is None:
            continue
        col = entry[2].column(name)
        if col is not None:
            return entry[0], entry[1], alias, col.name
    return None


def _insert_shape(
    session: Session, tree: exp.Insert
) -> tuple[list[str] | None, list[list[exp.Expression | str]] | None]:
    schema = tree.this
    cols = [c.name for c in schema.expressions] if isinstance(schema, exp.Schema) else None
    values = tree.expression
    rows: list[list[exp.Expression | str]] | None = None
    if isinstance(values, exp.Values):
        # copies: the tree is rewritten afterwards (user variables become parameters)
        rows = [
            [r.copy() for r in (t.expressions if isinstance(t, exp.Tuple) else [t])]
            for t in values.expressions
        ]
    return cols, rows


def _rewrite_upsert(session: Session, tree: exp.Insert) -> bool:
    conflict = tree.args.get("conflict")
    if not isinstance(conflict, exp.OnConflict) or not conflict.args.get("duplicate"):
        return False
    # MySQL 8.0.19+ names the new row: INSERT ... VALUES (...) AS new ON DUPLICATE KEY
    # UPDATE b = new.b (SQLAlchemy emits this); SQLite calls it "excluded"
    row_alias = ""
    values_node = tree.expression
    if isinstance(values_node, exp.Values) and values_node.args.get("alias") is not None:
        row_alias = values_node.alias.lower()
        values_node.set("alias", None)
    sets = []
    for eq in conflict.expressions:
        for fn in list(eq.find_all(exp.Anonymous)):
            if fn.name.upper() == "VALUES" and fn.expressions:
                fn.replace(exp.column(fn.expressions[0].name, table="excluded"))
        if row_alias:
            for ref in list(eq.expression.find_all(exp.Column)):
                if ref.table.lower() == row_alias:
                    ref.set("table", exp.to_identifier("excluded"))
        for col in list(eq.find_all(exp.Column)):
            if col.table and col.table.lower() != "excluded" and col is eq.this:
                col.set("table", None)
                col.set("db", None)
        sets.append(eq)
    new = exp.OnConflict(expressions=sets, action=exp.var("DO UPDATE"))
    tree.set("conflict", new)
    values = tree.expression
    if isinstance(values, exp.Select) and not values.args.get("where"):
        values.where(exp.true(), copy=False)
    return True


def _update_join(session: Session, tree: exp.Update) -> None:
    """MySQL's ``UPDATE a JOIN b ON c SET ...`` as SQLite's ``UPDATE a SET ... FROM b WHERE
    c`` (inner joins only); assigned columns lose their table qualifier."""
    target = tree.this
    joins = target.args.pop("joins")
    if len(joins) > 1 or joins[0].side:
        raise SqlError(1235, "UPDATE with more than one JOIN or an outer JOIN is not supported")
    conditions = []
    if joins[0].args.get("on") is not None:
        conditions.append(joins[0].args["on"])
    tree.set("from_", exp.From(this=joins[0].this))
    where = tree.args.get("where")
    if where is not None:
        conditions.append(where.this)
    if conditions:
        tree.set("where", exp.Where(this=exp.and_(*conditions)))
    for eq in tree.expressions:
        if isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column):
            eq.this.set("table", None)


def _rowid_limit(session: Session, tree: exp.Update | exp.Delete) -> exp.Expression:
    table = tree.this
    sub = exp.select("rowid").from_(table.copy())
    where = tree.args.get("where")
    if where is not None:
        sub.set("where", where.copy())
    if tree.args.get("order"):
        sub.set("order", tree.args["order"].copy())
    if tree.args.get("limit"):
        sub.set("limit", tree.args["limit"].copy())
    tree.set("order", None)
    tree.set("limit", None)
    cond = exp.In(this=exp.column("rowid"), query=exp.Subquery(this=sub))
    tree.set("where", exp.Where(this=cond))
    return tree


def _multi_table_delete(tree: exp.Delete) -> exp.Delete:
    """MySQL's ``DELETE t FROM t JOIN u ON ... WHERE ...`` (one target) as
    ``DELETE FROM t WHERE rowid IN (SELECT t.rowid FROM t JOIN u ON ... WHERE ...)``."""
    targets = tree.args.get("tables") or []
    source = tree.this
    using = tree.args.get("using")
    if using:
        # DELETE FROM t USING t JOIN u ...: the target is ``this``, the join is in USING
        targets = [source]
        source = using[0] if isinstance(using, list) else using
    if len(targets) != 1 or not isinstance(source, exp.Table):
        raise SqlError(1235, "DELETE from more than one table is not supported")
    wanted = targets[0].name.lower()
    candidates = [source] + [j.this for j in source.args.get("joins") or []]
    real = next((t for t in candidates if t.alias_or_name.lower() == wanted), None)
    if not isinstance(real, exp.Table):
        raise SqlError(1109, f"Unknown table '{targets[0].name}' in MULTI DELETE")
    sub = exp.select(exp.column("rowid", table=real.alias_or_name)).from_(source.copy())
    if tree.args.get("where") is not None:
        sub.set("where", tree.args["where"].copy())
    target = exp.Table(this=real.this.copy(), db=real.args.get("db"))
    return exp.Delete(
        this=target,
        where=exp.Where(this=exp.In(this=exp.column("rowid"), query=exp.Subquery(this=sub))),
    )


_SQLITE_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|:([lus]_?\w+)")


def _sqlite_literal(value: Any) -> str:
    """SQLite source text for a literal value."""
    value = sqlite_value(value)
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes):
        return "X'" + value.hex() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def _number_parameters(sql: str, names: list[str]) -> tuple[str, tuple[int, ...]]:
    """Replace ``:name`` parameters (outside strings and quoted names) by anonymous ``?``;
    returns the SQL and, per ``?`` in order, the index of its name in ``names``.

    SQLite looks named and numbered parameters up linearly, which makes a 10,000-row INSERT
    take seconds; anonymous ones are free."""
    index = {name: i for i, name in enumerate(names)}
    order: list[int] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None or name not in index:
            return m.group(0)
        order.append(index[name])
        return "?"

    return _SQLITE_PARAM.sub(sub, sql), tuple(order)


def _rename_functions(shape_text: str) -> str:
    """Route MySQL functions whose sqlglot translation is lossy to our Python versions.

    Only applied to shapes (literals already taken out), so string contents are never touched.
    """
    if "SQL_" in shape_text or "_PRIORITY" in shape_text or "STRAIGHT_" in shape_text:
        shape_text = _SQL_HINTS.sub(" ", shape_text)
    if "(" not in shape_text:
        return shape_text
    return _RENAMED_FUNCTIONS.sub(lambda m: f"PYLAMP_{m.group(1).upper()}(", shape_text)


def _expression_name(text: str) -> str:
    """MySQL's name for an unaliased expression column: its text, a string literal's value."""
    m = re.fullmatch(r"'((?:[^'\\]|\\.|'')*)'|\"((?:[^\"\\]|\\.|\"\")*)\"", text)
    if m:
        body = m.group(1) if m.group(1) is not None else m.group(2)
        return sqlmod.unescape_string(body, "'" if m.group(1) is not None else '"')
    return text


def _mysql_text(node: exp.Expression) -> str:
    if isinstance(node, exp.CurrentSchema):
        return "DATABASE()"
    return node.sql("mysql").replace("PYLAMP_", "")
