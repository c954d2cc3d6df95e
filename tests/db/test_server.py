"""SqlServer against real clients: PyMySQL, raw sockets, many connections at once."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymysql
import pytest

from pylamp.db.mysql import auth
from pylamp.db.mysql.handshake import (
    CLIENT_DEPRECATE_EOF,
    build_handshake_response,
    parse_handshake,
)
from pylamp.db.mysql.packets import PacketReader, frame_packets
from pylamp.db.server import SqlServer

PASSWORD = "s3cret"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SqlServer]:
    async with SqlServer(
        tmp_path / "db1", root_password=PASSWORD, max_allowed_packet=1 << 20
    ) as db:
        yield db


def connect(db: SqlServer, database: str | None = None, **kwargs: object) -> pymysql.Connection:
    options: dict[str, object] = {"user": "root", "password": PASSWORD, "autocommit": True}
    options.update(kwargs)
    return pymysql.connect(host="127.0.0.1", port=db.port, database=database, **options)


def in_thread(fn: object, *args: object) -> asyncio.Future[object]:
    return asyncio.to_thread(fn, *args)  # type: ignore[arg-type]


@pytest.fixture
async def shop(server: SqlServer) -> SqlServer:
    def create() -> None:
        with connect(server) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE shop")
            cur.execute("USE shop")
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))")

    await asyncio.to_thread(create)
    return server


# -- a raw client over a socket --------------------------------------------------------------


class RawClient:
    """Just enough of a client to speak the handshake with any plugin and send odd bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = PacketReader()
        _, payload = self.read()
        self.greeting = parse_handshake(payload)

    def read(self) -> tuple[int, bytes]:
        while (packet := self.reader.next_packet()) is None:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.reader.feed(data)
        return packet

    def send(self, payload: bytes, seq: int) -> None:
        self.sock.sendall(frame_packets([payload], seq)[0])

    def login(self, password: str, plugin: str = "mysql_native_password") -> bytes:
        """Log in as root, answering whatever plugin the server asks for; return the reply."""
        answer = auth.scramble_password(password, self.greeting.scramble)
        if plugin != "mysql_native_password":
            answer = os.urandom(32)  # what a caching_sha2 answer looks like: useless to us
        self.send(
            build_handshake_response(
                "root", answer, capabilities=CLIENT_DEPRECATE_EOF, plugin=plugin
            ),
            1,
        )
        seq, reply = self.read()
        if reply[0] == 0xFE:  # auth switch request
            plugin_name, _, data = reply[1:].partition(b"\0")
            assert plugin_name == b"mysql_native_password"
            self.send(auth.scramble_password(password, data.rstrip(b"\0")), seq + 1)
            seq, reply = self.read()
        return reply

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (reads EOF)."""
        self.sock.settimeout(10)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


def errno_of(payload: bytes) -> int:
    assert payload[0] == 0xFF
    return int(struct.unpack_from("<H", payload, 1)[0])


# -- tests -----------------------------------------------------------------------------------


async def test_pymysql_round_trip(shop: SqlServer) -> None:
    def work() -> None:
        with connect(shop, "shop") as c, c.cursor() as cur:
            assert cur.execute("INSERT INTO t (v) VALUES ('a'), (NULL)") == 2
            assert cur.lastrowid == 1
            cur.execute("SELECT id, v FROM t ORDER BY id")
            assert cur.fetchall() == ((1, "a"), (2, None))
            assert [d[0] for d in cur.description] == ["id", "v"]
            c.ping()
            c.select_db("shop")

    await in_thread(work)


async def test_wrong_password_and_unknown_user_get_1045(server: SqlServer) -> None:
    def work() -> None:
        for user, password in (("root", "nope"), ("root", ""), ("nobody", PASSWORD)):
            with pytest.raises(pymysql.err.OperationalError) as info:
                connect(server, user=user, password=password)
            assert info.value.args[0] == 1045
            assert f"'{user}'@'localhost'" in info.value.args[1]

    await in_thread(work)


async def test_unknown_database_at_login_and_init_db(server: SqlServer) -> None:
    def work() -> None:
        with pytest.raises(pymysql.err.OperationalError) as info:
            connect(server, "nosuchdb")
        assert info.value.args[0] == 1049
        with connect(server) as c:
            with pytest.raises(pymysql.err.OperationalError) as info:
                c.select_db("nosuchdb")
            assert info.value.args[0] == 1049
            c.ping()

    await in_thread(work)


@pytest.mark.parametrize("plugin", ["caching_sha2_password", "client_ed25519"])
async def test_auth_switch_to_native_password(server: SqlServer, plugin: str) -> None:
    def work() -> None:
        client = RawClient(server.port)
        assert client.login(PASSWORD, plugin)[0] == 0x00
        client.close()
        client = RawClient(server.port)
        assert errno_of(client.login("wrong", plugin)) == 1045
        assert client.closed_by_server()

    await in_thread(work)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(struct.pack("<I", 2996 | 0x77 << 24) + os.urandom(2996), id="random-bytes"),
        pytest.param(struct.pack("<I", 100) + b"\x03SELE", id="truncated-then-close"),
        pytest.param(struct.pack("<I", (1 << 20) + 1) + b"x" * 10, id="oversized-length"),
        pytest.param(struct.pack("<I", 0xFFFFFF) * 8, id="oversized-split-length"),
        pytest.param(frame_packets([b"\x03SELECT 1"], 9)[0], id="bad-sequence"),
        pytest.param(frame_packets([b""], 0)[0], id="empty-command"),
    ],
)
async def test_malformed_packets_close_only_that_connection(
    server: SqlServer, garbage: bytes
) -> None:
    def work() -> None:
        bystander = connect(server)
        for log_in in (False, True):
            client = RawClient(server.port)
            if log_in:
                assert client.login(PASSWORD)[0] == 0x00
            client.sock.sendall(garbage)
            if garbage.startswith(struct.pack("<I", 100)):
                client.sock.shutdown(socket.SHUT_WR)
            assert client.closed_by_server()
            client.close()
        with bystander.cursor() as cur:
            cur.execute("SELECT 1 + 1")
            assert cur.fetchone() == (2,)
        bystander.close()
        with connect(server) as c:
            c.ping()

    await in_thread(work)


async def test_silent_client_is_dropped_after_connect_timeout(tmp_path: Path) -> None:
    async with SqlServer(tmp_path / "db", root_password=PASSWORD, connect_timeout=1.0) as db:

        def work() -> None:
            client = RawClient(db.port)
            client.sock.sendall(struct.pack("<I", 100 | 1 << 24) + b"partial")
            assert client.closed_by_server()
            client.close()
            with connect(db) as c:  # logged-in clients are not subject to it
                c.ping()

        await in_thread(work)


async def test_unknown_commands_get_errors(server: SqlServer) -> None:
    def work() -> None:
        client = RawClient(server.port)
        client.login(PASSWORD)
        client.send(b"\x63", 0)
        assert errno_of(client.read()[1]) == 1047
        client.send(b"\x17" + struct.pack("<IBI", 77, 0, 1), 0)  # EXECUTE of no statement
        assert errno_of(client.read()[1]) == 1243
        client.send(b"\x0e", 0)  # still usable: COM_PING
        assert client.read() == (1, b"\x00\x00\x00\x02\x00\x00\x00")
        client.close()

    await in_thread(work)


async def test_many_concurrent_connections(shop: SqlServer) -> None:
    clients = 32
    barrier = threading.Barrier(clients)

    def work(i: int) -> int:
        with connect(shop, "shop") as c, c.cursor() as cur:
            barrier.wait(timeout=30)  # all connected at the same time
            for j in range(2):
                cur.execute("INSERT INTO t (v) VALUES (%s)", (f"{i}-{j}",))
            cur.execute("SELECT COUNT(*) FROM t WHERE v LIKE %s", (f"{i}-%",))
            (count,) = cur.fetchone()
            return int(count)

    def run_all() -> list[int]:
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(work, range(clients)))

    assert await in_thread(run_all) == [2] * clients

    def total() -> int:
        with connect(shop, "shop") as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM t")
            return int(cur.fetchone()[0])

    assert await asyncio.to_thread(total) == clients * 2


async def test_disconnect_mid_transaction_rolls_back(shop: SqlServer) -> None:
    def work() -> None:
        c = connect(shop, "shop", autocommit=False)
        with c.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO t (v) VALUES ('lost')")
        c._sock.shutdown(socket.SHUT_RDWR)  # vanish without COM_QUIT or ROLLBACK
        c._sock.close()
        with connect(shop, "shop") as other, other.cursor() as cur:
            # The rollback frees the write lock, so this write goes through, and the row is gone.
            cur.execute("INSERT INTO t (v) VALUES ('kept')")
            cur.execute("SELECT v FROM t")
            assert cur.fetchall() == (("kept",),)

    await in_thread(work)
    await _until(lambda: shop.connections == 0)


async def test_stop_closes_open_connections(tmp_path: Path) -> None:
    async with SqlServer(tmp_path / "db", root_password=PASSWORD) as db:
        c = await in_thread(connect, db)
        assert db.connections == 1
    with pytest.raises(pymysql.err.OperationalError):
        await in_thread(c.ping, False)  # type: ignore[attr-defined]


async def _until(predicate: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_multi_statements_return_every_result_then_the_error(shop: SqlServer) -> None:
    def work() -> None:
        flags = pymysql.constants.CLIENT.MULTI_STATEMENTS
        with connect(shop, "shop", client_flag=flags) as c, c.cursor() as cur:
            cur.execute("INSERT INTO t (v) VALUES ('x'); SELECT v FROM t; SELECT 2")
            assert cur.rowcount == 1
            assert cur.nextset() and cur.fetchall() == (("x",),)
            assert cur.nextset() and cur.fetchall() == ((2,),)
            assert not cur.nextset()
            cur.execute("SELECT 1; SELECT * FROM nosuch; SELECT 3")
            assert cur.fetchall() == ((1,),)
            with pytest.raises(pymysql.err.ProgrammingError) as info:
                cur.nextset()
            assert info.value.args[0] == 1146
            cur.execute("SELECT 4")  # the connection is in step again
            assert cur.fetchall() == ((4,),)

    await in_thread(work)


async def test_field_list_and_reset_connection(shop: SqlServer) -> None:
    def work() -> None:
        client = RawClient(shop.port)
        client.login(PASSWORD)
        client.send(b"\x02shop", 0)  # COM_INIT_DB
        assert client.read()[1][0] == 0x00
        client.send(b"\x04t\x00", 0)  # COM_FIELD_LIST
        names = []
        while (payload := client.read()[1])[0] != 0xFE:
            pos = 0
            for _ in range(5):
                n = payload[pos]
                field, pos = payload[pos + 1 : pos + 1 + n], pos + 1 + n
            names.append(field)
        assert names == [b"id", b"v"]
        client.send(b"\x04nosuch\x00", 0)
        assert errno_of(client.read()[1]) == 1146
        client.send(b"\x03BEGIN", 0)
        assert parse_status(client.read()[1]) & 1  # SERVER_STATUS_IN_TRANS
        client.send(b"\x1f", 0)  # COM_RESET_CONNECTION rolls back
        assert parse_status(client.read()[1]) & 1 == 0
        client.send(b"\x03SELECT COUNT(*) FROM t", 0)  # and keeps the current database
        assert client.read()[1] == b"\x01"
        client.close()

    await in_thread(work)


def parse_status(ok: bytes) -> int:
    assert ok[0] == 0x00 and ok[1] < 251 and ok[2] < 251
    return int(struct.unpack_from("<H", ok, 3)[0])


async def test_a_long_read_does_not_block_writes(shop: SqlServer) -> None:
    def fill() -> None:
        with connect(shop, "shop") as c, c.cursor() as cur:
            cur.execute("CREATE TABLE n (x INT)")
            cur.execute("BEGIN")
            cur.executemany("INSERT INTO n (x) VALUES (%s)", [(i,) for i in range(200)])
            cur.execute("COMMIT")

    await in_thread(fill)
    long_read = "SELECT COUNT(*) FROM n a, n b, n c WHERE a.x + b.x + c.x >= 0"

    def read() -> object:
        with connect(shop, "shop") as c, c.cursor() as cur:
            cur.execute(long_read)
            return cur.fetchone()

    def write() -> object:
        with connect(shop, "shop") as c, c.cursor() as cur:
            cur.execute("INSERT INTO t (v) VALUES ('during the read')")
            cur.execute("SELECT COUNT(*) FROM t")
            return cur.fetchone()

    reader = asyncio.ensure_future(in_thread(read))
    await _until(lambda: any(p.running == long_read for p in shop.processlist()))
    assert await in_thread(write) == (1,)
    assert not reader.done()  # the write committed while the read was still running
    assert await reader == (200**3,)


def query_error(client: RawClient, sql: str) -> tuple[int, str]:
    client.send(b"\x03" + sql.encode(), 0)
    payload = client.read()[1]
    return errno_of(payload), payload[4:9].decode()


async def test_errors_carry_mysql_numbers_and_sqlstates(shop: SqlServer) -> None:
    cases = [
        ("CREATE TABLE x (a INT)", 1046, "3D000"),
        ("USE nosuch", 1049, "42000"),
        ("CREATE TABLE shop.t (a INT)", 1050, "42S01"),
        ("DROP TABLE shop.nosuch", 1051, "42S02"),
        ("SELECT nosuch FROM shop.t", 1054, "42S22"),
        ("SELEKT 1", 1064, "42000"),
        ("SELECT * FROM shop.nosuch", 1146, "42S02"),
    ]

    def work() -> None:
        client = RawClient(shop.port)
        client.login(PASSWORD)
        got = [(sql, *query_error(client, sql)) for sql, _, _ in cases]
        assert got == cases
        client.send(b"\x03INSERT INTO shop.t (id, v) VALUES (1, 'a')", 0)
        assert client.read()[1][0] == 0x00
        assert query_error(client, "INSERT INTO shop.t (id) VALUES (1)") == (1062, "23000")
        client.send(b"\x03CREATE USER 'clerk'@'%' IDENTIFIED BY 'pw'", 0)
        assert client.read()[1][0] == 0x00
        client.close()
        with connect(shop, user="clerk", password="pw") as c, c.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute("SELECT * FROM shop.t")
            assert info.value.args[0] == 1142
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute("FLUSH LOGS")
            assert info.value.args[0] == 1227

    await in_thread(work)


async def test_read_only_server_refuses_writes_with_1290(tmp_path: Path) -> None:
    def setup(db: SqlServer) -> None:
        with connect(db) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE d")
            cur.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'apppw'")
            cur.execute("GRANT ALL ON d.* TO 'app'@'%'")

    def work(db: SqlServer) -> None:
        # As in MySQL, read_only binds ordinary users; root (SUPER) may still write.
        with connect(db, user="app", password="apppw") as c, c.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute("CREATE TABLE d.t (a INT)")
            assert info.value.args[0] == 1290
            cur.execute("SELECT 1")

    async with SqlServer(tmp_path / "db", root_password=PASSWORD) as db:
        await in_thread(setup, db)
    async with SqlServer(tmp_path / "db", root_password=PASSWORD, read_only=True) as db:
        await in_thread(work, db)


async def test_too_many_connections_get_1040(tmp_path: Path) -> None:
    async with SqlServer(tmp_path / "db", root_password=PASSWORD, max_connections=2) as db:

        def work() -> None:
            first, second = connect(db), connect(db)
            with pytest.raises(pymysql.err.OperationalError) as info:
                connect(db)
            assert info.value.args[0] == 1040
            first.close()
            deadline = 100
            while db.connections > 1 and deadline:  # the server notices the close
                deadline -= 1
                threading.Event().wait(0.05)
            connect(db).close()
            second.close()

        await in_thread(work)


async def test_stacked_statements_need_the_multi_statements_flag(shop: SqlServer) -> None:
    def work() -> None:
        with connect(shop, "shop") as c, c.cursor() as cur:  # PyMySQL's default: flag unset
            with pytest.raises(pymysql.err.ProgrammingError) as info:
                cur.execute("SELECT 1; DROP TABLE t")
            assert info.value.args[0] == 1064
            cur.execute("SELECT 'a;b', 2;")  # one statement (a trailing ';' is fine)
            assert cur.fetchall() == (("a;b", 2),)
            cur.execute("SELECT COUNT(*) FROM t")  # t is still there
            assert cur.fetchall() == ((0,),)

    await in_thread(work)


async def test_root_without_password_logs_in_from_loopback_only_with_empty_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SqlServer(tmp_path / "db") as db:

        def work() -> None:
            with pymysql.connect(host="127.0.0.1", port=db.port, user="root", password="") as c:
                c.ping()
            with pytest.raises(pymysql.err.OperationalError) as info:
                pymysql.connect(host="127.0.0.1", port=db.port, user="root", password="guess")
            assert info.value.args[0] == 1045

        await in_thread(work)
    assert any("root" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_passwords_are_stored_only_as_native_hashes(tmp_path: Path) -> None:
    secret = "Tr0ub4dor&3-unusual"

    def work(db: SqlServer) -> None:
        with connect(db) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE shop")
            cur.execute("CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20))")
            cur.execute(f"CREATE USER 'alice'@'%' IDENTIFIED BY '{secret}'")
            cur.execute("GRANT SELECT ON shop.* TO 'alice'@'%'")
        with connect(db, "shop", user="alice", password=secret) as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM t")
            assert cur.fetchone() == (0,)
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute("INSERT INTO t (v) VALUES ('no')")
            assert info.value.args[0] == 1142

    async with SqlServer(tmp_path / "db", root_password=PASSWORD, log_bin="db1") as db:
        await in_thread(work, db)
    # Neither the tables nor the binary log hold the password itself.
    stored = b"".join(p.read_bytes() for p in (tmp_path / "db").rglob("*") if p.is_file())
    assert secret.encode() not in stored
    assert auth.password_hash(secret).encode() in stored
