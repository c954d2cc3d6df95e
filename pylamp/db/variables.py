"""Server and session variables: MySQL's defaults, ``SET``, and reading ``@@name``.

The engine starts from :data:`DEFAULT_VARIABLES` (what clients and connectors query at
connect: version, sql_mode, character sets, isolation level, ...); a session's ``SET`` changes
its own copy, ``SET GLOBAL`` (with SUPER) the engine's.  ``autocommit``, ``last_insert_id`` and
a few others live in session attributes and are read and written through here.  Each function
takes the :class:`~pylamp.db.engine.Session` as its first argument.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from pylamp.db import sql as sqlmod
from pylamp.db.results import SERVER_VERSION, Ok, ResultSet, SqlError
from pylamp.db.sql import Kind
from pylamp.db.values import number

if TYPE_CHECKING:
    from pylamp.db.session import Session

__all__ = ["DEFAULT_VARIABLES", "execute_set", "variable"]


DEFAULT_VARIABLES: dict[str, Any] = {
    "version": SERVER_VERSION,
    "version_comment": "pylamp (MySQL protocol over SQLite)",
    "version_compile_os": "Linux",
    "version_compile_machine": "x86_64",
    "protocol_version": 10,
    "port": 3306,
    "hostname": "localhost",
    "server_id": 1,
    "log_bin": "OFF",
    "binlog_format": "STATEMENT",
    "sync_binlog": 1,
    "max_binlog_size": 1073741824,
    "autocommit": 1,
    "sql_mode": "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
    "lower_case_table_names": 0,
    "max_allowed_packet": 67108864,
    "max_connections": 151,
    "sql_notes": 1,
    "sql_quote_show_create": 1,
    "sql_log_bin": 1,
    "old_passwords": 0,
    "thread_cache_size": 9,
    "table_open_cache": 4000,
    "innodb_buffer_pool_size": 134217728,
    "innodb_flush_log_at_trx_commit": 1,
    "skip_name_resolve": "ON",
    "explicit_defaults_for_timestamp": "ON",
    "event_scheduler": "OFF",
    "log_error": "",
    "general_log": "OFF",
    "slow_query_log": "OFF",
    "long_query_time": 10,
    "max_execution_time": 0,
    "net_buffer_length": 16384,
    "character_set_client": "utf8mb4",
    "character_set_connection": "utf8mb4",
    "character_set_results": "utf8mb4",
    "character_set_server": "utf8mb4",
    "character_set_database": "utf8mb4",
    "character_set_system": "utf8mb3",
    "collation_connection": "utf8mb4_general_ci",
    "collation_server": "utf8mb4_general_ci",
    "collation_database": "utf8mb4_general_ci",
    "transaction_isolation": "READ-COMMITTED",
    "tx_isolation": "READ-COMMITTED",
    "transaction_read_only": 0,
    "tx_read_only": 0,
    "read_only": 0,
    "super_read_only": 0,
    "time_zone": "SYSTEM",
    "system_time_zone": "UTC",
    "wait_timeout": 28800,
    "interactive_timeout": 28800,
    "license": "MIT",
    "init_connect": "",
    "performance_schema": 0,
    "have_ssl": "DISABLED",
    "default_storage_engine": "InnoDB",
    "storage_engine": "InnoDB",
    "innodb_lock_wait_timeout": 50,
    "lock_wait_timeout": 31536000,
    "query_cache_size": 0,
    "query_cache_type": "OFF",
    "sql_select_limit": 18446744073709551615,
    "sql_auto_is_null": 0,
    "sql_safe_updates": 0,
    "foreign_key_checks": 1,
    "unique_checks": 1,
    "auto_increment_increment": 1,
    "auto_increment_offset": 1,
    "default_authentication_plugin": "mysql_native_password",
    "gtid_mode": "OFF",
    "div_precision_increment": 4,
    "group_concat_max_len": 1024,
    "last_insert_id": 0,
    "identity": 0,
    "timestamp": 0,
    "warning_count": 0,
    "error_count": 0,
    "datadir": "",
}


def variable(session: Session, name: str) -> Any:
    name = name.lower()
    for prefix in ("session.", "local.", "global."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name in session.session_vars:
        return session.session_vars[name]
    if name == "autocommit":
        return 1 if session.autocommit else 0
    if name in ("last_insert_id", "identity"):
        return session.last_insert_id
    if name == "warning_count":
        return len(session.warnings)
    if name == "timestamp":
        return int(session._now)
    if name == "pseudo_thread_id":
        return session.connection_id
    if name == "pylamp_user":
        return f"{session.user}@{session.host}"
    if name in session.engine.variables:
        return session.engine.variables[name]
    raise SqlError(1193, f"Unknown system variable '{name}'")


def execute_set(session: Session, stmt: str) -> Ok:
    m = re.fullmatch(r"\s*SET\s+(?:NAMES|CHARACTER\s+SET|CHARSET)\s+(.*)", stmt, re.I | re.S)
    if m:
        charset = m.group(1).split()[0].strip("'\"`")
        for var in (
            "character_set_client",
            "character_set_connection",
            "character_set_results",
        ):
            session.session_vars[var] = charset
        return Ok()
    tree = sqlmod.parse_mysql(stmt)
    if not isinstance(tree, exp.Set):
        raise sqlmod.syntax_error(stmt)
    for item in tree.expressions:
        _set_item(session, item)
    return Ok()


def _set_item(session: Session, item: exp.Expression) -> None:
    eq = item.this if isinstance(item, exp.SetItem) else item
    scope = (item.args.get("kind") or "").upper() if isinstance(item, exp.SetItem) else ""
    if not isinstance(eq, exp.EQ):
        return
    left, right = eq.this, eq.expression
    value = _eval_scalar(session, right)
    if isinstance(left, exp.Parameter):
        session.user_vars[left.name.lower()] = value
        return
    if isinstance(left, exp.SessionParameter):
        name = left.name.lower()
        if (left.args.get("kind") or "").upper() == "GLOBAL":
            scope = "GLOBAL"
    else:
        name = (
            left.name.lower()
            if isinstance(left, exp.Column | exp.Identifier)
            else (left.sql().lower())
        )
    if name == "autocommit":
        on = _truthy(value)
        if on and not session.autocommit:
            session._implicit_commit()
        session.autocommit = on
        return
    if name in ("last_insert_id", "insert_id"):
        session.last_insert_id = int(value or 0)
        return
    if name == "timestamp":
        return
    if name not in session.engine.variables and name not in session.session_vars:
        raise SqlError(1193, f"Unknown system variable '{name}'")
    if name in ("read_only", "super_read_only") or scope == "GLOBAL":
        session._require_global("SUPER")
        if name == "read_only":
            session.engine.read_only = _truthy(value)
        session.engine.variables[name] = value
        return
    session.session_vars[name] = value


def _eval_scalar(session: Session, node: exp.Expression) -> Any:
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else number(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return 1 if node.this else 0
    if isinstance(node, exp.Column | exp.Identifier | exp.Var):
        word = node.name
        upper = word.upper()
        if upper in ("ON", "TRUE"):
            return 1
        if upper in ("OFF", "FALSE"):
            return 0
        if upper == "DEFAULT":
            return None
        return word
    text = node.sql("mysql")
    result = session._execute_dml("SELECT " + text, Kind.READ)
    assert isinstance(result, ResultSet)
    return result.rows[0][0] if result.rows else None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.upper() in ("1", "ON", "TRUE")
    return bool(value)
