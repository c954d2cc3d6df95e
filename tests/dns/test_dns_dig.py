"""Answer shapes as the real `dig` (BIND's client) reports them."""

from __future__ import annotations

import asyncio
import re

from pylamp.dns.server import DnsServer


async def dig(server: DnsServer, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "dig",
        "@127.0.0.1",
        "-p",
        str(server.port),
        "+time=5",
        "+tries=1",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


def section(output: str, name: str) -> list[list[str]]:
    """The records of one dig section, each split into fields."""
    match = re.search(rf";; {name} SECTION:\n(.*?)(?:\n\n|\Z)", output, re.S)
    return [] if match is None else [line.split() for line in match.group(1).splitlines()]


async def test_dig_positive_answer(dns_server: DnsServer) -> None:
    out = await dig(dns_server, "www.foo.com", "+norec")
    assert "status: NOERROR" in out
    assert ";; flags: qr aa; QUERY: 1, ANSWER: 3, AUTHORITY: 0, ADDITIONAL: 1" in out
    assert "; EDNS: version: 0, flags:; udp: 1232" in out
    answers = section(out, "ANSWER")
    assert sorted(r[4] for r in answers) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
    assert all(r[:4] == ["www.foo.com.", "3600", "IN", "A"] for r in answers)


async def test_dig_rd_copied_ra_never(dns_server: DnsServer) -> None:
    out = await dig(dns_server, "WwW.Foo.Com", "+noedns")
    assert ";; flags: qr aa rd; QUERY: 1, ANSWER: 3, AUTHORITY: 0, ADDITIONAL: 0" in out
    assert "WARNING: recursion requested but not available" in out
    assert section(out, "QUESTION") == [[";WwW.Foo.Com.", "IN", "A"]]


async def test_dig_nxdomain_and_nodata(dns_server: DnsServer) -> None:
    out = await dig(dns_server, "nope.foo.com", "+norec")
    assert "status: NXDOMAIN" in out
    assert ";; flags: qr aa; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1" in out
    soa = section(out, "AUTHORITY")
    assert soa[0][:4] == ["foo.com.", "300", "IN", "SOA"]
    assert soa[0][4:] == [
        "ns1.foo.com.",
        "hostmaster.foo.com.",
        "2006032801",
        "10800",
        "3600",
        "86400",
        "300",
    ]
    out = await dig(dns_server, "www.foo.com", "TXT", "+norec")
    assert "status: NOERROR" in out and "ANSWER: 0, AUTHORITY: 1" in out


async def test_dig_cname_ns_glue_and_tcp(dns_server: DnsServer) -> None:
    out = await dig(dns_server, "alias.foo.com", "+norec", "+tcp")
    answers = section(out, "ANSWER")
    assert answers[0] == ["alias.foo.com.", "3600", "IN", "CNAME", "www.foo.com."]
    assert len(answers) == 4 and "(TCP)" in out
    out = await dig(dns_server, "foo.com", "NS", "+norec")
    assert ";; flags: qr aa; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 3" in out
    assert sorted(r[0] for r in section(out, "ADDITIONAL")) == ["ns1.foo.com.", "ns2.foo.com."]


async def test_dig_refused_and_badvers(dns_server: DnsServer) -> None:
    out = await dig(dns_server, "www.example.org", "+norec")
    assert "status: REFUSED" in out and ";; flags: qr;" in out
    out = await dig(dns_server, "www.foo.com", "+norec", "+edns=1", "+noednsnegotiation")
    assert "status: BADVERS" in out


async def test_dig_sees_truncation() -> None:
    zone = "$ORIGIN big.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n" + "".join(
        f"many A 10.0.0.{i}\n" for i in range(1, 60)
    )
    async with DnsServer(zones=[zone]) as server:
        out = await dig(server, "many.big.test", "+norec", "+noedns", "+ignore")
        assert ";; flags: qr aa tc; QUERY: 1, ANSWER: 0," in out
        out = await dig(server, "many.big.test", "+norec", "+noedns")  # dig retries on TCP
        assert "ANSWER: 59," in out and "(TCP)" in out
