"""Server responses on the wire: OK, ERR, EOF, column definitions and text result rows.

A text result set is: a packet with the column count, one ColumnDefinition41 per column, an EOF
packet (left out when the client set CLIENT_DEPRECATE_EOF), one packet per row (each value a
length-encoded string, 0xFB for NULL), and a terminator: an EOF packet, or under
CLIENT_DEPRECATE_EOF an OK packet whose header byte is 0xFE ("OK as EOF"). The terminator carries
the status flags, with SERVER_MORE_RESULTS_EXISTS set when another result of a multi-statement
query follows.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from .packets import MAX_PAYLOAD, append_packet, lenenc_bytes, lenenc_int

__all__ = [
    "SERVER_MORE_RESULTS_EXISTS",
    "SERVER_STATUS_AUTOCOMMIT",
    "SERVER_STATUS_IN_TRANS",
    "ColumnLike",
    "append_result_end",
    "append_result_header",
    "append_result_set",
    "column_definition",
    "encode_value",
    "eof_packet",
    "err_packet",
    "ok_packet",
]

SERVER_STATUS_IN_TRANS = 0x0001
SERVER_STATUS_AUTOCOMMIT = 0x0002
SERVER_MORE_RESULTS_EXISTS = 0x0008

_DEF = b"\x03def"
_COLUMN_TAIL = struct.Struct("<BHIBHBxx")


class ColumnLike(Protocol):
    """What a column definition needs; the engine's ``pylamp.db.results.Column`` fits.

    ``type_code`` is MySQL's enum_field_types code, ``flags`` its column flags, ``charset``
    the collation id (63 binary for numbers and blobs, 33/45/255 for utf8 text).
    """

    @property
    def name(self) -> str: ...
    @property
    def type_code(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def length(self) -> int: ...
    @property
    def decimals(self) -> int: ...
    @property
    def table(self) -> str: ...
    @property
    def db(self) -> str: ...
    @property
    def org_name(self) -> str: ...
    @property
    def org_table(self) -> str: ...
    @property
    def charset(self) -> int: ...


def column_definition(col: ColumnLike) -> bytes:
    """Payload of a ColumnDefinition41 packet for ``col``."""
    return b"".join(
        (
            _DEF,
            lenenc_bytes(col.db.encode()),
            lenenc_bytes(col.table.encode()),
            lenenc_bytes((col.org_table or col.table).encode()),
            lenenc_bytes(col.name.encode()),
            lenenc_bytes((col.org_name or col.name).encode()),
            _COLUMN_TAIL.pack(
                0x0C, col.charset, col.length & 0xFFFFFFFF, col.type_code, col.flags, col.decimals
            ),
        )
    )


def ok_packet(
    affected_rows: int = 0,
    last_insert_id: int = 0,
    status: int = SERVER_STATUS_AUTOCOMMIT,
    warnings: int = 0,
    info: str = "",
    *,
    header: int = 0x00,
) -> bytes:
    """Payload of an OK packet (``header=0xFE`` makes the "OK as EOF" terminator)."""
    tail = _STATUS_WARNINGS.pack(status, min(warnings, 0xFFFF))
    if info:
        tail += info.encode("utf-8")
    if affected_rows < 251 and last_insert_id < 251:  # one byte each: most OKs
        return bytes((header, affected_rows, last_insert_id)) + tail
    return bytes((header,)) + lenenc_int(affected_rows) + lenenc_int(last_insert_id) + tail


_STATUS_WARNINGS = struct.Struct("<HH")


def eof_packet(status: int = SERVER_STATUS_AUTOCOMMIT, warnings: int = 0) -> bytes:
    """Payload of a (pre-CLIENT_DEPRECATE_EOF) EOF packet."""
    return struct.pack("<BHH", 0xFE, min(warnings, 0xFFFF), status)


def err_packet(errno: int, sqlstate: str, message: str) -> bytes:
    """Payload of an ERR packet: error number, ``#`` and the 5-character SQLSTATE, message."""
    state = (sqlstate.encode("ascii", "replace") + b"HY000")[:5]
    return struct.pack("<BH", 0xFF, errno) + b"#" + state + message.encode("utf-8", "replace")


def _encode_float(v: float) -> bytes:
    text = repr(v)
    if text.endswith(".0"):
        text = text[:-2]
    return text.replace("e+", "e").encode()


def _encode_timedelta(v: datetime.timedelta) -> bytes:
    seconds = int(v.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    micro = abs(v.microseconds) if seconds == 0 or v >= datetime.timedelta(0) else 0
    text = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if micro:
        text += f".{micro:06d}"
    return text.encode()


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    str: lambda v: v.encode("utf-8", "surrogateescape"),
    int: lambda v: b"%d" % v,
    bool: lambda v: b"1" if v else b"0",
    bytes: lambda v: v,
    bytearray: bytes,
    memoryview: bytes,
    float: _encode_float,
    decimal.Decimal: lambda v: str(v).encode(),
    datetime.datetime: lambda v: v.isoformat(" ").encode(),
    datetime.date: lambda v: v.isoformat().encode(),
    datetime.time: lambda v: v.isoformat().encode(),
    datetime.timedelta: _encode_timedelta,
}


