"""The batched UDP path (recvmmsg/sendmmsg in a thread): the socket part on its own, and a
DnsServer answering through it exactly as the Answerer does, with rotation, reloads and
health filters seen at once, and the event-loop path as fallback."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest
from dns_polling import until
from dns_testzones import FOO_ZONE, QUERIES, QuerySpec, mutated_packets, query_wire
from dns_threaded import server_in_thread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pylamp.dns.server
from pylamp.dns.answer import Answerer
from pylamp.dns.server import DnsServer
from pylamp.dns.udpbatch import BatchSocket, UdpBatchService, batch_available
from pylamp.dns.zone import load_zone

TIMEOUT = 5.0


def test_available_on_this_platform() -> None:
    # CI runs on 64-bit Linux: the batch path is what its tests exercise by default.
    assert batch_available()


def _bound(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(TIMEOUT)
    return sock


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_batch_takes_queued_datagrams_at_once_and_replies_to_each_sender(host: str) -> None:
    with _bound(host) as server_sock:
        batch = BatchSocket(server_sock, size=8)
        clients = [_bound(host) for _ in range(3)]
        try:
            where = server_sock.getsockname()
            sent = []
            for j in range(11):  # loopback queues each datagram before sendto returns
                client = clients[j % 3]
                payload = b"drop" if j == 4 else f"q{j}".encode()
                client.sendto(payload, where)
                sent.append((payload, client))
            assert batch.receive() == 8  # the batch size caps it
            misses = batch.answer(lambda data, _arg: None if data == b"drop" else b"re:" + data)
            assert misses == [4]
            assert batch.datagram(4) == b"drop"
            assert batch.peer(4)[:2] == clients[1].getsockname()[:2]
            assert batch.flush() == 7
            assert batch.receive() == 3
            batch.answer(lambda data, tag: tag + data, b"re:")
            assert batch.flush() == 3
            for payload, client in sent:
                if payload != b"drop":
                    assert client.recv(100) == b"re:" + payload
        finally:
            for client in clients:
                client.close()


def test_refused_reply_is_skipped_and_the_rest_sent() -> None:
    with _bound("127.0.0.1") as server_sock, _bound("127.0.0.1") as client:
        batch = BatchSocket(server_sock, size=4)
        for j in range(3):
            client.sendto(bytes([j]), server_sock.getsockname())
        assert batch.receive() == 3
        # Make datagram 1 look as if it came from port 0, which Linux will not send to.
        ctypes.memset(batch._name_base + 1 * 128 + 2, 0, 2)
        batch.answer(lambda data, _arg: b"re" + data)
        assert batch.flush() == 2
        assert [client.recv(10), client.recv(10)] == [b"re\x00", b"re\x02"]


def test_wake_ends_a_blocked_receive() -> None:
    with _bound("127.0.0.1") as server_sock:
        batch = BatchSocket(server_sock)
        got: list[int] = []
        thread = threading.Thread(target=lambda: got.append(batch.receive()))
        thread.start()
        batch.wake()
        thread.join(TIMEOUT)
        assert got == [0]


async def test_service_hands_misses_and_failures_to_the_loop() -> None:
    loop = asyncio.get_running_loop()
    missed: list[tuple[bytes, tuple[str, int]]] = []

    def cached(query: bytes, limit: int) -> bytes | None:
        if query == b"boom":
            raise ValueError("a bug in the answer code")
        return None if query == b"miss" else b"re" + query

    with _bound("127.0.0.1") as server_sock, _bound("127.0.0.1") as client:
        client.setblocking(False)
        service = UdpBatchService(
            server_sock,
            cached,
            512,
            lambda q, peer: missed.append((q, peer)),
            threading.Lock(),
            loop,
        )
        service.start()
        try:
            for payload in (b"boom", b"miss", b"ok"):
                await loop.sock_sendto(client, payload, server_sock.getsockname())
            # Whether the three came in one batch or not, "boom" costs "ok" nothing.
            assert await asyncio.wait_for(loop.sock_recv(client, 100), TIMEOUT) == b"reok"
            await until(lambda: len(missed) == 2, "the misses to reach the loop")
            assert missed == [(b"boom", client.getsockname()), (b"miss", client.getsockname())]
        finally:
            await service.stop()


# --- a server on the batch path ---------------------------------------------------------


@pytest.fixture(scope="module")
def twins() -> Iterator[tuple[socket.socket, Answerer]]:
    """A batch-path server and an Answerer for the same zone, kept in step: every packet
    goes to both, so the server's reply must equal the Answerer's byte for byte."""
    with server_in_thread(zones=[FOO_ZONE], udp_batch=True) as server:
        assert server.udp_batching
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT)
            client.connect(("127.0.0.1", server.port))
            yield client, Answerer([load_zone(FOO_ZONE)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(QUERIES, mutated_packets()), min_size=1, max_size=25))
def test_batch_server_replies_equal_the_answerer(
    twins: tuple[socket.socket, Answerer], packets: list[QuerySpec | bytes]
) -> None:
    client, reference = twins
    last = dns.message.make_query("www.foo.com", "A").to_wire()
    for packet in [*packets, last]:  # ends on a valid query: no stray reply is left over
        wire = query_wire(packet) if isinstance(packet, QuerySpec) else packet
        expected = reference.answer(wire, udp_limit=1232)
        client.send(wire)
        if expected is not None:  # a stray reply to a silent packet would show up here
            assert client.recv(65535) == expected


async def test_reload_and_health_change_seen_by_the_batch_path(tmp_path: Path) -> None:
    path = tmp_path / "foo.zone"
    path.write_text(FOO_ZONE)

    async def addresses(server: DnsServer) -> list[str]:
        query = dns.message.make_query("www.foo.com", "A")
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=TIMEOUT)
        return sorted(rr.address for rr in reply.answer[0])

    async with DnsServer(zones=[path], udp_batch=True) as server:
        assert server.udp_batching
        for _ in range(3):  # the first stores the replies; the others come from the thread
            assert await addresses(server) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
        assert server.udp_batches[1] >= 3
        server.answerer.set_live("www.foo.com", ["127.0.2.2"])  # what the health monitor does
        for _ in range(3):
            assert await addresses(server) == ["127.0.2.2"]
        server.answerer.set_live("www.foo.com", None)
        assert len(await addresses(server)) == 3
        path.write_text(
            FOO_ZONE.replace("2006032801", "2006032802").replace("127.0.2.3", "127.0.2.9")
        )
        assert server.reload() == []
        for _ in range(3):
            assert await addresses(server) == ["127.0.2.1", "127.0.2.2", "127.0.2.9"]


async def test_round_robin_exact_with_udp_bursts_and_tcp_together() -> None:
    """3,000 answers for www.foo.com: bursts from three UDP clients (answered in batches by
    the thread) and pipelined TCP queries (answered on the loop) at the same time."""
    firsts: collections.Counter[str] = collections.Counter()
    loop = asyncio.get_running_loop()

    def record(data: bytes) -> None:
        firsts[dns.message.from_wire(data).answer[0][0].address] += 1

    async def udp_bursts(server: DnsServer) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            for _ in range(20):
                for _ in range(45):
                    await loop.sock_sendall(
                        sock, dns.message.make_query("www.foo.com", "A").to_wire()
                    )
                for _ in range(45):
                    record(await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT))

    async def tcp_pipelined(server: DnsServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for _ in range(20):
                for _ in range(15):
                    wire = dns.message.make_query("www.foo.com", "A").to_wire()
                    writer.write(len(wire).to_bytes(2, "big") + wire)
                for _ in range(15):
                    size = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
                    record(await reader.readexactly(int.from_bytes(size, "big")))
        finally:
            writer.close()

    async with DnsServer(zones=[FOO_ZONE], udp_batch=True) as server:
        await asyncio.gather(*(udp_bursts(server) for _ in range(3)), tcp_pipelined(server))
        batches, datagrams = server.udp_batches
    assert sum(firsts.values()) == 3000
    assert all(999 <= n <= 1001 for n in firsts.values()), firsts
    assert datagrams == 2700 and batches < datagrams  # some batches held several queries


async def test_falls_back_to_the_event_loop_where_batching_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pylamp.dns.server, "batch_available", lambda: False)
    async with DnsServer(zones=[FOO_ZONE]) as server:
        assert not server.udp_batching and server.udp_batches == (0, 0)
        query = dns.message.make_query("www.foo.com", "A")
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=TIMEOUT)
        assert len(reply.answer[0]) == 3


async def test_batch_path_over_ipv6() -> None:
    async with DnsServer(zones=[FOO_ZONE], host="::1", udp_batch=True) as server:
        assert server.udp_batching
        for _ in range(2):  # the first goes through the loop (a miss), the second not
            query = dns.message.make_query("www.foo.com", "A")
            reply = await dns.asyncquery.udp(query, "::1", port=server.port, timeout=TIMEOUT)
            assert reply.id == query.id and len(reply.answer[0]) == 3
        assert server.udp_batches[1] == 2
