"""Queries per second: pylamp.dns against BIND 9 and dnslib's DNSServer, with dnsperf.

Runs the three servers side by side on the same zone (the cluster's generated
foo.com) and the same query mix (80% www.foo.com A, 8% foo.com SOA, 6% foo.com NS, 6%
names that do not exist), at a few dnsperf -c/-q settings, and prints qps, average
latency, lost queries, each server's CPU time per answered query (user + system, all
threads: a measure that a busy machine disturbs less than qps), the ratios pylamp/BIND and
pylamp/dnslib, and pylamp's memory.

    .venv/bin/python benchmarks/dns_qps.py            # full run (~4 minutes)
    .venv/bin/python benchmarks/dns_qps.py --quick    # a short run

pylamp runs as ``python -m pylamp.dns`` (UDP answered in batches by its recvmmsg/sendmmsg
thread, TCP on uvloop), once with one process ("pylamp") and once with ``--workers 2``
("pylamp-2w": two processes sharing the port with SO_REUSEPORT, CPU time summed over both),
BIND as ``named -g`` with ``recursion no`` and ``rrset-order { order cyclic; }`` (its default
thread count, one per CPU), dnslib as ``DNSServer(ZoneResolver(...))``. pylamp and BIND get
the same UDP socket buffers (4 MiB, what pylamp asks for; BIND's ``udp-receive-buffer`` and
``udp-send-buffer``, BIND 9.18 or later), and every server the same dnsperf command. Needs
``dnsperf`` and ``named`` on PATH; a server that is missing is reported and skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pylamp.config import default_topology, zone_text  # noqa: E402

FULL_SETTINGS = [(1, 20), (8, 500), (20, 1000)]
QUICK_SETTINGS = [(8, 500)]
STARTUP_TIMEOUT = 20.0
#: The UDP socket buffers pylamp asks for (pylamp.dns.server._UDP_RCVBUF); BIND is given the
#: same. With the OS default (~208 KiB) BIND dropped ~800 queries of each -c 8 -q 500 run,
#: and every lost query held one of dnsperf's 500 slots until its 2 s timeout.
UDP_BUFFER = 4 << 20

DNSLIB_SERVER = """
import sys, time
from dnslib.server import DNSServer, DNSLogger
from dnslib.zoneresolver import ZoneResolver
zone = open(sys.argv[1]).read()
server = DNSServer(ZoneResolver(zone), port=int(sys.argv[2]), address="127.0.0.1",
                   logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
server.start_thread()
while server.isAlive():
    time.sleep(0.5)
"""


@dataclass(frozen=True)
class Result:
    qps: float
    latency_ms: float
    sent: int
    lost: int
    cpu_us: float = 0.0  # server CPU time (user + system) per answered query


def query_file(path: Path) -> None:
    """100 lines in the mix; dnsperf cycles through them in order."""
    lines = ["www.foo.com A"] * 80 + ["foo.com SOA"] * 8 + ["foo.com NS"] * 6
    lines += [f"nx{i}.foo.com A" for i in range(6)]
    # Interleave so every stretch of the file has the mix.
    mixed = [lines[(i * 37) % 100] for i in range(100)]
    assert sorted(mixed) == sorted(lines)
    path.write_text("\n".join(mixed) + "\n")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def wait_answering(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Poll with a real query until the server answers www.foo.com."""
    query = bytes.fromhex("abcd00000001000000000000") + b"\x03www\x03foo\x03com\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            sock.sendto(query, ("127.0.0.1", port))
            with contextlib.suppress(OSError):
                if sock.recv(4096)[:2] == b"\xab\xcd":
                    return
    raise RuntimeError("server did not answer in time")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def pylamp_server(zone: Path, workers: int = 1) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pylamp.dns",
            "--zone",
            str(zone),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "WARNING",
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r"listening on udp \S+:(\d+)", line)
        if match is None:
            raise RuntimeError(f"pylamp did not start: {line!r}")
        port = int(match.group(1))
        wait_answering(port, proc)
        yield port, proc
    finally:
        stop(proc)


