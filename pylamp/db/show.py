"""SHOW statements (with DESCRIBE, EXPLAIN and SHOW ... WHERE) and the in-memory
``information_schema``.

What clients and tools (the mysql client, mysqldump, ORMs) ask the server about its databases,
tables, columns, indexes, variables and grants, answered from the engine's catalog
(:class:`~pylamp.db.catalog.TableSpec`) and the session's state.  Each function takes the
:class:`~pylamp.db.engine.Session` it runs in as its first argument; none writes a user
database.  ``information_schema`` is a per-session in-memory SQLite database, refilled before
each statement that reads it, so that DML compiled by the engine can query it like any other.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

from pylamp.db import sql as sqlmod
from pylamp.db.accounts import ALL_PRIVILEGES, has_all_db_privileges, parse_account
from pylamp.db.catalog import TableSpec, type_info
from pylamp.db.errors import map_error
from pylamp.db.results import BINARY_CHARSET, Column, ColumnFlag, FieldType, ResultSet, SqlError
from pylamp.db.values import sqlite_value, text_result
from pylamp.db.variables import variable

if TYPE_CHECKING:
    from pylamp.db.session import Session

__all__ = ["execute_show", "fill_information_schema"]


_INFO_SCHEMA_EMPTY: dict[str, list[str]] = {
    # always empty here, but clients (mysqldump) query them
    "FILES": [
        "FILE_ID",
        "FILE_NAME",
        "FILE_TYPE",
        "TABLESPACE_NAME",
        "TABLE_CATALOG",
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "LOGFILE_GROUP_NAME",
        "LOGFILE_GROUP_NUMBER",
        "ENGINE",
        "FULLTEXT_KEYS",
        "DELETED_ROWS",
        "UPDATE_COUNT",
        "FREE_EXTENTS",
        "TOTAL_EXTENTS",
        "EXTENT_SIZE",
        "INITIAL_SIZE",
        "MAXIMUM_SIZE",
        "AUTOEXTEND_SIZE",
        "CREATION_TIME",
        "LAST_UPDATE_TIME",
        "LAST_ACCESS_TIME",
        "RECOVER_TIME",
        "TRANSACTION_COUNTER",
        "VERSION",
        "ROW_FORMAT",
        "TABLE_ROWS",
        "AVG_ROW_LENGTH",
        "DATA_LENGTH",
        "MAX_DATA_LENGTH",
        "INDEX_LENGTH",
        "DATA_FREE",
        "CREATE_TIME",
        "UPDATE_TIME",
        "CHECK_TIME",
        "CHECKSUM",
        "STATUS",
        "EXTRA",
    ],
    "ROUTINES": ["ROUTINE_SCHEMA", "ROUTINE_NAME", "ROUTINE_TYPE", "ROUTINE_DEFINITION"],
    "TRIGGERS": ["TRIGGER_SCHEMA", "TRIGGER_NAME", "EVENT_OBJECT_SCHEMA", "EVENT_OBJECT_TABLE"],
    "VIEWS": ["TABLE_SCHEMA", "TABLE_NAME", "VIEW_DEFINITION"],
    "PARTITIONS": ["TABLE_SCHEMA", "TABLE_NAME", "PARTITION_NAME", "TABLESPACE_NAME"],
    "EVENTS": ["EVENT_SCHEMA", "EVENT_NAME"],
}

_INFO_SCHEMA: dict[str, list[str]] = {
    "SCHEMATA": [
        "CATALOG_NAME",
        "SCHEMA_NAME",
        "DEFAULT_CHARACTER_SET_NAME",
        "DEFAULT_COLLATION_NAME",
        "SQL_PATH",
    ],
    "TABLES": [
        "TABLE_CATALOG",
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "TABLE_TYPE",
        "ENGINE",
        "VERSION",
        "ROW_FORMAT",
        "TABLE_ROWS",
        "AUTO_INCREMENT",
        "CREATE_TIME",
        "TABLE_COLLATION",
        "TABLE_COMMENT",
    ],
    "COLUMNS": [
        "TABLE_CATALOG",
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "COLUMN_NAME",
        "ORDINAL_POSITION",
        "COLUMN_DEFAULT",
        "IS_NULLABLE",
        "DATA_TYPE",
        "CHARACTER_MAXIMUM_LENGTH",
        "NUMERIC_PRECISION",
        "NUMERIC_SCALE",
        "COLUMN_TYPE",
        "COLUMN_KEY",
        "EXTRA",
        "COLUMN_COMMENT",
        "CHARACTER_SET_NAME",
        "COLLATION_NAME",
        "GENERATION_EXPRESSION",
        "PRIVILEGES",
    ],
    "STATISTICS": [
        "TABLE_CATALOG",
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "NON_UNIQUE",
        "INDEX_SCHEMA",
        "INDEX_NAME",
        "SEQ_IN_INDEX",
        "COLUMN_NAME",
        "INDEX_TYPE",
    ],
    "KEY_COLUMN_USAGE": [
        "CONSTRAINT_CATALOG",
        "CONSTRAINT_SCHEMA",
        "CONSTRAINT_NAME",
        "TABLE_CATALOG",
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "COLUMN_NAME",
        "ORDINAL_POSITION",
        "REFERENCED_TABLE_SCHEMA",
        "REFERENCED_TABLE_NAME",
        "REFERENCED_COLUMN_NAME",
    ],
}


def fill_information_schema(session: Session) -> None:
    """(Re)build the in-memory ``information_schema`` (SCHEMATA, TABLES, COLUMNS,
    STATISTICS, KEY_COLUMN_USAGE) from the catalogs of the databases this user may see."""
    conn = session._conn
    if not session._info_attached:
        for name, cols in (_INFO_SCHEMA | _INFO_SCHEMA_EMPTY).items():
            conn.execute(f"CREATE TABLE information_schema.{name} ({', '.join(cols)})")
        session._info_attached = True
    for name in _INFO_SCHEMA:
        conn.execute(f"DELETE FROM information_schema.{name}")
    rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _INFO_SCHEMA}
    rows["SCHEMATA"].append(("def", "information_schema", "utf8mb3", "utf8mb3_general_ci", None))
    for db in _visible_dbs(session):
        rows["SCHEMATA"].append(("def", db, "utf8mb4", "utf8mb4_general_ci", None))
        session._attach(db)
        specs = [
            TableSpec.from_json(r[0])
            for r in conn.execute(f'SELECT spec FROM "{db}"._pylamp_tables ORDER BY name')
        ]
        for spec in specs:
            rows["TABLES"].append(
                (
                    "def",
                    db,
                    spec.name,
                    "BASE TABLE",
                    spec.engine,
                    10,
                    "Dynamic",
                    None,
                    None,
                    None,
                    "utf8mb4_general_ci",
                    "",
                )
            )
            for pos, c in enumerate(spec.columns, 1):
                info = type_info(c.type)
                base = re.match(r"[a-z]+", c.type)
                default = c.default
                if default is not None and default.startswith("'"):
                    default = sqlmod.unescape_string(default[1:-1], "'")
                extra = "auto_increment" if c.auto_increment else ""
                rows["COLUMNS"].append(
                    (
                        "def",
                        db,
                        spec.name,
                        c.name,
                        pos,
                        default,
                        "YES" if c.nullable else "NO",
                        base.group(0) if base else c.type,
                        info.length if info.charset != BINARY_CHARSET else None,
                        info.length if info.charset == BINARY_CHARSET else None,
                        info.decimals if info.scale is not None else None,
                        c.type,
                        spec.key_label(c.name),
                        extra,
                        c.comment,
                        "utf8mb4" if info.charset != BINARY_CHARSET else None,
                        "utf8mb4_general_ci" if info.charset != BINARY_CHARSET else None,
                        "",
                        "select,insert,update,references",
                    )
                )
            for idx in spec.indexes:
                for seq, col in enumerate(idx.columns, 1):
                    rows["STATISTICS"].append(
                        (
                            "def",
                            db,
                            spec.name,
                            0 if idx.kind != "KEY" else 1,
                            db,
                            idx.name,
                            seq,
                            col,
                            "BTREE",
                        )
                    )
                    if idx.kind != "KEY":
                        rows["KEY_COLUMN_USAGE"].append(
                            (
                                "def",
                                db,
                                idx.name,
                                "def",
                                db,
                                spec.name,
                                col,
                                seq,
                                None,
                                None,
                                None,
                            )
                        )
    for name, values in rows.items():
        if values:
            marks = ", ".join("?" * len(values[0]))
            conn.executemany(f"INSERT INTO information_schema.{name} VALUES ({marks})", values)


def execute_show(session: Session, stmt: str) -> ResultSet:
    text = stmt.strip().rstrip(";").strip()
    m = re.fullmatch(r"(SHOW\s.+?)\s+WHERE\s+(.+)", text, re.I | re.S)
    if m:
        return _where(session, execute_show(session, m.group(1)), m.group(2))
    m = re.fullmatch(r"(?:DESCRIBE|DESC|EXPLAIN)\s+(\S+)(?:\s+\S+)?", text, re.I)
    if m and not re.match(r"(?:DESCRIBE|DESC|EXPLAIN)\s+(SELECT|WITH)\b", text, re.I):
        return _show_columns(session, m.group(1), None, full=False)
    if re.match(r"EXPLAIN\b", text, re.I):
        return text_result(["id", "detail"], [])
    m = re.fullmatch(r"SHOW\s+(?:SCHEMAS|DATABASES)(?:\s+LIKE\s+(.+))?", text, re.I)
    if m:
        names = ["information_schema", *_visible_dbs(session)]
        return _show_list(["Database"], [(n,) for n in names], m.group(1))
    m = re.fullmatch(
        r"SHOW\s+(FULL\s+)?TABLES(?:\s+(?:FROM|IN)\s+(\S+))?(?:\s+LIKE\s+(.+))?",
        text,
        re.I | re.S,
    )
    if m:
        return _show_tables(session, m.group(2), m.group(3), full=m.group(1) is not None)
    m = re.fullmatch(
        r"SHOW\s+(FULL\s+)?(?:COLUMNS|FIELDS)\s+(?:FROM|IN)\s+(\S+)"
        r"(?:\s+(?:FROM|IN)\s+(\S+))?(?:\s+LIKE\s+(.+))?",
        text,
        re.I,
    )
    if m:
        table = m.group(2) if m.group(3) is None else f"{m.group(3)}.{m.group(2)}"
        return _show_columns(session, table, m.group(4), full=m.group(1) is not None)
    m = re.fullmatch(r"SHOW\s+CREATE\s+TABLE\s+(\S+)", text, re.I)
    if m:
        db, spec = _lookup_table(session, m.group(1))
        session._require_table("SELECT", db, spec.name)
        return text_result(["Table", "Create Table"], [(spec.name, spec.show_create())])
    m = re.fullmatch(r"SHOW\s+CREATE\s+(?:DATABASE|SCHEMA)\s+(\S+)", text, re.I)
    if m:
        name = sqlmod.unquote_ident(m.group(1))
        if not session.engine.db_exists(name):
            raise SqlError(1049, f"Unknown database '{name}'")
        ddl = f"CREATE DATABASE `{name}` /*!40100 DEFAULT CHARACTER SET utf8mb4 */"
        return text_result(["Database", "Create Database"], [(name, ddl)])
    m = re.fullmatch(
        r"SHOW\s+(?:(GLOBAL|SESSION|LOCAL)\s+)?VARIABLES(?:\s+LIKE\s+(.+))?",
        text,
        re.I | re.S,
    )
    if m:
        rows = [(k, _show_value(variable(session, k))) for k in sorted(_all_variables(session))]
        return _show_list(["Variable_name", "Value"], rows, m.group(2))
    m = re.fullmatch(r"SHOW\s+(?:(?:GLOBAL|SESSION)\s+)?STATUS(?:\s+LIKE\s+(.+))?", text, re.I)
    if m:
        status = dict(session.engine.status)
        status["Uptime"] = int(session.engine.clock() - session.engine.started)
        status["Threads_connected"] = 1
        rows = [(k, str(v)) for k, v in sorted(status.items())]
        return _show_list(["Variable_name", "Value"], rows, m.group(1))
    if re.fullmatch(r"SHOW\s+(?:WARNINGS|ERRORS)(?:\s+LIMIT\s+.*)?", text, re.I):
        warn_rows: list[tuple[Any, ...]] = [tuple(w) for w in session.warnings]
        return ResultSet(
            [
                Column("Level", FieldType.VAR_STRING, length=28),
                Column("Code", FieldType.LONG, ColumnFlag.NUM, 4, charset=BINARY_CHARSET),
                Column("Message", FieldType.VAR_STRING, length=2048),
            ],
            warn_rows,
        )
    if re.fullmatch(r"SHOW\s+(?:FULL\s+)?PROCESSLIST", text, re.I):
        return text_result(
            ["Id", "User", "Host", "db", "Command", "Time", "State", "Info"],
            [(session.connection_id, session.user, session.host, session.db, "Query", 0, "", text)],
        )
    m = re.fullmatch(r"SHOW\s+(?:INDEX|INDEXES|KEYS)\s+(?:FROM|IN)\s+(\S+)", text, re.I)
    if m:
        return _show_index(session, m.group(1))
    m = re.fullmatch(r"SHOW\s+GRANTS(?:\s+FOR\s+(.+))?", text, re.I)
    if m:
        return _show_grants(session, m.group(1))
    if re.fullmatch(r"SHOW\s+COLLATION(?:\s+.*)?", text, re.I | re.S):
        return text_result(
            ["Collation", "Charset", "Id", "Default", "Compiled", "Sortlen"],
            [
                ("utf8mb4_general_ci", "utf8mb4", 45, "Yes", "Yes", 1),
                ("utf8mb4_bin", "utf8mb4", 46, "", "Yes", 1),
                ("utf8mb4_0900_ai_ci", "utf8mb4", 255, "", "Yes", 0),
                ("utf8mb3_general_ci", "utf8mb3", 33, "Yes", "Yes", 1),
                ("latin1_swedish_ci", "latin1", 8, "Yes", "Yes", 1),
                ("binary", "binary", 63, "Yes", "Yes", 1),
            ],
        )
    if re.fullmatch(r"SHOW\s+(?:CHARACTER\s+SET|CHARSET)(?:\s+.*)?", text, re.I | re.S):
        return text_result(
            ["Charset", "Description", "Default collation", "Maxlen"],
            [("utf8mb4", "UTF-8 Unicode", "utf8mb4_general_ci", 4)],
        )
    if re.fullmatch(r"SHOW\s+(?:STORAGE\s+)?ENGINES", text, re.I):
        return text_result(
            ["Engine", "Support", "Comment", "Transactions", "XA", "Savepoints"],
            [("InnoDB", "DEFAULT", "SQLite underneath", "YES", "NO", "NO")],
        )
    if re.fullmatch(r"SHOW\s+(?:TABLE\s+STATUS|TRIGGERS|EVENTS|PLUGINS)(?:\s+.*)?", text, re.I):
        return text_result(["Name"], [])
    if re.fullmatch(r"SHOW\s+(?:PROCEDURE|FUNCTION)\s+STATUS(?:\s+.*)?", text, re.I):
        return text_result(["Db", "Name", "Type"], [])
    raise sqlmod.syntax_error(text)


def _visible_dbs(session: Session) -> list[str]:
    session._refresh_privileges()
    names = session.engine.databases()
    if session._privs.get("*"):
        return names
    return [n for n in names if session._privs.get(n) or session._privs.get(n.lower())]


def _all_variables(session: Session) -> set[str]:
    names = set(session.engine.variables) | set(session.session_vars)
    names.discard("last_insert_id")
    names.discard("identity")
    return names


def _where(session: Session, result: ResultSet, condition: str) -> ResultSet:
    """SHOW ... WHERE cond: the condition (MySQL syntax, on the result's column names) is
    evaluated by SQLite over the rows."""
    if not result.rows:
        return result
    tree = sqlmod.parse_mysql("SELECT 1 WHERE " + condition)
    where = tree.args.get("where")
    if where is None:
        raise sqlmod.syntax_error(condition)
    names = ", ".join('"' + c.name.replace('"', '""') + '"' for c in result.columns)
    width = len(result.columns) + 1
    values = ", ".join("(" + ", ".join("?" * width) + ")" for _ in result.rows)
    sql = (
        f"WITH x(__i, {names}) AS (VALUES {values}) "
        f"SELECT __i FROM x WHERE {where.this.sql('sqlite')}"
    )
    flat = [sqlite_value(v) for i, row in enumerate(result.rows) for v in (i, *row)]
    try:
        keep = [r[0] for r in session._conn.execute(sql, flat).fetchall()]
    except sqlite3.Error as e:
        raise map_error(session, e, None) from None
    return ResultSet(result.columns, [result.rows[i] for i in keep])


def _show_list(names: list[str], rows: list[tuple[Any, ...]], like: str | None) -> ResultSet:
    if like:
        pattern = sqlmod.unescape_string(like.strip()[1:-1], like.strip()[0])
        regex = re.compile(
            "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern),
            re.I | re.S,
        )
        rows = [r for r in rows if regex.fullmatch(str(r[0]))]
    return text_result(names, rows)


def _show_tables(session: Session, db: str | None, like: str | None, *, full: bool) -> ResultSet:
    dbname = sqlmod.unquote_ident(db) if db else session.db
    if dbname is None:
        raise SqlError(1046, "No database selected")
    if not session.engine.db_exists(dbname):
        raise SqlError(1049, f"Unknown database '{dbname}'")
    session._check_db_access(dbname)
    session._attach(dbname)
    names = [
        r[0]
        for r in session._conn.execute(
            f'SELECT name FROM "{dbname}"._pylamp_tables ORDER BY name'
        ).fetchall()
    ]
    header = [f"Tables_in_{dbname}"]
    if full:
        return _show_list([*header, "Table_type"], [(n, "BASE TABLE") for n in names], like)
    return _show_list(header, [(n,) for n in names], like)


def _lookup_table(session: Session, ref: str) -> tuple[str, TableSpec]:
    parts = [sqlmod.unquote_ident(p) for p in re.findall(r"`(?:[^`]|``)+`|[^.]+", ref)]
    if len(parts) == 2:
        db, name = parts
    else:
        if session.db is None:
            raise SqlError(1046, "No database selected")
        db, name = session.db, parts[0]
    if not session.engine.db_exists(db):
        raise SqlError(1049, f"Unknown database '{db}'")
    session._attach(db)
    spec = session.engine.table_spec(session._conn, db, name)
    if spec is None:
        raise SqlError(1146, f"Table '{db}.{name}' doesn't exist")
    return db, spec


def _show_columns(session: Session, ref: str, like: str | None, *, full: bool) -> ResultSet:
    db, spec = _lookup_table(session, ref)
    session._require_table("SELECT", db, spec.name)
    rows = []
    for c in spec.columns:
        extra = "auto_increment" if c.auto_increment else ""
        if c.on_update:
            extra = (extra + " on update " + c.on_update).strip()
        default = c.default
        if default is not None and default.startswith("'"):
            default = sqlmod.unescape_string(default[1:-1], "'")
        elif default is not None and default.upper() == "NULL":
            default = None
        row: tuple[Any, ...] = (
            c.name,
            c.type,
            "YES" if c.nullable else "NO",
            spec.key_label(c.name),
            default,
            extra,
        )
        if full:
            row = (*row[:2], None, *row[2:], "select,insert,update,references", c.comment)
        rows.append(row)
    names = ["Field", "Type", "Null", "Key", "Default", "Extra"]
    if full:
        names = [
            "Field",
            "Type",
            "Collation",
            "Null",
            "Key",
            "Default",
            "Extra",
            "Privileges",
            "Comment",
        ]
    result = _show_list(names, rows, like)
    cols = [Column(n, FieldType.VAR_STRING, length=256) for n in names]
    return ResultSet(cols, result.rows)


def _show_index(session: Session, ref: str) -> ResultSet:
    _db, spec = _lookup_table(session, ref)
    rows = []
    for idx in spec.indexes:
        for seq, col in enumerate(idx.columns, 1):
            c = spec.column(col)
            rows.append(
                (
                    spec.name,
                    0 if idx.kind in ("PRIMARY", "UNIQUE") else 1,
                    idx.name,
                    seq,
                    col,
                    "A",
                    0,
                    None,
                    None,
                    "YES" if c is not None and c.nullable else "",
                    "BTREE",
                    "",
                    "",
                    "YES",
                    None,
                )
            )
    names = [
        "Table",
        "Non_unique",
        "Key_name",
        "Seq_in_index",
        "Column_name",
        "Collation",
        "Cardinality",
        "Sub_part",
        "Packed",
        "Null",
        "Index_type",
        "Comment",
        "Index_comment",
        "Visible",
        "Expression",
    ]
    return text_result(names, rows)


def _show_grants(session: Session, who: str | None) -> ResultSet:
    account = session.account
    if who and who.strip().upper() not in ("CURRENT_USER", "CURRENT_USER()"):
        account = parse_account(who)
        if account != session.account:
            session._require_global("CREATE USER")
    privs = session.engine.accounts.privileges(account)
    rows = []
    for db, names in sorted(privs.items()):
        grant_option = "GRANT OPTION" in names
        names = names - {"GRANT OPTION"}
        if set(ALL_PRIVILEGES) <= names or (db != "*" and has_all_db_privileges(names)):
            text = "ALL PRIVILEGES"
        else:
            text = ", ".join(sorted(names)) or "USAGE"
        on = "*.*" if db == "*" else f"`{db}`.*"
        line = f"GRANT {text} ON {on} TO {account}"
        if grant_option:
            line += " WITH GRANT OPTION"
        rows.append((line,))
    if not rows:
        rows.append((f"GRANT USAGE ON *.* TO {account}",))
    return text_result([f"Grants for {account.user}@{account.host}"], rows)


def _show_value(value: Any) -> str:
    return "" if value is None else str(value)
