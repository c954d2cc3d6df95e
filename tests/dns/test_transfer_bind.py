"""Interoperability with BIND 9 (Debian package bind9): BIND as the secondary of our primary,
and our secondary of a BIND primary, both ways with NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
from dns_polling import until
from dns_testzones import FOO_ZONE

from pylamp.dns.server import DnsServer

# named listens only on addresses its interfaces carry, and lo carries just 127.0.0.1 (the rest
# of 127/8 is routed to it but not listed), so BIND takes 127.0.0.1 and ours the others.
BIND = "127.0.0.1"
OURS = "127.0.0.4"
OUR_SECONDARY = "127.0.0.2"
# Root hints on loopback and no DNSSEC validation: named must not try to reach the root servers.
HINTS = """\
.             3600000 IN NS root.invalid.
root.invalid. 3600000 IN A  127.0.0.9
"""


def _free_port(host: str) -> int:
    """A port free for UDP and TCP on ``host`` (named cannot be asked to bind port 0)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port


@contextlib.asynccontextmanager
async def _named(
    workdir: Path, port: int, zone_clause: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    conf = workdir / "named.conf"
    (workdir / "root.hints").write_text(HINTS)
    conf.write_text(
        f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    listen-on port {port} {{ {BIND}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
    transfer-source {BIND};
    notify-source {BIND};
    querylog no;
    dnssec-validation no;
}};
controls {{ }};
zone "." {{ type hint; file "{workdir}/root.hints"; }};
{zone_clause}
"""
    )
    proc = await asyncio.create_subprocess_exec(
        "named", "-g", "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _a(host: str, port: int, name: str) -> set[str] | None:
    query = dns.message.make_query(name, "A")
    try:
        reply = await dns.asyncquery.udp(query, host, port=port, timeout=1)
    except (TimeoutError, dns.exception.Timeout, OSError):
        return None
    if reply.rcode() != dns.rcode.NOERROR:
        return None
    return {rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


def _bump(text: str, serial: int, extra: str) -> str:
    return text.replace("2006032801 ; serial", f"{serial} ; serial") + extra


async def test_bind_is_a_secondary_of_our_primary(tmp_path: Path) -> None:
    zone_file = tmp_path / "foo.com.zone"
    zone_file.write_text(FOO_ZONE)
    bind_port = _free_port(BIND)
    async with DnsServer(zones=[zone_file], host=OURS, watch=True, allow_transfer=[BIND]) as ns1:
        ns1.add_secondary(BIND, bind_port)
        clause = (
            f'zone "foo.com" {{ type secondary; primaries {{ {OURS} port {ns1.port}; }}; '
            f'file "{tmp_path}/foo.com.bak"; }};'
        )
        async with _named(tmp_path, bind_port, clause):

            async def bind_has(name: str, address: str) -> bool:
                return await _a(BIND, bind_port, name) == {address}

            await until(lambda: bind_has("mail.foo.com.", "127.0.4.1"), "BIND's first AXFR")
            assert await _a(BIND, bind_port, "www.foo.com.") == {
                "127.0.2.1",
                "127.0.2.2",
                "127.0.2.3",
            }
            # Edit our zone file: watchdog reload -> our NOTIFY -> BIND transfers again.
            zone_file.write_text(_bump(FOO_ZONE, 2006032802, "new IN A 127.0.9.9\n"))
            await until(lambda: bind_has("new.foo.com.", "127.0.9.9"), "BIND to follow NOTIFY")


async def test_our_secondary_of_a_bind_primary(tmp_path: Path) -> None:
    zone_file = tmp_path / "foo.com.zone"
    zone_file.write_text(FOO_ZONE)
    bind_port = _free_port(BIND)
    async with DnsServer(
        host=OUR_SECONDARY,
        primary=(BIND, bind_port),
        secondary_zones=["foo.com"],
        data_dir=tmp_path / "ns2",
    ) as ns2:
        clause = (
            f'zone "foo.com" {{ type primary; file "{zone_file}"; '
            f"allow-transfer {{ {OUR_SECONDARY}; }}; notify explicit; notify-delay 0; "
            f"also-notify {{ {OUR_SECONDARY} port {ns2.port}; }}; }};"
        )
        async with _named(tmp_path, bind_port, clause) as named:

            async def bind_up() -> bool:
                return await _a(BIND, bind_port, "www.foo.com.") is not None

            await until(bind_up, "BIND to answer")
            result = (await ns2.refresh())["foo.com."]
            assert result.outcome in ("transferred", "current")
            assert await _a(OUR_SECONDARY, ns2.port, "mail.foo.com.") == {"127.0.4.1"}
            # Edit BIND's zone and reload it: BIND's NOTIFY makes ns2 transfer at once
            # (its refresh timer is 3 hours).
            zone_file.write_text(_bump(FOO_ZONE, 2006032802, "new IN A 127.0.9.9\n"))
            named.send_signal(signal.SIGHUP)

            async def ns2_has_new() -> bool:
                return await _a(OUR_SECONDARY, ns2.port, "new.foo.com.") == {"127.0.9.9"}

            await until(ns2_has_new, "ns2 to follow BIND's NOTIFY")
