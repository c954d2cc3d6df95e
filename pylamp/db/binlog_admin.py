"""The binary log's admin statements, as result sets.

SHOW MASTER STATUS, SHOW BINARY LOGS, SHOW BINLOG EVENTS [IN 'file'] [FROM pos]
[LIMIT [offset,] n], FLUSH [BINARY] LOGS, RESET MASTER and PURGE BINARY LOGS TO 'file' /
BEFORE 'datetime'. :mod:`pylamp.db.sql` recognises the statements (``AdminCommand``); the
engine hands them here with the server's :class:`~pylamp.db.binlog.Binlog` (None when the
server runs without ``log-bin``). Errors carry MySQL's numbers.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime

from pylamp.db.binlog import Binlog, BinlogError
from pylamp.db.binlog_events import event_info
from pylamp.db.results import Column, ColumnFlag, FieldType, Ok, ResultSet, SqlError
from pylamp.db.sql import AdminCommand

__all__ = ["BINLOG_ADMIN_KINDS", "execute_binlog_admin"]

#: The ``AdminCommand.kind`` values this module answers.
BINLOG_ADMIN_KINDS = frozenset(
    {
        "show_master_status",
        "show_binary_logs",
        "show_binlog_events",
        "flush_logs",
        "reset_master",
        "purge_binary_logs",
    }
)

_NOT_LOGGING = 1381  # ER_NO_BINARY_LOGGING
_TARGET_NOT_FOUND = 1373  # ER_UNKNOWN_TARGET_BINLOG
_SHOW_EVENTS_FAILED = 1220  # ER_ERROR_WHEN_EXECUTING_COMMAND
_NOT_A_REPLICA = 1200  # ER_BAD_SLAVE
_NUM = ColumnFlag.NOT_NULL | ColumnFlag.UNSIGNED | ColumnFlag.NUM


def _text(name: str) -> Column:
    return Column(name, FieldType.VAR_STRING, ColumnFlag.NOT_NULL, length=512)


def _number(name: str) -> Column:
    return Column(name, FieldType.LONGLONG, _NUM, length=20, charset=63)


_MASTER_STATUS = [
    _text("File"),
    _number("Position"),
    _text("Binlog_Do_DB"),
    _text("Binlog_Ignore_DB"),
]
_BINARY_LOGS = [_text("Log_name"), _number("File_size")]
_BINLOG_EVENTS = [
    _text("Log_name"),
    _number("Pos"),
    _text("Event_type"),
    _number("Server_id"),
    _number("End_log_pos"),
    _text("Info"),
]


def execute_binlog_admin(cmd: AdminCommand, binlog: Binlog | None) -> ResultSet | Ok:
    """Run one binlog admin statement against ``binlog``; raises SqlError on failure.

    Replication statements (the replica side) are answered as by a server that is no replica:
    SHOW SLAVE STATUS gives no row, the others fail with 1200.
    """
    kind = cmd.kind
    if kind == "show_slave_status":  # a master that is no replica: an empty result, as MySQL
        return ResultSet([_text("Slave_IO_State")], [])
    if kind not in BINLOG_ADMIN_KINDS:
        raise SqlError(_NOT_A_REPLICA, "The server is not configured as slave")
    if kind == "show_master_status":
        if binlog is None:
            return ResultSet(_MASTER_STATUS, [])
        pos = binlog.position()
        return ResultSet(_MASTER_STATUS, [(pos.file, pos.pos, "", "")])
    if kind == "flush_logs":
        if binlog is not None:
            binlog.rotate()
        return Ok()
    if binlog is None:
        raise SqlError(_NOT_LOGGING, "You are not using binary logging")
    if kind == "show_binary_logs":
        return ResultSet(_BINARY_LOGS, [(name, size) for name, size in binlog.files()])
    if kind == "reset_master":
        binlog.reset()
        return Ok()
    if kind == "purge_binary_logs":
        return _purge(cmd, binlog)
    return _show_events(cmd, binlog)


def _purge(cmd: AdminCommand, binlog: Binlog) -> Ok:
    if "to" in cmd.options:
        try:
            binlog.purge_to(str(cmd.options["to"]))
        except BinlogError as exc:
            raise SqlError(_TARGET_NOT_FOUND, "Target log not found in binlog index") from exc
        return Ok()
    text = str(cmd.options.get("before", ""))
    try:
        before = datetime.fromisoformat(text).timestamp()
    except ValueError as exc:
        raise SqlError(1064, f"Incorrect datetime value: '{text}'") from exc
    # MySQL purges every file (never the current one) last modified before the given time.
    names = [name for name, _ in binlog.files()]
    keep = names[-1]
    for name in names[:-1]:
        if os.stat(binlog.directory / name).st_mtime >= before:
            keep = name
            break
    binlog.purge_to(keep)
    return Ok()


def _show_events(cmd: AdminCommand, binlog: Binlog) -> ResultSet:
    files = binlog.files()
    name = str(cmd.options.get("in", files[0][0]))
    start = int(cmd.options.get("from", 4))
    offset = int(cmd.options.get("offset", 0))
    limit = cmd.options.get("limit")
    rows = []
    try:
        events = binlog.read_events(name, max(start, 4))
        stop = None if limit is None else offset + int(limit)
        for pos, event in itertools.islice(events, offset, stop):
            event_type, info = event_info(event)
            h = event.header
            rows.append((name, pos, event_type, h.server_id, h.log_pos, info))
    except BinlogError as exc:
        message = f"Error when executing command SHOW BINLOG EVENTS: {exc}"
        raise SqlError(_SHOW_EVENTS_FAILED, message) from exc
    return ResultSet(_BINLOG_EVENTS, rows)