def encode_value(value: object) -> bytes:
    """The text-protocol form of a non-NULL Python value (str, int, float, bytes, Decimal, ...)."""
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        for base, candidate in _ENCODERS.items():
            if isinstance(value, base):
                encoder = candidate
                break
        else:
            return str(value).encode("utf-8", "surrogateescape")
    return encoder(value)


_LEN1 = [bytes((n,)) for n in range(251)]
_HEADER = struct.Struct("<I")
# Engines hand back the same (hashable, frozen) column objects, often the very same list, for a
# repeated statement shape, so encoded definitions are cached by the list's identity (holding
# the list, so its id cannot be reused) and by column; both caches are dropped when too big.
_COLUMNS_CACHE: dict[int, tuple[object, list[bytes]]] = {}
_COLUMN_CACHE: dict[Any, bytes] = {}
_CACHE_LIMIT = 4096
_OK_EOF = {status: ok_packet(0, 0, status, 0, header=0xFE) for status in range(16)}
_EOF = {status: eof_packet(status, 0) for status in range(16)}


def _definitions(columns: Sequence[ColumnLike] | Sequence[bytes]) -> list[bytes]:
    """The column count packet and the encoded definitions of ``columns``."""
    hit = _COLUMNS_CACHE.get(id(columns))
    if hit is not None and hit[0] is columns:
        return hit[1]
    cache = _COLUMN_CACHE
    payloads = [lenenc_int(len(columns))]
    for col in columns:
        if isinstance(col, bytes):
            payloads.append(col)
            continue
        try:
            cached = cache.get(col)
        except TypeError:  # an unhashable column object: encode it every time
            payloads.append(column_definition(col))
            continue
        if cached is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cached = cache[col] = column_definition(col)
        payloads.append(cached)
    if len(_COLUMNS_CACHE) >= _CACHE_LIMIT:
        _COLUMNS_CACHE.clear()
    _COLUMNS_CACHE[id(columns)] = (columns, payloads)
    return payloads


def append_result_header(
    out: bytearray,
    seq: int,
    columns: Sequence[ColumnLike] | Sequence[bytes],
    status: int,
    warnings: int,
    deprecate_eof: bool,
) -> int:
    """Append a result set's column count, definitions and (before CLIENT_DEPRECATE_EOF) EOF."""
    header = _HEADER
    for payload in _definitions(columns):
        out += header.pack(len(payload) | (seq << 24))
        out += payload
        seq = (seq + 1) & 0xFF
    if not deprecate_eof:
        eof = _EOF.get(status) if not warnings else None
        seq = append_packet(out, eof or eof_packet(status, warnings), seq)
    return seq


def append_result_end(
    out: bytearray, seq: int, status: int, warnings: int, deprecate_eof: bool
) -> int:
    """Append the terminator after a result set's rows: EOF, or OK-as-EOF (0xFE header)."""
    if not deprecate_eof:
        eof = _EOF.get(status) if not warnings else None
        return append_packet(out, eof or eof_packet(status, warnings), seq)
    end = _OK_EOF.get(status) if not warnings else None
    if end is None:
        end = ok_packet(0, 0, status, warnings, header=0xFE)
    return append_packet(out, end, seq)


def append_result_set(
    out: bytearray,
    seq: int,
    columns: Sequence[ColumnLike] | Sequence[bytes],
    rows: Iterable[Sequence[object]],
    status: int,
    warnings: int,
    deprecate_eof: bool,
) -> int:
    """Append a whole text result set to ``out``; return the next sequence id.

    ``columns`` may be column objects or their encoded definitions; they must not change once
    sent (their encoding is cached). Each row is framed in place in ``out`` so a result costs
    no per-packet allocations beyond the values themselves.
    """
    seq = append_result_header(out, seq, columns, status, warnings, deprecate_eof)
    encoders = _ENCODERS
    len1 = _LEN1
    header = _HEADER
    for row in rows:
        start = len(out)
        out += b"\0\0\0\0"
        for value in row:
            if value is None:
                out += b"\xfb"
                continue
            encoder = encoders.get(type(value))
            data = encoder(value) if encoder is not None else encode_value(value)
            n = len(data)
            out += len1[n] if n < 251 else lenenc_int(n)
            out += data
        n = len(out) - start - 4
        if n < MAX_PAYLOAD:
            header.pack_into(out, start, n | (seq << 24))
            seq = (seq + 1) & 0xFF
        else:
            payload = bytes(out[start + 4 :])
            del out[start:]
            seq = append_packet(out, payload, seq)
    return append_result_end(out, seq, status, warnings, deprecate_eof)
