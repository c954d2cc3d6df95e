"""`python -m pylamp.dns` as primary and secondary, in subprocesses: standalone flags and the
topology's ns2."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from pylamp.config import default_topology, dump_topology

TIMEOUT = 20.0
READY = re.compile(rb"listening on udp (\S+):(\d+) tcp")
WWW = {"127.0.2.1", "127.0.2.2", "127.0.2.3"}
ZONE = """\
$ORIGIN foo.com.
$TTL 300
@    IN SOA ns1 hostmaster ( 2006032801 10800 3600 86400 300 )
@    IN NS  ns1
@    IN NS  ns2
ns1  IN A   127.0.1.1
ns2  IN A   127.0.1.2
www  IN A   127.0.2.1
www  IN A   127.0.2.2
www  IN A   127.0.2.3
"""


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pylamp.dns",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        match = READY.search(line)
        assert match, line
        yield proc, int(match.group(2))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _www(host: str, port: int) -> set[str] | None:
    query = dns.message.make_query("www.foo.com.", "A")
    reply = await dns.asyncquery.udp(query, host, port=port, timeout=3)
    if reply.rcode() != dns.rcode.NOERROR:
        return None
    return {rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


async def _until_www(host: str, port: int) -> None:
    end = time.monotonic() + TIMEOUT
    while await _www(host, port) != WWW:
        if time.monotonic() > end:
            pytest.fail(f"{host}:{port} never served www.foo.com")
        await asyncio.sleep(0.05)


async def test_standalone_secondary_transfers_and_restarts_from_its_copy(tmp_path: Path) -> None:
    zone = tmp_path / "foo.com.zone"
    zone.write_text(ZONE)
    data = tmp_path / "ns2"
    primary_args = ("--zone", str(zone), "--listen", "127.0.0.1:0", "--allow-transfer")
    async with running(*primary_args, "127.0.0.2", "--watch") as (ns1, ns1_port):
        secondary = (
            "--secondary-of",
            f"127.0.0.1:{ns1_port}",
            "--secondary-zone",
            "foo.com",
            "--data-dir",
            str(data),
            "--listen",
            "127.0.0.2:0",
        )
        async with running(*secondary) as (_ns2, ns2_port):
            await _until_www("127.0.0.2", ns2_port)
        assert (data / "foo.com.zone").exists()
        ns1.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(ns1.wait(), TIMEOUT) == 0
    # The primary is gone: the restarted secondary serves its saved copy.
    async with running(*secondary) as (_ns2, ns2_port):
        assert await _www("127.0.0.2", ns2_port) == WWW


async def test_topology_ns2_is_a_secondary_of_ns1(tmp_path: Path) -> None:
    zone = tmp_path / "foo.com.zone"
    zone.write_text(ZONE)
    async with running(
        "--zone", str(zone), "--listen", "127.0.0.1:0", "--allow-transfer", "127.0.0.2"
    ) as (_ns1, ns1_port):
        topology = default_topology()
        ns1 = dataclasses.replace(topology.dns[0], host="127.0.0.1", port=ns1_port)
        ns2 = dataclasses.replace(topology.dns[1], host="127.0.0.2", port=0)
        topology = dataclasses.replace(
            topology,
            cluster=dataclasses.replace(topology.cluster, data_dir=str(tmp_path / "data")),
            dns=(ns1, ns2),
        )
        config = tmp_path / "cluster.toml"
        config.write_text(dump_topology(topology))
        async with running("--config", str(config), "--name", "ns2") as (_proc, port):
            await _until_www("127.0.0.2", port)
        assert (tmp_path / "data" / "ns2" / "foo.com.zone").exists()
        assert not (tmp_path / "data" / "ns2" / "foo.zone").exists()


async def test_secondary_flags_need_zone_and_data_dir() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pylamp.dns",
        "--secondary-of",
        "127.0.0.1:5300",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert b"--secondary-zone" in err
