"""`python -m pylamp.dns --workers N`: several processes serving one port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from dns_polling import until
from dns_process import TIMEOUT, children, running, spawn
from dns_testzones import FOO_ZONE

from pylamp.config import default_topology, dump_topology
from pylamp.dns.__main__ import main as dns_main
from pylamp.dns.server import DnsServer

WWW = ["127.0.2.1", "127.0.2.2", "127.0.2.3"]


def socket_inodes(table: str, port: int, state: str | None = None) -> set[str]:
    """Inodes of the sockets in /proc/net/TABLE bound to local ``port``."""
    inodes = set()
    for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and (state is None or fields[3] == state):
            inodes.add(fields[9])
    return inodes


def held_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` has open."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[8:-1])
    return held


def ask(sock: socket.socket, port: int, name: str) -> dns.message.Message:
    """One UDP query from this client socket."""
    query = dns.message.make_query(name, "A")
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=5, sock=sock)


def udp_client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)  # dnspython waits for it with its own timeout
    return sock


def first_address(reply: dns.message.Message) -> str:
    return str(next(iter(reply.answer[0])).address)


def is_cyclic(firsts: list[str]) -> bool:
    return len(set(firsts[:3])) == 3 and all(f == firsts[i % 3] for i, f in enumerate(firsts))


async def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    zone = tmp_path / "foo.zone"
    zone.write_text(FOO_ZONE)
    args = ("--zone", str(zone), "--listen", "127.0.0.1:0", "--workers", "2")
    async with running(*args) as (proc, port):
        workers = children(proc.pid)
        assert len(workers) == 1
        # Each process holds its own UDP socket and TCP listener on the port.
        udp, tcp = socket_inodes("udp", port), socket_inodes("tcp", port, state="0A")
        for pid in (proc.pid, workers[0]):
            assert len(held_inodes(pid) & udp) == 1
            assert len(held_inodes(pid) & tcp) == 1
        assert held_inodes(proc.pid) & udp != held_inodes(workers[0]) & udp

        # 40 clients, one query each: all answered, and the first addresses are not one
        # rotation, because two processes with their own counters answered.
        firsts = []
        for _ in range(40):
            with udp_client() as sock:
                reply = ask(sock, port, "www.foo.com")
            assert reply.rcode() == dns.rcode.NOERROR
            assert sorted(rr.address for rr in reply.answer[0]) == WWW
            firsts.append(first_address(reply))
        assert not is_cyclic(firsts), firsts

        # One client always reaches the same process: an exact rotation.
        with udp_client() as sock:
            one = [first_address(ask(sock, port, "www.foo.com")) for _ in range(30)]
        assert is_cyclic(one), one

        tcp_reply = dns.query.tcp(
            dns.message.make_query("mail.foo.com", "A"), "127.0.0.1", port=port, timeout=5
        )
        assert [rr.address for rr in tcp_reply.answer[0]] == ["127.0.4.1"]

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
        assert not Path(f"/proc/{workers[0]}").exists()


async def test_reloads_reach_every_worker(tmp_path: Path) -> None:
    zone = tmp_path / "foo.zone"
    zone.write_text(FOO_ZONE)
    args = ("--zone", str(zone), "--listen", "127.0.0.1:0", "--workers", "2", "--watch")
    async with running(*args) as (proc, port):
        clients = [udp_client() for _ in range(20)]
        try:

            def everyone_sees(name: str) -> bool:
                return all(ask(s, port, name).rcode() == dns.rcode.NOERROR for s in clients)

            assert not everyone_sees("new.foo.com")
            zone.write_text(FOO_ZONE.replace("2006032801", "2006032802") + "new IN A 10.0.0.7\n")
            proc.send_signal(signal.SIGHUP)
            await until(lambda: everyone_sees("new.foo.com"), "SIGHUP reload in every worker")
            # A watched change (serial up) reaches the workers too.
            zone.write_text(FOO_ZONE.replace("2006032801", "2006032803") + "newer IN A 10.0.0.8\n")
            await until(lambda: everyone_sees("newer.foo.com"), "watched reload in every worker")
        finally:
            for sock in clients:
                sock.close()


async def test_a_dead_worker_stops_the_server_with_status_1(tmp_path: Path) -> None:
    zone = tmp_path / "foo.zone"
    zone.write_text(FOO_ZONE)
    args = ("--zone", str(zone), "--listen", "127.0.0.1:0", "--workers", "3")
    async with running(*args) as (proc, _port):
        workers = children(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 1
        assert proc.stderr is not None
        assert f"worker {workers[0]} exited".encode() in await proc.stderr.read()
        assert not Path(f"/proc/{workers[1]}").exists()


async def test_topology_primary_with_workers(tmp_path: Path) -> None:
    config = _topology(tmp_path)
    args = ("--config", str(config), "--name", "ns1", "--workers", "2")
    async with running(*args) as (proc, port):
        assert len(children(proc.pid)) == 1
        with udp_client() as sock:
            assert sorted(rr.address for rr in ask(sock, port, "www.foo.com").answer[0]) == WWW
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


async def test_secondaries_and_zero_workers_are_refused(tmp_path: Path) -> None:
    config = _topology(tmp_path)
    cases = [
        (("--config", str(config), "--name", "ns2", "--workers", "2"), b"secondary"),
        (
            (
                *("--secondary-of", "127.0.0.1:53", "--secondary-zone", "foo.com"),
                *("--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--workers", "2"),
            ),
            b"secondary",
        ),
        (("--zone", str(tmp_path / "x.zone"), "--workers", "0"), b"at least 1"),
    ]
    for args, reason in cases:
        proc = await spawn(*args)
        _out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 2, (args, err)
        assert b"--workers" in err and reason in err, err


def test_workers_refused_without_so_reuseport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a platform without SO_REUSEPORT (as if): the command line refuses --workers 2 with
    # exit status 2 and says why, and the library refuses reuse_port; one worker still runs
    zone = tmp_path / "foo.com.zone"
    zone.write_text(FOO_ZONE)
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(SystemExit) as exit_info:
        dns_main(["--zone", str(zone), "--listen", "127.0.0.1:0", "--workers", "2"])
    assert exit_info.value.code == 2
    assert "SO_REUSEPORT" in capsys.readouterr().err
    with pytest.raises(ValueError, match="SO_REUSEPORT"):
        DnsServer(zones=[zone], port=0, reuse_port=True)
    DnsServer(zones=[zone], port=0)


def _topology(tmp_path: Path) -> Path:
    """The default topology with ns1 and ns2 on 127.0.0.1 port 0, data under tmp_path."""
    topology = default_topology()
    ns1 = dataclasses.replace(topology.dns[0], host="127.0.0.1", port=0)
    ns2 = dataclasses.replace(topology.dns[1], host="127.0.0.1", port=0)
    topology = dataclasses.replace(
        topology,
        cluster=dataclasses.replace(topology.cluster, data_dir=str(tmp_path / "data")),
        dns=(ns1, ns2, *topology.dns[2:]),
    )
    config = tmp_path / "cluster.toml"
    config.write_text(dump_topology(topology))
    return config


async def test_workers_stop_when_the_main_process_is_killed(tmp_path: Path) -> None:
    zone = tmp_path / "foo.zone"
    zone.write_text(FOO_ZONE)
    args = ("--zone", str(zone), "--listen", "127.0.0.1:0", "--workers", "2")
    async with running(*args) as (proc, _port):
        [worker] = children(proc.pid)
        try:
            proc.kill()
            await until(lambda: not alive(worker), "the orphaned worker to exit")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
