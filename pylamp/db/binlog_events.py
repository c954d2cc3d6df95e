"""MySQL binary log version 4 events: pure encoding and decoding, no I/O.

A binlog file is the magic ``b"\\xfebin"`` followed by events. Every event starts with a 19-byte
header (timestamp, type, server id, event size, end position, flags) and, because our
FORMAT_DESCRIPTION event announces CRC32, ends with a 4-byte CRC32 of everything before it.
Positions are byte offsets in the file; a header's ``log_pos`` is the offset just past the event.

The byte layouts follow MariaDB 10.11's own files (checked against a binlog written by the
Debian ``mariadbd`` on this machine), so that MariaDB's ``mysqlbinlog`` reads ours unchanged.

A transaction is grouped as MySQL writes it in statement format: a ``BEGIN`` QUERY event, one
QUERY event per statement, then an XID event; DDL is a single QUERY event on its own.
:class:`TransactionAssembler` turns a stream of events back into those transactions.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

__all__ = [
    "BINLOG_IN_USE",
    "CHARSET_UTF8MB4",
    "CHECKSUM_LEN",
    "HEADER_LEN",
    "MAGIC",
    "SUPPRESS_USE",
    "BinlogFormatError",
    "Event",
    "EventHeader",
    "EventType",
    "FormatDescription",
    "LoggedStatement",
    "Payload",
    "Position",
    "Query",
    "Rotate",
    "Stop",
    "Transaction",
    "TransactionAssembler",
    "Unknown",
    "Xid",
    "decode_event",
    "decode_header",
    "encode_event",
    "encode_queries",
    "event_info",
]

MAGIC = b"\xfebin"
HEADER_LEN = 19
CHECKSUM_LEN = 4
BINLOG_IN_USE = 0x0001  # LOG_EVENT_BINLOG_IN_USE_F: set in the FDE while the file is written
SUPPRESS_USE = 0x0008  # LOG_EVENT_SUPPRESS_USE_F: the QUERY's database is not its context
CHARSET_UTF8MB4 = 45  # utf8mb4_general_ci: our statements are Python str written as UTF-8
_CHECKSUM_CRC32 = 1
_FLAGS_OFFSET = 17
_HEADER = struct.Struct("<IBIIIH")
_QUERY_POST = struct.Struct("<IIBHH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# Post-header lengths per event type (type 1 first), as MariaDB 10.11 writes them: 171 types.
# mysqlbinlog sizes the fixed part of each event from this table, so it must be exact. Entry 15
# (FORMAT_DESCRIPTION) is 57 + the table's own length.
_POST_HEADER_LENGTHS = bytes(
    [56, 13, 0, 8, 0, 18, 0, 4, 4, 4, 4, 18, 0, 0, 228, 0, 4, 26, 8, 0, 0, 0, 8, 8, 8, 2, 0, 0, 0]
    + [10, 10, 10, 0, 0, 0, 0, 0, 0, 10, 10, 10]
    + [0] * 119
    + [4, 19, 4, 0, 13, 8, 8, 8, 10, 10, 10]
)
assert len(_POST_HEADER_LENGTHS) == 171 and _POST_HEADER_LENGTHS[14] == 57 + 171


class EventType(IntEnum):
    """The event type codes we write or name (MySQL's Log_event_type)."""

    UNKNOWN = 0
    QUERY = 2
    STOP = 3
    ROTATE = 4
    INTVAR = 5
    FORMAT_DESCRIPTION = 15
    XID = 16


class BinlogFormatError(ValueError):
    """Bytes that are not a valid binlog event (truncated, wrong size, bad CRC32)."""


class Position(NamedTuple):
    """A place in the binary log: file name (without directory) and byte offset.

    Tuples order as binlog positions do, because file names end in zero-padded numbers.
    """

    file: str
    pos: int


@dataclass(frozen=True)
class EventHeader:
    """The 19-byte common header; ``log_pos`` is the end offset of the event in its file."""

    timestamp: int
    type_code: int
    server_id: int
    event_size: int
    log_pos: int
    flags: int = 0


@dataclass(frozen=True)
class FormatDescription:
    """First event of every file: binlog version 4, server version, CRC32 announced."""

    server_version: str
    create_timestamp: int = 0
    binlog_version: int = 4
    checksum_alg: int = _CHECKSUM_CRC32
    type_code = EventType.FORMAT_DESCRIPTION


@dataclass(frozen=True)
class Query:
    """One SQL statement, run in database ``db`` (may be empty).

    The status variables carried are the ones mysqlbinlog turns into ``SET`` statements:
    flags2 (foreign_key_checks etc. in inverted form, MariaDB's default value), sql_mode,
    catalog, and the client/connection/server character sets; ``microseconds`` goes out as
    MariaDB's high-resolution timestamp when non-zero.
    """

    db: str
    sql: str
    thread_id: int = 0
    exec_time: int = 0
    error_code: int = 0
    flags2: int = 0x01000000
    sql_mode: int = 0
    charset: tuple[int, int, int] = (CHARSET_UTF8MB4, CHARSET_UTF8MB4, CHARSET_UTF8MB4)
    microseconds: int = 0
    type_code = EventType.QUERY


@dataclass(frozen=True)
class Xid:
    """Commit of the transaction the preceding events form."""

    xid: int
    type_code = EventType.XID


@dataclass(frozen=True)
class Rotate:
    """Last event of a full file: the name of the next file and where to read it from."""

    next_file: str
    position: int = 4
    type_code = EventType.ROTATE


@dataclass(frozen=True)
class Stop:
    """Last event of a file closed by a clean shutdown."""

    type_code = EventType.STOP


@dataclass(frozen=True)
class Unknown:
    """Any other event type, kept as its raw body (without the checksum)."""

    code: int
    body: bytes

    @property
    def type_code(self) -> int:
        return self.code


Payload = FormatDescription | Query | Xid | Rotate | Stop | Unknown


@dataclass(frozen=True)
class Event:
    """A decoded event: its header and its typed payload."""

    header: EventHeader
    payload: Payload


# Status variable codes (MySQL's Q_*; 128 is MariaDB's Q_HRNOW).
_Q_FLAGS2 = 0
_Q_SQL_MODE = 1
_Q_CATALOG = 2
_Q_AUTO_INCREMENT = 3
_Q_CHARSET = 4
_Q_TIME_ZONE = 5
_Q_CATALOG_NZ = 6
_Q_LC_TIME_NAMES = 7
_Q_CHARSET_DATABASE = 8
_Q_TABLE_MAP_FOR_UPDATE = 9
_Q_HRNOW = 128
_Q_XID = 129
# Fixed sizes of the status variables we skip when reading other servers' files.
_SKIP_FIXED = {
    _Q_AUTO_INCREMENT: 4,
    _Q_LC_TIME_NAMES: 2,
    _Q_CHARSET_DATABASE: 2,
    _Q_TABLE_MAP_FOR_UPDATE: 8,
    _Q_XID: 8,
}


@functools.lru_cache(maxsize=64)
def _status_prefix(flags2: int, sql_mode: int, charset: tuple[int, int, int]) -> bytes:
    # the same for nearly every statement: built once
    return (
        bytes([_Q_FLAGS2])
        + _U32.pack(flags2)
        + bytes([_Q_SQL_MODE])
        + _U64.pack(sql_mode)
        + bytes([_Q_CATALOG_NZ, 3])
        + b"std"
        + bytes([_Q_CHARSET])
        + struct.pack("<HHH", *charset)
    )


def _encode_status(q: Query) -> bytes:
    prefix = _status_prefix(q.flags2, q.sql_mode, q.charset)
    if q.microseconds:
        return prefix + bytes([_Q_HRNOW]) + q.microseconds.to_bytes(3, "little")
    return prefix


def _decode_status(data: bytes) -> dict[str, object]:
    """Read the status variables we know; stop at the first unknown code, as MySQL does."""
    found: dict[str, object] = {}
    i = 0
    try:
        while i < len(data):
            code = data[i]
            i += 1
            if code == _Q_FLAGS2:
                found["flags2"] = _U32.unpack_from(data, i)[0]
                i += 4
            elif code == _Q_SQL_MODE:
                found["sql_mode"] = _U64.unpack_from(data, i)[0]
                i += 8
            elif code == _Q_CHARSET:
                found["charset"] = struct.unpack_from("<HHH", data, i)
                i += 6
            elif code == _Q_HRNOW:
                found["microseconds"] = int.from_bytes(data[i : i + 3], "little")
                i += 3
            elif code in (_Q_CATALOG_NZ, _Q_TIME_ZONE):
                i += 1 + data[i]
            elif code == _Q_CATALOG:
                i += 2 + data[i]
            elif code in _SKIP_FIXED:
                i += _SKIP_FIXED[code]
            else:
                break
    except (struct.error, IndexError) as exc:
        raise BinlogFormatError("truncated status variables in QUERY event") from exc
    return found


def _encode_body(payload: Payload) -> bytes:
    if isinstance(payload, Query):
        status = _encode_status(payload)
        db = payload.db.encode()
        if len(db) > 255:
            raise ValueError("database name longer than 255 bytes")
        post = _QUERY_POST.pack(
            payload.thread_id, payload.exec_time, len(db), payload.error_code, len(status)
        )
        return post + status + db + b"\0" + payload.sql.encode()
    if isinstance(payload, Xid):
        return _U64.pack(payload.xid)
    if isinstance(payload, Rotate):
        return _U64.pack(payload.position) + payload.next_file.encode()
    if isinstance(payload, Stop):
        return b""
    if isinstance(payload, FormatDescription):
        version = payload.server_version.encode()[:49].ljust(50, b"\0")
        return (
            _U16.pack(payload.binlog_version)
            + version
            + _U32.pack(payload.create_timestamp)
            + bytes([HEADER_LEN])
            + _POST_HEADER_LENGTHS
            + bytes([payload.checksum_alg])
        )
    return payload.body


def _crc(event_without_crc: bytes | bytearray) -> int:
    # The FDE's in-use flag is cleared in place when a file is closed, so its checksum is
    # computed as if the flag were clear (MySQL and MariaDB do the same).
    if event_without_crc[4] == EventType.FORMAT_DESCRIPTION and (
        event_without_crc[_FLAGS_OFFSET] & BINLOG_IN_USE
    ):
        copy = bytearray(event_without_crc)
        copy[_FLAGS_OFFSET] &= ~BINLOG_IN_USE & 0xFF
        return zlib.crc32(copy)
    return zlib.crc32(event_without_crc)


def encode_event(
    payload: Payload, *, timestamp: int, server_id: int, position: int, flags: int = 0
) -> bytes:
    """Encode one event that starts at byte offset ``position``; returns header+body+CRC32."""
    body = _encode_body(payload)
    size = HEADER_LEN + len(body) + CHECKSUM_LEN
    header = _HEADER.pack(
        timestamp & 0xFFFFFFFF,
        int(payload.type_code),
        server_id,
        size,
        (position + size) & 0xFFFFFFFF,
        flags,
    )
    data = header + body
    return data + _U32.pack(_crc(data))


_DEFAULT_QUERY = Query("", "")
_DEFAULT_STATUS = _status_prefix(
    _DEFAULT_QUERY.flags2, _DEFAULT_QUERY.sql_mode, _DEFAULT_QUERY.charset
)


def encode_queries(
    queries: Sequence[tuple[str, str, int]],
    *,
    thread_id: int,
    timestamp: int,
    microseconds: int,
    server_id: int,
    position: int,
    xid: int | None,
) -> bytes:
    """Encode consecutive QUERY events ``(db, sql, header flags)`` with the default status
    variables, then an XID event unless ``xid`` is None, starting at byte offset
    ``position``: the same bytes as :func:`encode_event` on each, without building the
    payload objects (this is on every commit's path: one struct call packs the common header
    and the QUERY post-header together).
    """
    status = _DEFAULT_STATUS
    if microseconds:
        status += bytes([_Q_HRNOW]) + microseconds.to_bytes(3, "little")
    ts = timestamp & 0xFFFFFFFF
    fixed = HEADER_LEN + _QUERY_POST.size + len(status) + 1 + CHECKSUM_LEN  # + db + sql
    out: list[bytes] = []
    pos = position
    for db, sql, flags in queries:
        dbb = db.encode()
        if len(dbb) > 255:
            raise ValueError("database name longer than 255 bytes")
        sqlb = sql.encode()
        size = fixed + len(dbb) + len(sqlb)
        pos += size
        head = _QUERY_HEAD.pack(
            ts, EventType.QUERY, server_id, size, pos & 0xFFFFFFFF, flags,
            thread_id, 0, len(dbb), 0, len(status),
        )  # fmt: skip
        event = b"".join((head, status, dbb, b"\0", sqlb))
        out.append(event)
        out.append(_U32.pack(zlib.crc32(event)))
    if xid is not None:
        size = HEADER_LEN + 8 + CHECKSUM_LEN
        pos += size
        event = _XID_EVENT.pack(ts, EventType.XID, server_id, size, pos & 0xFFFFFFFF, 0, xid)
        out.append(event)
        out.append(_U32.pack(zlib.crc32(event)))
    return b"".join(out)


# the common header followed by a QUERY's post-header / an XID's body, packed in one call
_QUERY_HEAD = struct.Struct(_HEADER.format + _QUERY_POST.format[1:])
_XID_EVENT = struct.Struct(_HEADER.format + "Q")


def decode_header(data: bytes | bytearray | memoryview) -> EventHeader:
    """Decode the 19-byte common header at the start of ``data``."""
    if len(data) < HEADER_LEN:
        raise BinlogFormatError("truncated event header")
    ts, type_code, server_id, size, log_pos, flags = _HEADER.unpack_from(data, 0)
    if size < HEADER_LEN + CHECKSUM_LEN:
        raise BinlogFormatError(f"impossible event size {size}")
    return EventHeader(ts, type_code, server_id, size, log_pos, flags)


def decode_event(data: bytes | bytearray | memoryview) -> Event:
    """Decode exactly one whole event (header, body, CRC32), verifying the checksum."""
    data = bytes(data)
    header = decode_header(data)
    if header.event_size != len(data):
        raise BinlogFormatError(f"event size {header.event_size} but {len(data)} bytes given")
    (stored,) = _U32.unpack_from(data, len(data) - CHECKSUM_LEN)
    if _crc(data[:-CHECKSUM_LEN]) != stored:
        raise BinlogFormatError("CRC32 mismatch")
    body = data[HEADER_LEN:-CHECKSUM_LEN]
    try:
        return Event(header, _decode_body(header.type_code, body))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise BinlogFormatError(f"malformed event of type {header.type_code}: {exc}") from exc


def _decode_body(type_code: int, body: bytes) -> Payload:
    if type_code == EventType.QUERY:
        thread_id, exec_time, db_len, error_code, status_len = _QUERY_POST.unpack_from(body, 0)
        start = _QUERY_POST.size
        status = _decode_status(body[start : start + status_len])
        db_start = start + status_len
        if len(body) < db_start + db_len + 1:
            raise BinlogFormatError("truncated QUERY event")
        db = body[db_start : db_start + db_len].decode()
        sql = body[db_start + db_len + 1 :].decode()
        return Query(db, sql, thread_id, exec_time, error_code, **status)  # type: ignore[arg-type]
    if type_code == EventType.XID:
        return Xid(_U64.unpack_from(body, 0)[0])
    if type_code == EventType.ROTATE:
        return Rotate(body[8:].decode(), _U64.unpack_from(body, 0)[0])
    if type_code == EventType.STOP:
        return Stop()
    if type_code == EventType.FORMAT_DESCRIPTION:
        (binlog_version,) = _U16.unpack_from(body, 0)
        version = body[2:52].split(b"\0", 1)[0].decode()
        (created,) = _U32.unpack_from(body, 52)
        return FormatDescription(version, created, binlog_version, body[-1])
    return Unknown(type_code, body)


_TYPE_NAMES = {
    EventType.QUERY: "Query",
    EventType.STOP: "Stop",
    EventType.ROTATE: "Rotate",
    EventType.INTVAR: "Intvar",
    EventType.FORMAT_DESCRIPTION: "Format_desc",
    EventType.XID: "Xid",
}


def event_info(event: Event) -> tuple[str, str]:
    """The ``Event_type`` and ``Info`` columns of SHOW BINLOG EVENTS for this event."""
    p = event.payload
    name = _TYPE_NAMES.get(p.type_code, f"Unknown({p.type_code})")  # type: ignore[call-overload]
    if isinstance(p, Query):
        use = p.db and not event.header.flags & SUPPRESS_USE
        return name, (f"use `{p.db}`; {p.sql}" if use else p.sql)
    if isinstance(p, Xid):
        return name, f"COMMIT /* xid={p.xid} */"
    if isinstance(p, Rotate):
        return name, f"{p.next_file};pos={p.position}"
    if isinstance(p, FormatDescription):
        return name, f"Server ver: {p.server_version}, Binlog ver: {p.binlog_version}"
    return name, ""


class LoggedStatement(NamedTuple):
    """A statement as logged: the current database it ran in and its (determinised) text.

    A NamedTuple: a plain ``(db, sql)`` pair is one too, so a committing session hands its
    statements to the binlog without wrapping each.
    """

    db: str
    sql: str


@dataclass(frozen=True)
class Transaction:
    """A complete logged transaction; ``xid`` is None for a statement logged on its own (DDL)."""

    start: Position
    end: Position
    timestamp: float
    statements: tuple[LoggedStatement, ...]
    xid: int | None = None


@dataclass
class TransactionAssembler:
    """Group events back into complete transactions (pure state machine).

    States: idle, or inside a ``BEGIN`` (``self._pending`` set). Rules:
    idle + QUERY BEGIN -> inside; idle + other QUERY -> a one-statement transaction;
    inside + QUERY -> statement added (``COMMIT`` ends it, ``ROLLBACK`` discards it);
    inside + XID -> transaction complete; a new BEGIN, ROTATE, STOP or FORMAT_DESCRIPTION
    while inside discards the partial transaction. Other events are ignored.
    """

    _pending: list[LoggedStatement] | None = field(default=None)
    _start: Position | None = None
    _timestamp: float = 0.0

    @property
    def inside(self) -> bool:
        """True while a BEGIN has been seen without its commit."""
        return self._pending is not None

    def add(self, file: str, pos: int, event: Event) -> Transaction | None:
        """Feed the event found at ``pos`` in ``file``; return a transaction it completes."""
        p = event.payload
        end = Position(file, pos + event.header.event_size)
        if isinstance(p, Query):
            word = p.sql.strip().rstrip(";").strip().upper()
            if word in ("BEGIN", "START TRANSACTION"):
                self._pending = []
                self._start = Position(file, pos)
                self._timestamp = event.header.timestamp + p.microseconds / 1e6
                return None
            if self._pending is None:
                ts = event.header.timestamp + p.microseconds / 1e6
                return Transaction(
                    Position(file, pos), end, ts, (LoggedStatement(p.db, p.sql),), None
                )
            if word == "COMMIT":
                return self._finish(end, None)
            if word == "ROLLBACK":
                self._pending = None
                return None
            self._pending.append(LoggedStatement(p.db, p.sql))
            return None
        if isinstance(p, Xid):
            return self._finish(end, p.xid) if self._pending is not None else None
        if isinstance(p, Rotate | Stop | FormatDescription):
            self._pending = None
        return None

    def _finish(self, end: Position, xid: int | None) -> Transaction:
        assert self._pending is not None and self._start is not None
        txn = Transaction(self._start, end, self._timestamp, tuple(self._pending), xid)
        self._pending = None
        return txn
