"""The sans-IO MySQL protocol core, paired with a small client written here."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.db.mysql import auth
from pylamp.db.mysql.connection import LocalProtocolError, ServerConnection, State
from pylamp.db.mysql.events import (
    NEED_DATA,
    Error,
    FieldList,
    FieldListResult,
    InitDb,
    Login,
    Ok,
    Ping,
    Query,
    Quit,
    ResetConnection,
    ResultSet,
    Statistics,
    StatisticsText,
)
from pylamp.db.mysql.handshake import (
    CLIENT_DEPRECATE_EOF,
    CLIENT_MULTI_RESULTS,
    CLIENT_MULTI_STATEMENTS,
    CLIENT_SSL,
    build_handshake_response,
    parse_handshake,
    parse_handshake_response,
)
from pylamp.db.mysql.packets import (
    MAX_PAYLOAD,
    PacketReader,
    ProtocolError,
    frame_packets,
    lenenc_bytes,
    lenenc_int,
    read_lenenc_bytes,
    read_lenenc_int,
)
from pylamp.db.mysql.prepared import find_placeholders, sql_literal
from pylamp.db.mysql.results import (
    SERVER_MORE_RESULTS_EXISTS,
    SERVER_STATUS_AUTOCOMMIT,
    SERVER_STATUS_IN_TRANS,
    encode_value,
)

SCRAMBLE = auth.make_scramble(bytes(range(20)))


@dataclass(frozen=True)
class Column:
    """A column as the engine describes one (pylamp.db.mysql.results.ColumnLike)."""

    name: str
    type_code: int = 253
    flags: int = 0
    length: int = 0
    decimals: int = 0
    table: str = ""
    db: str = ""
    org_name: str = ""
    org_table: str = ""
    charset: int = 33


LONGLONG = 8
BINARY_CHARSET = 63


# -- a tiny client side --------------------------------------------------------------------


def packets(data: bytes) -> list[tuple[int, bytes]]:
    reader = PacketReader()
    reader.feed(data)
    out = []
    while (packet := reader.next_packet()) is not None:
        out.append(packet)
    assert reader.buffered == 0
    return out


def send(conn: ServerConnection, payload: bytes, seq: int) -> None:
    data, _ = frame_packets([payload], seq)
    conn.receive_data(data)


def login(
    caps: int = CLIENT_DEPRECATE_EOF | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS,
    password: str = "secret",
    plugin: str = "mysql_native_password",
    database: str | None = "shop",
) -> tuple[ServerConnection, Login]:
    conn = ServerConnection(7, SCRAMBLE)
    ((seq, greeting),) = packets(conn.data_to_send())
    hello = parse_handshake(greeting)
    assert (seq, hello.connection_id, hello.scramble) == (0, 7, SCRAMBLE)
    answer = auth.scramble_password(password, hello.scramble)
    payload = build_handshake_response(
        "alice",
        answer,
        capabilities=caps,
        database=database,
        plugin=plugin,
        attributes={"_client_name": "test"},
    )
    send(conn, payload, 1)
    event = conn.next_event()
    assert isinstance(event, Login)
    return conn, event


def logged_in(**kwargs: object) -> ServerConnection:
    conn, _ = login(**kwargs)  # type: ignore[arg-type]
    conn.send(Ok())
    ((seq, payload),) = packets(conn.data_to_send())
    assert seq == 2 and payload[0] == 0
    assert conn.state is State.COMMAND
    return conn


def command(conn: ServerConnection, payload: bytes) -> object:
    send(conn, payload, 0)
    return conn.next_event()


def parse_ok(payload: bytes) -> tuple[int, int, int, int]:
    assert payload[0] in (0x00, 0xFE)
    affected, pos = read_lenenc_int(payload, 1)
    last_id, pos = read_lenenc_int(payload, pos)
    status, warnings = struct.unpack_from("<HH", payload, pos)
    return affected, last_id, status, warnings


def parse_result_set(
    items: list[tuple[int, bytes]], deprecate_eof: bool
) -> tuple[list[bytes], list[list[bytes | None]], int, list[tuple[int, bytes]]]:
    """Column names, rows and terminator status of the first result set; the rest."""
    count, _ = read_lenenc_int(items[0][1], 0)
    names = []
    for _, payload in items[1 : 1 + count]:
        pos = 0
        fields = []
        for _ in range(6):
            value, pos = read_lenenc_bytes(payload, pos)
            fields.append(value)
        names.append(fields[4])
    pos = 1 + count
    if not deprecate_eof:
        assert items[pos][1][0] == 0xFE and len(items[pos][1]) == 5
        pos += 1
    rows = []
    while not (items[pos][1][0] == 0xFE and len(items[pos][1]) < 9):
        payload, p, row = items[pos][1], 0, []
        while p < len(payload):
            if payload[p] == 0xFB:
                row.append(None)
                p += 1
            else:
                value, p = read_lenenc_bytes(payload, p)
                row.append(value)
        rows.append(row)
        pos += 1
    end = items[pos][1]
    status = parse_ok(end)[2] if deprecate_eof else struct.unpack_from("<HH", end, 1)[1]
    return names, rows, status, items[pos + 1 :]


# -- packets ---------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lenenc_int_round_trip(value: int) -> None:
    encoded = lenenc_int(value)
    assert read_lenenc_int(encoded + b"tail", 0) == (value, len(encoded))


@given(st.binary(max_size=70000))
@settings(max_examples=30, deadline=None)
def test_lenenc_bytes_round_trip(value: bytes) -> None:
    encoded = lenenc_bytes(value)
    assert read_lenenc_bytes(encoded, 0) == (value, len(encoded))


@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=1, max_value=64),
)
@settings(max_examples=60, deadline=None)
def test_framing_round_trip_in_any_chunks(payloads: list[bytes], seq: int, chunk: int) -> None:
    data, next_seq = frame_packets(payloads, seq)
    assert next_seq == (seq + len(payloads)) & 0xFF
    reader = PacketReader()
    got = []
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
        while (packet := reader.next_packet()) is not None:
            got.append(packet)
    assert got == [((seq + i) & 0xFF, p) for i, p in enumerate(payloads)]


@pytest.mark.parametrize("size", [MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 5])
def test_large_payloads_are_split_and_joined(size: int) -> None:
    payload = b"x" * size
    data, next_seq = frame_packets([payload, b"after"], 254)
    pieces = size // MAX_PAYLOAD + 1
    assert next_seq == (254 + pieces + 1) & 0xFF
    assert packets(data) == [(254, payload), ((254 + pieces) & 0xFF, b"after")]


def test_oversized_length_is_refused_before_the_bytes_arrive() -> None:
    reader = PacketReader(max_payload=1000)
    reader.feed(struct.pack("<I", 1001))
    with pytest.raises(ProtocolError) as info:
        reader.next_packet()
    assert info.value.errno == 1153


def test_truncated_lenenc_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        read_lenenc_bytes(b"\x05abc", 0)
    with pytest.raises(ProtocolError):
        read_lenenc_int(b"\xff", 0)


# -- auth ------------------------------------------------------------------------------------


def test_password_hash_is_mysqls() -> None:
    # MySQL 5.7: SELECT PASSWORD('password')
    assert auth.password_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    assert auth.password_hash("") == ""


@given(st.text(min_size=1, max_size=30), st.binary(min_size=20, max_size=20))
@settings(max_examples=40, deadline=None)
def test_native_password_verifies_only_the_right_password(password: str, rnd: bytes) -> None:
    nonce = auth.make_scramble(rnd)
    assert b"\0" not in nonce and len(nonce) == 20
    stored = auth.password_hash(password)
    assert auth.verify(stored, nonce, auth.scramble_password(password, nonce))
    assert not auth.verify(stored, nonce, auth.scramble_password(password + "x", nonce))
    assert not auth.verify(stored, nonce, b"")
    assert not auth.verify("", nonce, auth.scramble_password(password, nonce))


def test_empty_password_and_malformed_hashes() -> None:
    assert auth.verify("", SCRAMBLE, b"")
    assert not auth.verify("*XYZ", SCRAMBLE, b"\0" * 20)
    assert not auth.verify("*" + "G" * 40, SCRAMBLE, b"\0" * 20)


# -- handshake and login ---------------------------------------------------------------------


def test_handshake_response_round_trip() -> None:
    payload = build_handshake_response(
        "bob",
        b"\x01" * 20,
        capabilities=CLIENT_MULTI_STATEMENTS,
        database="db",
        attributes={"a": "b"},
    )
    parsed = parse_handshake_response(payload)
    assert (parsed.user, parsed.auth_response, parsed.database) == ("bob", b"\x01" * 20, "db")
    assert parsed.plugin == "mysql_native_password" and parsed.attributes == {"a": "b"}


def test_login_event_carries_what_the_client_sent() -> None:
    conn, event = login()
    assert event.user == "alice" and event.database == "shop"
    assert event.scramble == SCRAMBLE and event.attributes == {"_client_name": "test"}
    assert auth.verify(auth.password_hash("secret"), event.scramble, event.auth_response)
    assert conn.state is State.AUTHENTICATING
    assert conn.next_event() is NEED_DATA  # nothing more until the login is answered


@pytest.mark.parametrize("plugin", ["caching_sha2_password", "client_ed25519"])
def test_other_plugins_get_an_auth_switch_to_native(plugin: str) -> None:
    conn = ServerConnection(1, SCRAMBLE)
    conn.data_to_send()
    send(conn, build_handshake_response("u", b"\x99" * 32, capabilities=0, plugin=plugin), 1)
    assert conn.next_event() is NEED_DATA
    assert conn.state is State.AUTH_SWITCH
    ((seq, switch),) = packets(conn.data_to_send())
    assert seq == 2
    assert switch == b"\xfe" + b"mysql_native_password\0" + SCRAMBLE + b"\0"
    send(conn, auth.scramble_password("pw", SCRAMBLE), 3)
    event = conn.next_event()
    assert isinstance(event, Login) and event.user == "u"
    assert auth.verify(auth.password_hash("pw"), SCRAMBLE, event.auth_response)
    conn.send(Ok())
    assert packets(conn.data_to_send())[0][0] == 4


def test_failed_login_sends_1045_and_closes() -> None:
    conn, _ = login(password="wrong")
    conn.send(Error(1045, "28000", "Access denied"))
    ((seq, payload),) = packets(conn.data_to_send())
    assert seq == 2 and payload[:9] == b"\xff\x15\x04#28000"
    assert conn.state is State.CLOSED


def test_tls_request_is_refused_with_bad_handshake() -> None:
    conn = ServerConnection(1, SCRAMBLE)
    conn.data_to_send()
    send(conn, struct.pack("<IIB", CLIENT_SSL | 0x200, 1 << 24, 45) + b"\0" * 23, 1)
    with pytest.raises(ProtocolError):
        conn.next_event()
    ((_, payload),) = packets(conn.data_to_send())
    assert struct.unpack_from("<H", payload, 1)[0] == 1043
    assert conn.state is State.CLOSED


# -- commands --------------------------------------------------------------------------------


def test_query_result_set_with_nulls_and_deprecate_eof() -> None:
    conn = logged_in()
    event = command(conn, b"\x03SELECT id, name FROM t")
    assert event == Query("SELECT id, name FROM t", multi_statements=True)
    assert conn.next_event() is NEED_DATA
    cols = [Column("id", LONGLONG, charset=BINARY_CHARSET), Column("name")]
    conn.send(ResultSet(cols, [(1, "ä"), (2, None)], SERVER_STATUS_IN_TRANS))
    items = packets(conn.data_to_send())
    assert [seq for seq, _ in items] == list(range(1, len(items) + 1))
    names, rows, status, rest = parse_result_set(items, deprecate_eof=True)
    assert names == [b"id", b"name"] and rest == []
    assert rows == [[b"1", "ä".encode()], [b"2", None]]
    assert status == SERVER_STATUS_IN_TRANS
    assert conn.state is State.COMMAND


def test_result_set_with_eof_packets_for_old_clients() -> None:
    conn = logged_in(caps=0)
    assert command(conn, b"\x03SELECT 1") == Query("SELECT 1", multi_statements=False)
    conn.send(ResultSet([Column("1", LONGLONG)], [(1,)]))
    names, rows, status, rest = parse_result_set(packets(conn.data_to_send()), False)
    assert (names, rows, status, rest) == ([b"1"], [[b"1"]], SERVER_STATUS_AUTOCOMMIT, [])


def test_multi_statement_results_are_chained_with_more_results() -> None:
    conn = logged_in()
    command(conn, b"\x03INSERT ...; SELECT 1; DROP x")
    conn.send(
        Ok(3, 42),
        ResultSet([Column("1")], [("1",)]),
        Error(1051, "42S02", "Unknown table 'x'"),
    )
    items = packets(conn.data_to_send())
    affected, last_id, status, _ = parse_ok(items[0][1])
    assert (affected, last_id) == (3, 42) and status & SERVER_MORE_RESULTS_EXISTS
    _, rows, status, rest = parse_result_set(items[1:], True)
    assert rows == [[b"1"]] and status & SERVER_MORE_RESULTS_EXISTS
    ((_, err),) = rest
    assert err[0] == 0xFF and struct.unpack_from("<H", err, 1)[0] == 1051


def test_ok_packet_fields() -> None:
    conn = logged_in()
    command(conn, b"\x03UPDATE t SET a = 1")
    conn.send(Ok(affected_rows=300, last_insert_id=70000, status=3, warnings=2))
    ((_, payload),) = packets(conn.data_to_send())
    assert parse_ok(payload) == (300, 70000, 3, 2)


def test_simple_commands() -> None:
    conn = logged_in()
    assert command(conn, b"\x02shop") == InitDb("shop")
    conn.send(Ok())
    conn.data_to_send()
    assert command(conn, b"\x0e") == Ping()
    conn.send(Ok())
    conn.data_to_send()
    assert command(conn, b"\x04t\0%") == FieldList("t", "%")
    conn.send(FieldListResult([Column("a"), Column("b")]))
    items = packets(conn.data_to_send())
    assert len(items) == 3 and items[0][1].endswith(b"\xfb") and items[2][1][0] == 0xFE
    assert command(conn, b"\x09") == Statistics()
    conn.send(StatisticsText("Uptime: 1  Threads: 1"))
    assert packets(conn.data_to_send()) == [(1, b"Uptime: 1  Threads: 1")]
    assert command(conn, b"\x1f") == ResetConnection()
    conn.send(Ok())
    conn.data_to_send()
    assert command(conn, b"\x01") == Quit()
    assert conn.state is State.CLOSED


def test_core_answers_unknown_commands_itself() -> None:
    conn = logged_in()
    assert command(conn, b"\x63whatever") is NEED_DATA
    ((seq, payload),) = packets(conn.data_to_send())
    assert seq == 1 and struct.unpack_from("<H", payload, 1)[0] == 1047
    assert command(conn, b"\x17\x09\0\0\0\0\1\0\0\0") is NEED_DATA  # EXECUTE unknown id
    ((_, payload),) = packets(conn.data_to_send())
    assert struct.unpack_from("<H", payload, 1)[0] == 1243
    assert command(conn, b"\x19\x01\0\0\0") is NEED_DATA  # COM_STMT_CLOSE: no answer
    assert conn.data_to_send() == b""
    assert command(conn, b"\x1c\x01\0\0\0\x01\0\0\0") is NEED_DATA  # COM_STMT_FETCH
    ((_, payload),) = packets(conn.data_to_send())
    assert struct.unpack_from("<H", payload, 1)[0] == 1421
    assert conn.state is State.COMMAND


def test_set_option_switches_multi_statements() -> None:
    conn = logged_in(caps=CLIENT_DEPRECATE_EOF)
    assert command(conn, b"\x1b\x00\x00") is NEED_DATA
    ((_, payload),) = packets(conn.data_to_send())
    assert payload[0] == 0xFE
    assert command(conn, b"\x03a; b") == Query("a; b", multi_statements=True)


def test_pipelined_commands_wait_for_the_answer() -> None:
    conn = logged_in()
    data, _ = frame_packets([b"\x03SELECT 1"], 0)
    data2, _ = frame_packets([b"\x0e"], 0)
    conn.receive_data(data + data2)
    assert isinstance(conn.next_event(), Query)
    assert conn.next_event() is NEED_DATA
    conn.send(Ok())
    assert conn.next_event() == Ping()


def test_client_close_is_quit() -> None:
    conn = logged_in()
    conn.receive_data(b"")
    assert conn.next_event() == Quit()
    assert conn.state is State.CLOSED


def test_out_of_order_sequence_is_a_protocol_error() -> None:
    conn = logged_in()
    send(conn, b"\x0e", 5)
    with pytest.raises(ProtocolError):
        conn.next_event()
    ((_, payload),) = packets(conn.data_to_send())
    assert struct.unpack_from("<H", payload, 1)[0] == 1156
    assert conn.state is State.CLOSED


def test_send_out_of_turn_is_a_local_error() -> None:
    conn = logged_in()
    with pytest.raises(LocalProtocolError):
        conn.send(Ok())
    conn2, _ = login()
    with pytest.raises(LocalProtocolError):
        conn2.send(ResultSet([], []))


@given(st.binary(max_size=200))
@settings(max_examples=150, deadline=None)
def test_garbage_after_login_is_an_event_or_a_protocol_error(garbage: bytes) -> None:
    conn = logged_in()
    conn.receive_data(garbage)
    try:
        while conn.next_event() is not NEED_DATA and conn.state is not State.CLOSED:
            if conn.state is State.RESPONDING:
                conn.send(Ok())
    except ProtocolError:
        assert conn.state is State.CLOSED
        assert packets(conn.data_to_send())[-1][1][0] == 0xFF


@given(st.binary(max_size=200))
@settings(max_examples=150, deadline=None)
def test_garbage_handshake_is_a_login_or_a_protocol_error(garbage: bytes) -> None:
    conn = ServerConnection(1, SCRAMBLE)
    conn.data_to_send()
    send(conn, garbage, 1)
    try:
        event = conn.next_event()
    except ProtocolError:
        assert conn.state is State.CLOSED
        return
    assert isinstance(event, Login) or event is NEED_DATA


def test_text_values() -> None:
    import datetime
    import decimal

    assert encode_value(1.5) == b"1.5" and encode_value(2.0) == b"2"
    assert encode_value(True) == b"1" and encode_value(decimal.Decimal("1.10")) == b"1.10"
    assert encode_value(datetime.datetime(2024, 1, 2, 3, 4, 5)) == b"2024-01-02 03:04:05"
    assert encode_value(datetime.timedelta(hours=-1, minutes=-30)) == b"-01:30:00"
    assert encode_value(b"\x00\xff") == b"\x00\xff"


# -- prepared statements (binary protocol) ---------------------------------------------------


def test_placeholders_skip_quotes_and_comments() -> None:
    sql = "SELECT ?, '?', \"?\", `?`, 'it''s ?', 'a\\'?' /* ? */ -- ?\n, ? # ?\n"
    offsets = find_placeholders(sql)
    assert [sql[i] for i in offsets] == ["?", "?"]
    assert offsets == [sql.index("?"), sql.index(", ? #") + 2]


def test_sql_literals() -> None:
    assert sql_literal(None) == "NULL" and sql_literal(7) == "7" and sql_literal(1.5) == "1.5"
    assert sql_literal("it's\\\n") == "'it\\'s\\\\\\n'"
    assert sql_literal(b"ok") == "'ok'" and sql_literal(b"\xff\x00") == "X'ff00'"


def execute_payload(statement_id: int, params: list[tuple[int, bytes | None]]) -> bytes:
    """COM_STMT_EXECUTE with (type, binary value or None) parameters, types bound."""
    nulls = bytearray((len(params) + 7) // 8)
    types = b""
    values = b""
    for i, (ptype, raw) in enumerate(params):
        types += bytes((ptype, 0))
        if raw is None:
            nulls[i // 8] |= 1 << (i % 8)
        else:
            values += raw
    head = b"\x17" + struct.pack("<IBI", statement_id, 0, 1)
    return head + bytes(nulls) + b"\x01" + types + values


def test_prepare_execute_and_binary_rows() -> None:
    conn = logged_in(caps=0)
    assert command(conn, b"\x16SELECT a, b, c FROM t WHERE a = ? AND b = ? AND c = ?") is NEED_DATA
    items = packets(conn.data_to_send())
    statement_id, columns, params = struct.unpack_from("<IHH", items[0][1], 1)
    assert (columns, params) == (0, 3) and len(items) == 1 + 3 + 1  # params, then EOF
    payload = execute_payload(
        statement_id,
        [(8, struct.pack("<q", -5)), (253, b"\x03x'y"), (6, None)],
    )
    event = command(conn, payload)
    assert event == Query(
        "SELECT a, b, c FROM t WHERE a = -5 AND b = 'x\\'y' AND c = NULL", prepared=True
    )
    cols = [Column("n", LONGLONG, charset=BINARY_CHARSET), Column("s"), Column("d", 12)]
    conn.send(ResultSet(cols, [(1, "a", "2024-02-03 04:05:06"), (None, None, "not a date")]))
    items = packets(conn.data_to_send())
    assert items[0][1] == b"\x03" and items[4][1][0] == 0xFE  # count, 3 definitions, EOF
    # "d" held a value that is no DATETIME, so it is re-announced as a string column.
    assert items[3][1][-6] == 253
    assert items[5][1] == (
        b"\x00\x00" + struct.pack("<q", 1) + b"\x01a" + b"\x132024-02-03 04:05:06"
    )
    assert items[6][1] == b"\x00" + bytes([0b1100]) + b"\x0anot a date"
    assert items[7][1][0] == 0xFE
    # Afterwards plain queries get text rows again.
    command(conn, b"\x03SELECT 1")
    conn.send(ResultSet([Column("1", LONGLONG)], [(1,)]))
    assert packets(conn.data_to_send())[3][1] == b"\x011"


def test_binary_dates_and_long_data() -> None:
    conn = logged_in(caps=CLIENT_DEPRECATE_EOF)
    command(conn, b"\x16INSERT INTO t VALUES (?, ?)")
    statement_id = struct.unpack_from("<I", packets(conn.data_to_send())[0][1], 1)[0]
    command(conn, b"\x18" + struct.pack("<IH", statement_id, 1) + b"long ")
    command(conn, b"\x18" + struct.pack("<IH", statement_id, 1) + b"data")
    assert conn.data_to_send() == b""  # SEND_LONG_DATA has no answer
    date = struct.pack("<BHBBBBBI", 11, 2024, 1, 2, 3, 4, 5, 60)
    payload = execute_payload(statement_id, [(12, date), (252, b"")])
    assert command(conn, payload) == Query(
        "INSERT INTO t VALUES ('2024-01-02 03:04:05.000060', 'long data')", prepared=True
    )
    conn.send(Ok(1))
    command(conn, b"\x16SELECT d FROM t")
    conn.data_to_send()
    command(conn, b"\x17" + struct.pack("<IBI", statement_id + 1, 0, 1))
    conn.send(ResultSet([Column("d", 12, charset=BINARY_CHARSET)], [("2024-01-02 03:04:05",)]))
    row = packets(conn.data_to_send())[2][1]
    assert row == b"\x00\x00" + struct.pack("<BHBBBBB", 7, 2024, 1, 2, 3, 4, 5)


def test_truncated_execute_is_a_protocol_error() -> None:
    conn = logged_in()
    command(conn, b"\x16SELECT ?")
    statement_id = struct.unpack_from("<I", packets(conn.data_to_send())[0][1], 1)[0]
    send(conn, execute_payload(statement_id, [(8, b"\x01\x02")]), 0)
    with pytest.raises(ProtocolError):
        conn.next_event()


@given(st.binary(max_size=64))
@settings(max_examples=150, deadline=None)
def test_garbage_execute_parameters_are_a_query_or_a_protocol_error(tail: bytes) -> None:
    conn = logged_in()
    command(conn, b"\x16SELECT ?, ?, ?")
    statement_id = struct.unpack_from("<I", packets(conn.data_to_send())[0][1], 1)[0]
    send(conn, b"\x17" + struct.pack("<IBI", statement_id, 0, 1) + tail, 0)
    try:
        event = conn.next_event()
    except ProtocolError:
        assert conn.state is State.CLOSED
        return
    assert isinstance(event, Query) and event.prepared
    assert event.sql.startswith("SELECT ")
