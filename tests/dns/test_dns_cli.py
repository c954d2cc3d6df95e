"""`python -m pylamp.dns` end to end, in subprocesses."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
from dns_process import TIMEOUT, running, spawn
from dns_testzones import FOO_ZONE

from pylamp.config import default_topology, dump_topology


async def query(port: int, name: str) -> dns.message.Message:
    q = dns.message.make_query(name, "A")
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=5)


async def wait_for_line(stream: asyncio.StreamReader, needle: bytes) -> bytes:
    async with asyncio.timeout(TIMEOUT):
        while True:
            line = await stream.readline()
            assert line, f"stream ended before {needle!r}"
            if needle in line:
                return line


async def test_cli_serves_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path) -> None:
    zone = tmp_path / "foo.zone"
    zone.write_text(FOO_ZONE)
    async with running("--zone", str(zone), "--listen", "127.0.0.1:0") as (proc, port):
        assert proc.stderr is not None
        reply = await query(port, "www.foo.com")
        assert len(reply.answer[0]) == 3
        zone.write_text(FOO_ZONE + "bad IN AX 1\n")
        proc.send_signal(signal.SIGHUP)
        line = await wait_for_line(proc.stderr, b"not reloaded")
        assert f"{zone}:{FOO_ZONE.count(chr(10)) + 1}: unknown record type 'AX'".encode() in line
        assert len((await query(port, "www.foo.com")).answer[0]) == 3
        zone.write_text(FOO_ZONE.replace("2006032801", "2006032802") + "new IN A 10.0.0.7\n")
        proc.send_signal(signal.SIGHUP)
        await wait_for_line(proc.stderr, b"serial 2006032802")
        assert (await query(port, "new.foo.com")).answer[0][0].address == "10.0.0.7"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


async def test_cli_refuses_bad_zone_with_file_and_line(tmp_path: Path) -> None:
    zone = tmp_path / "bad.zone"
    zone.write_text("$ORIGIN foo.com.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\nwww AX 1.2.3.4\n")
    proc = await spawn("--zone", str(zone), "--listen", "127.0.0.1:0")
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert f"{zone}:4: unknown record type 'AX'".encode() in err
    assert out == b""


async def test_cli_bad_arguments() -> None:
    proc = await spawn("--zone", "x.zone", "--listen", "nowhere")
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2 and b"expected HOST:PORT" in err


async def test_cli_from_topology_generates_the_zone(tmp_path: Path) -> None:
    topology = default_topology()
    ns1 = dataclasses.replace(topology.dns[0], host="127.0.0.1", port=0)
    topology = dataclasses.replace(
        topology,
        cluster=dataclasses.replace(topology.cluster, data_dir=str(tmp_path / "data")),
        dns=(ns1, *topology.dns[1:]),
    )
    config = tmp_path / "cluster.toml"
    config.write_text(dump_topology(topology))
    async with running("--config", str(config), "--name", "ns1") as (proc, port):
        reply = await query(port, "www.foo.com")
        assert reply.rcode() == dns.rcode.NOERROR
        assert sorted(rr.address for rr in reply.answer[0]) == [
            "127.0.2.1",
            "127.0.2.2",
            "127.0.2.3",
        ]
        assert (tmp_path / "data" / "ns1" / "foo.com.zone").exists()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


async def test_cli_ipv6_listen(tmp_path: Path) -> None:
    zone = tmp_path / "foo.zone"
    zone.write_text(FOO_ZONE)
    async with running("--zone", str(zone), "--listen", "[::1]:0") as (proc, port):
        q = dns.message.make_query("www.foo.com", "A")
        reply = await dns.asyncquery.tcp(q, "::1", port=port, timeout=5)
        assert len(reply.answer[0]) == 3
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


async def test_cli_missing_zone_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.zone"
    proc = await spawn("--zone", str(missing), "--listen", "127.0.0.1:0")
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert f"{missing}: No such file or directory".encode() in err


async def test_cli_udp_in_batches_by_default_or_on_the_loop(tmp_path: Path) -> None:
    zone = tmp_path / "foo.zone"
    zone.write_text(FOO_ZONE)
    for flags, mode in (((), b"udp in batches"), (("--no-udp-batch",), b"udp on the loop")):
        args = ("--zone", str(zone), "--listen", "127.0.0.1:0", "--log-level", "DEBUG", *flags)
        async with running(*args) as (proc, port):
            assert proc.stderr is not None
            await wait_for_line(proc.stderr, mode)
            assert len((await query(port, "www.foo.com")).answer[0]) == 3
