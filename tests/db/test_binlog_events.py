"""Pure binlog v4 event encoding/decoding: round trips, checksums, transaction grouping."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.db.binlog_events import (
    BINLOG_IN_USE,
    HEADER_LEN,
    BinlogFormatError,
    Event,
    EventType,
    FormatDescription,
    LoggedStatement,
    Position,
    Query,
    Rotate,
    Stop,
    TransactionAssembler,
    Unknown,
    Xid,
    decode_event,
    decode_header,
    encode_event,
    encode_queries,
    event_info,
)

u32 = st.integers(0, 2**32 - 1)
names = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40)

queries = st.builds(
    Query,
    db=st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=60),
    sql=st.text(st.characters(codec="utf-8"), max_size=300),
    thread_id=u32,
    exec_time=u32,
    error_code=st.integers(0, 65535),
    flags2=u32,
    sql_mode=st.integers(0, 2**64 - 1),
    charset=st.tuples(*[st.integers(0, 65535)] * 3),
    microseconds=st.integers(0, 999_999),
)
payloads = st.one_of(
    queries,
    st.builds(Xid, st.integers(0, 2**64 - 1)),
    st.builds(Rotate, names, st.integers(4, 2**64 - 1)),
    st.just(Stop()),
    st.builds(
        FormatDescription,
        st.text(st.characters(codec="ascii", exclude_characters="\0"), max_size=49),
        u32,
    ),
    st.builds(Unknown, st.sampled_from([5, 13, 160, 162]), st.binary(max_size=64)),
)


@settings(max_examples=150, deadline=None)
@given(
    payload=payloads,
    timestamp=u32,
    server_id=u32,
    position=st.integers(4, 2**30),
    flags=st.sampled_from([0, 1, 8]),
)
def test_round_trip(payload, timestamp, server_id, position, flags):  # type: ignore[no-untyped-def]
    data = encode_event(
        payload, timestamp=timestamp, server_id=server_id, position=position, flags=flags
    )
    event = decode_event(data)
    assert event.payload == payload
    h = event.header
    assert (h.timestamp, h.server_id, h.flags) == (timestamp, server_id, flags)
    assert h.event_size == len(data)
    assert h.log_pos == (position + len(data)) & 0xFFFFFFFF
    assert h.type_code == payload.type_code
    assert zlib.crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0] or (
        h.type_code == EventType.FORMAT_DESCRIPTION and flags & BINLOG_IN_USE
    )


@settings(max_examples=60, deadline=None)
@given(payload=payloads, data=st.data())
def test_any_flipped_byte_is_rejected(payload, data):  # type: ignore[no-untyped-def]
    raw = bytearray(encode_event(payload, timestamp=1, server_id=1, position=4))
    i = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[i] ^= 1 << bit
    if i == 17 and bit == 0 and raw[4] == EventType.FORMAT_DESCRIPTION:
        # the in-use flag of a format description is outside its checksum, by design
        assert decode_event(raw).header.flags & BINLOG_IN_USE
        return
    with pytest.raises(BinlogFormatError):
        decode_event(raw)


@settings(max_examples=40, deadline=None)
@given(payload=payloads, data=st.data())
def test_truncated_event_is_rejected(payload, data):  # type: ignore[no-untyped-def]
    raw = encode_event(payload, timestamp=1, server_id=1, position=4)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(BinlogFormatError):
        decode_event(raw[:cut])


def test_format_description_layout_matches_mariadb() -> None:
    raw = encode_event(
        FormatDescription("10.11.0-pylamp-log", 7),
        timestamp=7,
        server_id=1,
        position=4,
        flags=BINLOG_IN_USE,
    )
    # 19 header + 2 + 50 + 4 + 1 + 171 post-header lengths + 1 algorithm + 4 CRC = 252,
    # the size of the format description in MariaDB 10.11's own files.
    assert len(raw) == 252
    assert raw[HEADER_LEN + 2 + 50 + 4] == 19
    assert raw[-5] == 1  # CRC32
    assert raw[HEADER_LEN + 57 + EventType.QUERY - 1] == 13  # QUERY post-header length
    assert raw[HEADER_LEN + 57 + EventType.ROTATE - 1] == 8
    assert decode_header(raw).log_pos == 256
    # the checksum is the one of the event with the in-use flag clear
    clear = bytearray(raw[:-4])
    clear[17] = 0
    assert struct.unpack("<I", raw[-4:])[0] == zlib.crc32(clear)


def test_query_event_with_foreign_status_vars() -> None:
    # status vars as MariaDB writes them for CREATE TABLE (includes Q_XID, code 129)
    status = bytes.fromhex("0000000001010000205400000000060373746404210021000800810600000000000000")
    body = struct.pack("<IIBHH", 5, 0, 1, 0, len(status)) + status + b"d\0create table t (a int)"
    size = HEADER_LEN + len(body) + 4
    head = struct.pack("<IBIIIH", 1, 2, 1, size, 4 + size, 0)
    raw = head + body
    raw += struct.pack("<I", zlib.crc32(raw))
    q = decode_event(raw).payload
    assert isinstance(q, Query)
    assert (q.db, q.sql, q.thread_id, q.sql_mode, q.charset) == (
        "d",
        "create table t (a int)",
        5,
        1411383296,
        (33, 33, 8),
    )


def test_event_info_columns() -> None:
    def ev(p):  # type: ignore[no-untyped-def]
        return decode_event(encode_event(p, timestamp=1, server_id=1, position=4))

    assert event_info(ev(Query("shop", "INSERT INTO t VALUES (1)"))) == (
        "Query",
        "use `shop`; INSERT INTO t VALUES (1)",
    )
    assert event_info(ev(Query("", "CREATE DATABASE x"))) == ("Query", "CREATE DATABASE x")
    assert event_info(ev(Xid(9))) == ("Xid", "COMMIT /* xid=9 */")
    assert event_info(ev(Rotate("a-bin.000002"))) == ("Rotate", "a-bin.000002;pos=4")
    assert event_info(ev(Stop())) == ("Stop", "")
    assert event_info(ev(FormatDescription("v1"))) == (
        "Format_desc",
        "Server ver: v1, Binlog ver: 4",
    )


def _feed(events: list[object]) -> list[object]:
    asm = TransactionAssembler()
    out = []
    pos = 4
    for p in events:
        e = decode_event(encode_event(p, timestamp=10, server_id=1, position=pos))  # type: ignore[arg-type]
        assert isinstance(e, Event)
        t = asm.add("f.000001", pos, e)
        pos += e.header.event_size
        if t is not None:
            out.append(t)
    return out


def test_assembler_groups_transactions() -> None:
    txns = _feed(
        [
            FormatDescription("v"),
            Query("a", "CREATE TABLE t (x INT)"),
            Query("a", "BEGIN"),
            Query("a", "INSERT INTO t VALUES (1)"),
            Query("b", "INSERT INTO t VALUES (2)"),
            Xid(3),
            Query("a", "BEGIN"),
            Query("a", "DELETE FROM t"),
            Query("a", "ROLLBACK"),
            Query("a", "BEGIN"),
            Query("a", "UPDATE t SET x = 5"),
            Query("a", "COMMIT"),
            Query("a", "BEGIN"),
            Query("a", "INSERT INTO t VALUES (9)"),
        ]
    )
    assert [t.statements for t in txns] == [  # type: ignore[attr-defined]
        (LoggedStatement("a", "CREATE TABLE t (x INT)"),),
        (
            LoggedStatement("a", "INSERT INTO t VALUES (1)"),
            LoggedStatement("b", "INSERT INTO t VALUES (2)"),
        ),
        (LoggedStatement("a", "UPDATE t SET x = 5"),),
    ]
    assert [t.xid for t in txns] == [None, 3, None]  # type: ignore[attr-defined]
    first, second, _ = txns
    assert second.start == first.end  # type: ignore[attr-defined]
    assert Position("f.000001", 4) < first.start < first.end  # type: ignore[attr-defined]


def test_assembler_drops_partial_transaction_at_stop() -> None:
    txns = _feed([Query("a", "BEGIN"), Query("a", "INSERT INTO t VALUES (1)"), Stop(), Xid(1)])
    assert txns == []


@settings(max_examples=60, deadline=None)
@given(
    queries=st.lists(st.tuples(names, names, st.sampled_from([0, 0x8])), min_size=1, max_size=4),
    thread_id=u32,
    timestamp=u32,
    micros=st.integers(0, 999_999),
    server_id=u32,
    position=st.integers(4, 2**32 + 100),
    xid=st.none() | st.integers(0, 2**64 - 1),
)
def test_encode_queries_is_encode_event_on_each(
    queries: list[tuple[str, str, int]],
    thread_id: int,
    timestamp: int,
    micros: int,
    server_id: int,
    position: int,
    xid: int | None,
) -> None:
    expected = b""
    pos = position
    payloads: list[Query | Xid] = [
        Query(db, sql, thread_id, microseconds=micros) for db, sql, _ in queries
    ]
    flags = [f for _, _, f in queries]
    if xid is not None:
        payloads.append(Xid(xid))
        flags.append(0)
    for payload, flag in zip(payloads, flags, strict=True):
        data = encode_event(
            payload, timestamp=timestamp, server_id=server_id, position=pos, flags=flag
        )
        expected += data
        pos += len(data)
    got = encode_queries(
        queries,
        thread_id=thread_id,
        timestamp=timestamp,
        microseconds=micros,
        server_id=server_id,
        position=position,
        xid=xid,
    )
    assert got == expected
