"""The supervisor with real servers: each in its own process, ready, stoppable, killable."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from pylamp.cluster import Cluster, ClusterError
from pylamp.config import Topology, default_topology, dump_topology


def _dns_only_topology() -> Topology:
    """The article's cluster with every port left to the supervisor (0), name servers only."""
    t = default_topology()
    return dataclasses.replace(
        t,
        dns=tuple(dataclasses.replace(s, port=0) for s in t.dns),
        web=tuple(dataclasses.replace(w, port=0, sync_port=0) for w in t.web),
        db=tuple(dataclasses.replace(d, port=0) for d in t.db),
    )


async def _www(host: str, port: int) -> tuple[int, list[str]]:
    query = dns.message.make_query("www.foo.com", "A")
    reply = await dns.asyncquery.udp(query, host, port=port, timeout=2)
    addresses = [r.address for rrset in reply.answer for r in rrset]
    return reply.rcode(), addresses


async def _until_answered(host: str, port: int) -> list[str]:
    for _ in range(200):
        rcode, addresses = await _www(host, port)
        if rcode == dns.rcode.NOERROR and addresses:
            return addresses
        await asyncio.sleep(0.05)
    raise AssertionError(f"{host}:{port} never answered www.foo.com")


async def test_cluster_starts_name_servers_as_processes_and_survives_a_primary_crash(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, str]] = []
    cluster = Cluster(
        _dns_only_topology(),
        tmp_path,
        only=["ns1", "ns2"],
        output=lambda name, line: seen.append((name, line)),
    )
    async with cluster:
        assert cluster.running("ns1") and cluster.running("ns2")
        assert (tmp_path / "cluster.toml").exists()
        ns1 = cluster.address("ns1")
        ns2 = cluster.address("ns2")
        assert ns1[0] == "127.0.1.1" and ns1[1] != 0
        assert sorted(await _until_answered(*ns1)) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
        # ns2 has the zone by transfer from ns1, and keeps answering once ns1 is gone.
        assert sorted(await _until_answered(*ns2)) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
        await cluster.kill("ns1")
        assert not cluster.running("ns1")
        assert sorted(await _until_answered(*ns2)) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
        await cluster.start("ns1")
        assert cluster.running("ns1")
        assert await cluster.stop("ns2") == 0
    assert not cluster.running("ns1")
    assert {name for name, _ in seen} >= {"ns1", "ns2"}
    assert (tmp_path / "ns1" / "foo.com.zone").exists()


async def test_a_server_that_cannot_start_is_reported_with_its_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zone"
    bad.write_text("$ORIGIN foo.com.\n@ IN SOA ns1 host ( 1 2 3 4 5 )\nwww IN AX 1.2.3.4\n")
    t = _dns_only_topology()
    t = dataclasses.replace(t, zones=(dataclasses.replace(t.zones[0], file=str(bad)),))
    with pytest.raises(ClusterError, match="ns1 did not start") as info:
        async with Cluster(t, tmp_path / "data", only=["ns1"], output=lambda *_: None):
            pass
    assert "bad.zone:3" in str(info.value)


def test_cli_prints_where_servers_listen_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(dump_topology(_dns_only_topology()))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pylamp.cluster",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            "--only",
            "ns1",
            "ns2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        out = "".join(lines)
        assert "pylamp cluster up" in out
        assert "ns1" in out and "ns2" in out and "running" in out
        assert "dig @127.0.1.1 -p " in out and "www.foo.com +norec" in out
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "stopped." in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Nothing of the cluster is left running: no process has the data dir on its command line.
    marker = str(tmp_path / "data").encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone already, or not ours to read
            assert marker not in cmdline, f"process {entry.name} still running: {cmdline!r}"