@contextlib.contextmanager
def bind_server(zone: Path, workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    # Root hints on loopback and no DNSSEC validation: named must not try to reach the real
    # root servers (priming queries, the root trust anchor), since only loopback is ours.
    (workdir / "root.hints").write_text(
        ". 3600000 NS a.root.local.\na.root.local. 3600000 A 127.0.0.9\n"
    )
    conf = workdir / "named.conf"
    conf.write_text(
        f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
    rrset-order {{ order cyclic; }};
    querylog no;
    udp-receive-buffer {UDP_BUFFER};
    udp-send-buffer {UDP_BUFFER};
}};
controls {{ }};
zone "." {{ type hint; file "{workdir}/root.hints"; }};
zone "foo.com" {{ type primary; file "{zone}"; }};
"""
    )
    proc = subprocess.Popen(
        ["named", "-g", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_answering(port, proc)
        yield port, proc
    finally:
        stop(proc)


@contextlib.contextmanager
def dnslib_server(zone: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", DNSLIB_SERVER, str(zone), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_answering(port, proc)
        yield port, proc
    finally:
        stop(proc)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process and its children have used so far."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def dnsperf(
    port: int, pid: int, queries: Path, clients: int, outstanding: int, seconds: int
) -> Result:
    """One dnsperf run against the server on ``port`` (process ``pid``)."""
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        [
            "dnsperf",
            "-s",
            "127.0.0.1",
            "-p",
            str(port),
            "-d",
            str(queries),
            "-c",
            str(clients),
            "-q",
            str(outstanding),
            "-l",
            str(seconds),
            "-t",
            str(min(2, seconds)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def number(label: str) -> float:
        match = re.search(rf"{label}:\s+([\d.]+)", out)
        if match is None:
            raise RuntimeError(f"dnsperf output without {label!r}:\n{out}")
        return float(match.group(1))

    used = cpu_seconds(pid) - cpu_before
    completed = number("Queries completed")
    return Result(
        qps=number("Queries per second"),
        latency_ms=number(r"Average Latency \(s\)") * 1000,
        sent=int(number("Queries sent")),
        lost=int(number("Queries lost")),
        cpu_us=used / completed * 1e6 if completed else 0.0,
    )


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss / 1024, hwm / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one setting, short runs")
    parser.add_argument("--seconds", type=int, help="length of each dnsperf run")
    parser.add_argument(
        "--rounds", type=int, help="runs per server and setting; the median run is shown"
    )
    args = parser.parse_args(argv)
    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS
    seconds = args.seconds or (2 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 3)
    if shutil.which("dnsperf") is None:
        print("dnsperf not found (Debian package dnsperf)", file=sys.stderr)
        return 1

    topology = default_topology()
    with tempfile.TemporaryDirectory(prefix="dns_qps.") as tmp:
        work = Path(tmp)
        zone = work / "foo.com.zone"
        zone.write_text(zone_text(topology, topology.zones[0], serial=2006032801))
        queries = work / "queries.txt"
        query_file(queries)
        servers = {
            "pylamp": lambda: pylamp_server(zone),
            "pylamp-2w": lambda: pylamp_server(zone, workers=2),
        }
        if shutil.which("named"):
            servers["bind"] = lambda: bind_server(zone, work)
        else:
            print("named not found (Debian package bind9): BIND skipped")
        servers["dnslib"] = lambda: dnslib_server(zone)

        results: dict[tuple[str, int, int], Result] = {}
        memory = (0.0, 0.0)
        print(
            f"dnsperf, {seconds} s per run, median of {rounds}, "
            "mix 80% A / 8% SOA / 6% NS / 6% NXDOMAIN; "
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus"
        )
        # All servers up at once (idle ones cost nothing), and for each setting the runs
        # back to back, round after round, so a change in the machine's load hits them alike.
        runs: dict[tuple[str, int, int], list[Result]] = {}
        with contextlib.ExitStack() as stack:
            running = {name: stack.enter_context(start()) for name, start in servers.items()}
            for clients, outstanding in settings:
                for _ in range(rounds):
                    for name, (port, proc) in running.items():
                        runs.setdefault((name, clients, outstanding), []).append(
                            dnsperf(port, proc.pid, queries, clients, outstanding, seconds)
                        )
            memory = rss_mb(running["pylamp"][1].pid)
        for key, done in runs.items():
            results[key] = sorted(done, key=lambda r: r.qps)[len(done) // 2]

        print(
            f"{'server':10} {'-c':>3} {'-q':>5} {'qps':>10} {'avg ms':>8} {'sent':>9} "
            f"{'lost':>6} {'cpu us/q':>8}  {'vs BIND':>8} {'vs dnslib':>10}"
        )
        for clients, outstanding in settings:
            base = results.get(("bind", clients, outstanding))
            slow = results.get(("dnslib", clients, outstanding))
            for name in servers:
                r = results[(name, clients, outstanding)]
                vs_bind = f"{r.qps / base.qps:7.2f}x" if base and base.qps else "-"
                vs_dnslib = f"{r.qps / slow.qps:9.1f}x" if slow and slow.qps else "-"
                print(
                    f"{name:10} {clients:>3} {outstanding:>5} {r.qps:>10.0f} "
                    f"{r.latency_ms:>8.3f} {r.sent:>9} {r.lost:>6} {r.cpu_us:>8.1f}  "
                    f"{vs_bind:>8} {vs_dnslib:>10}"
                )
        print(f"pylamp server memory: {memory[0]:.1f} MB RSS ({memory[1]:.1f} MB peak)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
