"""DnsServer through real clients (dnspython) on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from dns_testzones import FOO_ZONE
from dns_threaded import server_in_thread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylamp.dns.server import DnsServer
from pylamp.dns.zone import load_zone

TIMEOUT = 5.0


async def udp(server: DnsServer, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=TIMEOUT)


async def tcp(server: DnsServer, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return await dns.asyncquery.tcp(query, "127.0.0.1", port=server.port, timeout=TIMEOUT)


async def test_answers_udp_and_tcp_on_one_port(dns_server: DnsServer) -> None:
    assert dns_server.port > 0
    assert dns_server.udp_address == ("127.0.0.1", dns_server.port) == dns_server.tcp_address
    for ask in (udp, tcp):
        reply = await ask(dns_server, "WWW.foo.com")
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert reply.question[0].name.to_text() == "WWW.foo.com."
        assert len(reply.answer[0]) == 3
        nx = await ask(dns_server, "nope.foo.com")
        assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
        refused = await ask(dns_server, "www.example.org")
        assert refused.rcode() == dns.rcode.REFUSED


async def test_tcp_several_queries_on_one_connection(dns_server: DnsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    queries = [dns.message.make_query(n, "A") for n in ("www.foo.com", "ns1.foo.com", "x.foo.com")]
    for q in queries[:2]:  # two pipelined in one write, then one more
        wire = q.to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
    await writer.drain()
    replies = []
    for i in range(3):
        if i == 2:
            wire = queries[2].to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TIMEOUT), "big")
        replies.append(dns.message.from_wire(await reader.readexactly(size)))
    writer.close()
    await writer.wait_closed()
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [r.rcode() for r in replies] == [0, 0, dns.rcode.NXDOMAIN]


BIG = "$ORIGIN big.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 10.1.1.1\n" + "".join(
    f'txt TXT "{i:03d}{"x" * 200}"\n' for i in range(12)
)


async def test_udp_truncated_then_full_over_tcp() -> None:
    async with DnsServer(zones=[BIG]) as server:
        query = dns.message.make_query("txt.big.test", "TXT")
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=TIMEOUT)
        assert reply.flags & dns.flags.TC and reply.answer == []
        full = await dns.asyncquery.tcp(query, "127.0.0.1", port=server.port, timeout=TIMEOUT)
        assert not full.flags & dns.flags.TC and len(full.answer[0]) == 12
        # dnspython's resolver-style helper retries over TCP by itself on TC.
        both, used_tcp = await dns.asyncquery.udp_with_fallback(
            query, "127.0.0.1", port=server.port, timeout=TIMEOUT
        )
        assert used_tcp and len(both.answer[0]) == 12


async def test_round_robin_3000_queries_udp_and_tcp(dns_server: DnsServer) -> None:
    firsts: collections.Counter[str] = collections.Counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", dns_server.port))
    try:
        for i in range(3000):
            query = dns.message.make_query("www.foo.com", "A")
            wire = query.to_wire()
            if i % 2:
                await loop.sock_sendall(sock, wire)
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
            else:
                writer.write(len(wire).to_bytes(2, "big") + wire)
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TIMEOUT), "big")
                data = await reader.readexactly(size)
            reply = dns.message.from_wire(data)
            assert reply.id == query.id
            firsts[reply.answer[0][0].address] += 1
    finally:
        sock.close()
        writer.close()
    assert set(firsts) == {"127.0.2.1", "127.0.2.2", "127.0.2.3"}
    assert all(999 <= n <= 1001 for n in firsts.values()), firsts


async def test_zone_sources_path_text_and_zone(tmp_path: Path) -> None:
    path = tmp_path / "foo.zone"
    path.write_text(FOO_ZONE)
    other = "$ORIGIN bar.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\nwww A 10.0.0.1\n"
    third = load_zone("$ORIGIN baz.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\nwww A 10.0.0.2\n")
    async with DnsServer(zones=[path, other, third], port=0) as server:
        for name, address in (("www.bar.test", "10.0.0.1"), ("www.baz.test", "10.0.0.2")):
            assert (await udp(server, name)).answer[0][0].address == address
        assert len((await udp(server, "www.foo.com")).answer[0]) == 3
        assert server.zone_files == {"foo.com.": path}


async def test_reload_bad_file_keeps_old_zone(tmp_path: Path) -> None:
    path = tmp_path / "foo.zone"
    path.write_text(FOO_ZONE)
    async with DnsServer(zones=[str(path)]) as server:
        path.write_text(FOO_ZONE + "oops IN AX 1.2.3.4\n")
        errors = server.reload()
        assert len(errors) == 1
        line = FOO_ZONE.count("\n") + 1
        assert str(errors[0]) == f"{path}:{line}: unknown record type 'AX'"
        assert len((await udp(server, "www.foo.com")).answer[0]) == 3  # old zone still served
        path.write_text(FOO_ZONE.replace("2006032801", "2006032802") + "new IN A 10.0.0.7\n")
        assert server.reload() == []
        assert (await udp(server, "new.foo.com")).answer[0][0].address == "10.0.0.7"
        path.unlink()
        errors = server.reload()
        assert len(errors) == 1 and str(path) in str(errors[0])
        assert (await tcp(server, "new.foo.com")).answer[0][0].address == "10.0.0.7"


async def test_bad_zone_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "bad.zone"
    path.write_text("$ORIGIN foo.com.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\nwww A 300.1.1.1\n")
    with pytest.raises(ValueError, match=r"bad.zone:4: bad IPv4 address '300.1.1.1'"):
        DnsServer(zones=[path])


async def test_transfer_and_notify_handlers(dns_server: DnsServer) -> None:
    seen: list[tuple[bytes, str, bool]] = []
    axfr = dns.message.make_query("foo.com", "AXFR")

    def transfer(query: bytes, peer: str, over_tcp: bool) -> list[bytes] | None:
        seen.append((query, peer, over_tcp))
        if not over_tcp:
            return None
        reply = dns.message.make_response(dns.message.from_wire(query))
        return [reply.to_wire(), reply.to_wire()]

    async def notify(query: bytes, peer: str) -> bytes | None:
        await asyncio.sleep(0)
        reply = dns.message.make_response(dns.message.from_wire(query))
        return reply.to_wire()

    dns_server.transfer_handler = transfer
    dns_server.notify_handler = notify
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    wire = axfr.to_wire()
    writer.write(len(wire).to_bytes(2, "big") + wire)
    for _ in range(2):
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TIMEOUT), "big")
        assert dns.message.from_wire(await reader.readexactly(size)).id == axfr.id
    writer.close()
    assert seen == [(wire, "127.0.0.1", True)]
    refused = await dns.asyncquery.udp(axfr, "127.0.0.1", port=dns_server.port, timeout=TIMEOUT)
    assert refused.rcode() == dns.rcode.REFUSED and seen[-1][2] is False
    note = dns.message.make_query("foo.com", "SOA")
    note.set_opcode(dns.opcode.NOTIFY)
    ack = await dns.asyncquery.udp(note, "127.0.0.1", port=dns_server.port, timeout=TIMEOUT)
    assert ack.opcode() == dns.opcode.NOTIFY and ack.id == note.id


async def test_without_handlers_axfr_refused_notify_notimp(dns_server: DnsServer) -> None:
    dns_server.transfer_handler = None
    dns_server.notify_handler = None
    axfr = dns.message.make_query("foo.com", "AXFR")
    reply = await dns.asyncquery.tcp(axfr, "127.0.0.1", port=dns_server.port, timeout=TIMEOUT)
    assert reply.rcode() == dns.rcode.REFUSED
    note = dns.message.make_query("foo.com", "SOA")
    note.set_opcode(dns.opcode.NOTIFY)
    reply = await dns.asyncquery.udp(note, "127.0.0.1", port=dns_server.port, timeout=TIMEOUT)
    assert reply.rcode() == dns.rcode.NOTIMP


async def test_fixed_port_and_clean_restart() -> None:
    async with DnsServer(zones=[FOO_ZONE]) as first:
        port = first.port
    async with DnsServer(zones=[FOO_ZONE], port=port) as again:  # freed on close
        assert again.port == port
        assert (await tcp(again, "www.foo.com")).rcode() == dns.rcode.NOERROR


# --- fuzzing a live server ----------------------------------------------------------------


@pytest.fixture(scope="module", params=[True, False], ids=["udp-batch", "udp-loop"])
def threaded_server(request: pytest.FixtureRequest) -> Iterator[int]:
    """A server on its own loop in a thread, so hypothesis can drive it synchronously;
    UDP answered by the batch thread, then on the event loop."""
    with server_in_thread(zones=[FOO_ZONE], udp_batch=request.param) as server:
        yield server.port


_BASE = dns.message.make_query("www.foo.com", "A", use_edns=0).to_wire()
_PACKETS = st.one_of(
    st.binary(max_size=100),
    st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)).map(
        lambda t: _BASE[: t[0]] + bytes([t[1]]) + _BASE[t[0] + 1 :]
    ),
    st.integers(0, len(_BASE)).map(lambda n: _BASE[:n]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PACKETS, min_size=1, max_size=20), st.binary(max_size=60))
def test_random_packets_never_stop_the_server(
    threaded_server: int, packets: list[bytes], tcp_junk: bytes
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in packets:
            sock.sendto(packet, ("127.0.0.1", threaded_server))
    with socket.create_connection(("127.0.0.1", threaded_server), timeout=TIMEOUT) as conn:
        conn.sendall(len(tcp_junk).to_bytes(2, "big") + tcp_junk)
    query = dns.message.make_query("www.foo.com", "A")
    reply = dns.query.udp(query, "127.0.0.1", port=threaded_server, timeout=TIMEOUT)
    assert len(reply.answer[0]) == 3
    reply = dns.query.tcp(query, "127.0.0.1", port=threaded_server, timeout=TIMEOUT)
    assert len(reply.answer[0]) == 3


async def test_tcp_idle_connection_closed() -> None:
    async with DnsServer(zones=[FOO_ZONE], tcp_idle_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed by the server
        writer.close()
        # A connection that sends half a message is closed the same way.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x00\x20\x01")
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()


@pytest.mark.parametrize("udp_batch", [True, False])
async def test_failed_start_frees_its_port_and_threads(tmp_path: Path, udp_batch: bool) -> None:
    # the watched zone's folder is gone by the time the server starts: start() raises, and
    # leaves no socket bound and no UDP thread running behind it
    folder = tmp_path / "zones"
    folder.mkdir()
    zone_file = folder / "foo.com.zone"
    zone_file.write_text(FOO_ZONE)
    server = DnsServer(zones=[zone_file], port=0, watch=True, udp_batch=udp_batch)
    zone_file.unlink()
    folder.rmdir()
    threads_before = {t.ident for t in threading.enumerate()}
    with pytest.raises(OSError):
        await server.start()
    assert not server.udp_batching
    assert {t.ident for t in threading.enumerate()} <= threads_before, threading.enumerate()
    assert server.port != 0
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((server.host, server.port))  # raises EADDRINUSE if still held
