"""Primary and secondary DnsServers on loopback, driven by dnspython: AXFR, NOTIFY, saved copy,
expire, and who may transfer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.xfr
import dns.zone
import pytest
from dns_polling import until
from dns_testzones import FOO_ZONE
from dnslib import DNSRecord

from pylamp.dns.server import DnsServer
from pylamp.dns.transfer import axfr_response, notify_query
from pylamp.dns.zone import load_zone

PRIMARY = "127.0.0.1"
SECONDARY = "127.0.0.2"
STRANGER = "127.0.0.5"

TINY_TIMERS_ZONE = (
    FOO_ZONE.replace("10800 ; refresh", "1 ; refresh")
    .replace("3600 ; retry", "1 ; retry")
    .replace("86400 ; expire", "2 ; expire")
)


def _with_serial(text: str, serial: int, extra: str = "") -> str:
    return text.replace("2006032801 ; serial", f"{serial} ; serial") + extra


async def _query(
    server: DnsServer, name: str, rdtype: str = "A", *, tcp: bool = False
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(q, server.host, port=server.port, timeout=3)
    return await dns.asyncquery.udp(q, server.host, port=server.port, timeout=3)


def _addresses(reply: dns.message.Message) -> set[str]:
    return {rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


def _secondary(primary_port: int, data_dir: Path) -> DnsServer:
    return DnsServer(
        host=SECONDARY,
        primary=(PRIMARY, primary_port),
        secondary_zones=["foo.com."],
        data_dir=data_dir,
    )


@dataclass
class Pair:
    primary: DnsServer
    secondary: DnsServer
    zone_file: Path
    data_dir: Path


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """A watching primary on 127.0.0.1 and its secondary on 127.0.0.2, zone transferred."""
    zone_file = tmp_path / "foo.com.zone"
    zone_file.write_text(FOO_ZONE)
    data_dir = tmp_path / "ns2"
    async with (
        DnsServer(
            zones=[zone_file], host=PRIMARY, allow_transfer=[SECONDARY], watch=True
        ) as primary,
        _secondary(primary.port, data_dir) as secondary,
    ):
        primary.add_secondary(SECONDARY, secondary.port)
        await until(lambda: secondary.answerer.zone("foo.com.") is not None, "first transfer")
        yield Pair(primary, secondary, zone_file, data_dir)


# -- who may transfer --------------------------------------------------------------------


def _dnspython_xfr(port: int, source: str) -> dns.zone.Zone:
    zone = dns.zone.Zone("foo.com.")
    dns.query.inbound_xfr(PRIMARY, zone, port=port, source=source, timeout=5, lifetime=10)
    return zone


async def test_axfr_by_dnspython_from_a_listed_secondary() -> None:
    async with DnsServer(zones=[FOO_ZONE], host=PRIMARY, allow_transfer=[SECONDARY]) as ns1:
        zone = await asyncio.to_thread(_dnspython_xfr, ns1.port, SECONDARY)
    www = zone.find_rdataset("www", "A")
    assert sorted(rd.address for rd in www) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
    soa = zone.find_rdataset("@", "SOA")
    assert soa[0].serial == 2006032801
    expected = {str(rr.rname).lower() for rr in load_zone(FOO_ZONE).records()}
    assert {f"{name}.foo.com." if str(name) != "@" else "foo.com." for name in zone.nodes} == (
        expected
    )


def _dnspython_ixfr(port: int) -> dns.zone.Zone:
    zone = dns.zone.Zone("foo.com.")
    query, serial = dns.xfr.make_query(zone, serial=1)
    assert serial == 1
    dns.query.inbound_xfr(PRIMARY, zone, query, port=port, source=SECONDARY, timeout=5)
    return zone


async def test_ixfr_over_tcp_gets_the_whole_zone_axfr_style() -> None:
    async with DnsServer(zones=[FOO_ZONE], host=PRIMARY, allow_transfer=[SECONDARY]) as ns1:
        zone = await asyncio.to_thread(_dnspython_ixfr, ns1.port)
    assert zone.find_rdataset("@", "SOA")[0].serial == 2006032801
    assert len(zone.find_rdataset("www", "A")) == 3


async def test_axfr_refused_to_unlisted_hosts() -> None:
    async with DnsServer(zones=[FOO_ZONE], host=PRIMARY, allow_transfer=[SECONDARY]) as ns1:
        with pytest.raises(dns.xfr.TransferError) as failure:
            await asyncio.to_thread(_dnspython_xfr, ns1.port, STRANGER)
        assert failure.value.rcode == dns.rcode.REFUSED
        # A listed host asking for a zone we do not serve is refused too.
        q = dns.message.make_query("bar.com.", "AXFR")
        reply = await dns.asyncquery.tcp(q, PRIMARY, port=ns1.port, source=SECONDARY, timeout=3)
        assert reply.rcode() == dns.rcode.REFUSED
        # The server keeps answering.
        assert _addresses(await _query(ns1, "www.foo.com.")) == {
            "127.0.2.1",
            "127.0.2.2",
            "127.0.2.3",
        }


async def test_no_transfer_without_listed_secondaries(dns_server: DnsServer) -> None:
    with pytest.raises(dns.xfr.TransferError):
        await asyncio.to_thread(_dnspython_xfr, dns_server.port, PRIMARY)


async def test_axfr_over_udp_is_formerr_and_ixfr_over_udp_gets_the_soa() -> None:
    async with DnsServer(zones=[FOO_ZONE], host=PRIMARY, allow_transfer=[PRIMARY]) as ns1:
        axfr = dns.message.make_query("foo.com.", "AXFR")
        reply = await dns.asyncquery.udp(axfr, PRIMARY, port=ns1.port, timeout=3)
        assert reply.rcode() == dns.rcode.FORMERR
        ixfr = dns.message.make_query("foo.com.", "IXFR")
        reply = await dns.asyncquery.udp(ixfr, PRIMARY, port=ns1.port, timeout=3)
        assert reply.rcode() == dns.rcode.NOERROR
        assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.SOA]


# -- the secondary -------------------------------------------------------------------------


async def test_secondary_loads_the_zone_and_saves_it(pair: Pair) -> None:
    reply = await _query(pair.secondary, "www.foo.com.")
    assert reply.flags & dns.flags.AA
    assert _addresses(reply) == {"127.0.2.1", "127.0.2.2", "127.0.2.3"}
    mx = await _query(pair.secondary, "foo.com.", "MX", tcp=True)
    assert str(mx.answer[0][0].exchange) == "mail.foo.com."
    saved = pair.data_dir / "foo.com.zone"
    assert load_zone(saved.read_text()).serial == 2006032801
    result = await pair.secondary.refresh()
    assert result["foo.com."].outcome == "current"


async def test_notify_after_zone_file_edit_reaches_the_secondary(pair: Pair) -> None:
    """Edit ns1's file with a higher serial: watchdog reload -> NOTIFY -> ns2 transfers.

    ns2's refresh timer is 3 hours, so only the NOTIFY can bring the change in time.
    """
    new_text = _with_serial(FOO_ZONE, 2006032802, "new IN A 127.0.9.9\n")
    tmp = pair.zone_file.with_suffix(".tmp")
    tmp.write_text(new_text)
    tmp.replace(pair.zone_file)

    async def has_new() -> bool:
        reply = await _query(pair.secondary, "new.foo.com.")
        return _addresses(reply) == {"127.0.9.9"}

    await until(has_new, "ns2 to serve the new record")
    assert pair.secondary.answerer.zone("foo.com.").serial == 2006032802  # type: ignore[union-attr]
    saved = load_zone((pair.data_dir / "foo.com.zone").read_text())
    assert saved.serial == 2006032802


async def test_notify_accepted_only_from_the_primary(pair: Pair) -> None:
    notify = dns.message.make_query("foo.com.", "SOA")
    notify.flags = dns.flags.AA
    notify.set_opcode(dns.opcode.NOTIFY)
    port = pair.secondary.port
    ok = await dns.asyncquery.udp(notify, SECONDARY, port=port, source=PRIMARY, timeout=3)
    assert ok.rcode() == dns.rcode.NOERROR
    assert ok.opcode() == dns.opcode.NOTIFY
    refused = await dns.asyncquery.udp(notify, SECONDARY, port=port, source=STRANGER, timeout=3)
    assert refused.rcode() == dns.rcode.REFUSED
    other = dns.message.make_query("bar.com.", "SOA")
    other.set_opcode(dns.opcode.NOTIFY)
    notauth = await dns.asyncquery.udp(other, SECONDARY, port=port, source=PRIMARY, timeout=3)
    assert notauth.rcode() == dns.rcode.NOTAUTH


async def test_saved_copy_is_served_after_restart_while_primary_is_down(tmp_path: Path) -> None:
    data_dir = tmp_path / "ns2"
    async with DnsServer(zones=[FOO_ZONE], host=PRIMARY, allow_transfer=[SECONDARY]) as ns1:
        primary_port = ns1.port
        async with _secondary(primary_port, data_dir) as ns2:
            assert (await ns2.refresh())["foo.com."].outcome in ("transferred", "current")
    # ns1 is gone; ns2 comes back from its saved copy.
    async with _secondary(primary_port, data_dir) as ns2:
        reply = await _query(ns2, "www.foo.com.")
        assert reply.rcode() == dns.rcode.NOERROR
        assert _addresses(reply) == {"127.0.2.1", "127.0.2.2", "127.0.2.3"}
        result = (await ns2.refresh())["foo.com."]
        assert result.outcome == "failed"
        assert result.serial == 2006032801
        assert (await _query(ns2, "www.foo.com.")).rcode() == dns.rcode.NOERROR


async def test_servfail_after_expire_then_served_again(tmp_path: Path) -> None:
    """refresh 1, retry 1, expire 2: with ns1 down, ns2 answers SERVFAIL once 2 s pass."""
    ns1 = DnsServer(zones=[TINY_TIMERS_ZONE], host=PRIMARY, allow_transfer=[SECONDARY])
    await ns1.start()
    port = ns1.port
    async with _secondary(port, tmp_path) as ns2:
        await until(lambda: ns2.answerer.zone("foo.com.") is not None, "first transfer")
        assert (await _query(ns2, "www.foo.com.")).rcode() == dns.rcode.NOERROR
        await ns1.close()
        stopped = time.monotonic()

        async def servfail() -> bool:
            return (await _query(ns2, "www.foo.com.")).rcode() == dns.rcode.SERVFAIL

        await until(servfail, "SERVFAIL after expire")
        state = ns2.roles.secondary_zones["foo.com."].state
        assert state.last_contact is not None
        assert state.last_contact <= stopped
        assert state.expires_at == state.last_contact + 2  # exactly the SOA's expire
        assert state.expires_at <= time.monotonic()
        # ns1 back on the same port: the retry timer (1 s) brings the zone back.
        async with DnsServer(
            zones=[TINY_TIMERS_ZONE], host=PRIMARY, port=port, allow_transfer=[SECONDARY]
        ):

            async def served() -> bool:
                return (await _query(ns2, "www.foo.com.")).rcode() == dns.rcode.NOERROR

            await until(served, "the zone to be served again")


async def test_secondary_refuses_a_bad_transfer_and_keeps_its_zone(pair: Pair) -> None:
    """A primary that sends a zone with a record outside it: ns2 keeps the old zone."""
    bad = load_zone(_with_serial(FOO_ZONE, 2006032805))

    def broken(query: bytes, peer: str, tcp: bool) -> list[bytes]:
        messages = axfr_response(DNSRecord.parse(query), bad)
        stray = axfr_response(
            DNSRecord.parse(query),
            load_zone("$ORIGIN bar.com.\n@ 1 IN SOA a b 1 1 1 1 1\n"),
        )
        return [stray[0], *messages]  # SOA of another zone first

    pair.primary.transfer_handler = broken
    pair.primary.answerer.set_zone(bad)  # ns1's SOA now says 2006032805
    result = (await pair.secondary.refresh())["foo.com."]
    assert result.outcome == "failed"
    assert "does not start with the SOA" in result.error
    assert pair.secondary.answerer.zone("foo.com.").serial == 2006032801  # type: ignore[union-attr]
    assert _addresses(await _query(pair.secondary, "www.foo.com.")) == {
        "127.0.2.1",
        "127.0.2.2",
        "127.0.2.3",
    }


async def test_secondary_told_refused_when_not_listed(tmp_path: Path) -> None:
    async with (
        DnsServer(zones=[FOO_ZONE], host=PRIMARY, allow_transfer=[STRANGER]) as ns1,
        _secondary(ns1.port, tmp_path) as ns2,
    ):
        result = (await ns2.refresh())["foo.com."]
        assert result.outcome == "failed"
        assert "REFUSED" in result.error
        assert ns2.answerer.zone("foo.com.") is None
        assert not (tmp_path / "foo.com.zone").exists()


async def test_primary_notifies_and_counts_acknowledgements(pair: Pair) -> None:
    assert pair.primary.roles.primary is not None
    acks = await pair.primary.roles.primary.notify_now("foo.com.")
    assert acks == {(SECONDARY, pair.secondary.port): True}


async def test_garbled_notify_does_not_stop_the_secondary(pair: Pair) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=(SECONDARY, pair.secondary.port)
    )
    try:
        good = notify_query("foo.com.", qid=9)
        for junk in (b"\x00\x09\x20", good[:14], good[:-3], b"\x00" * 40):
            transport.sendto(junk)
    finally:
        transport.close()
    assert _addresses(await _query(pair.secondary, "www.foo.com.")) == {
        "127.0.2.1",
        "127.0.2.2",
        "127.0.2.3",
    }


async def test_reload_with_a_higher_serial_notifies(tmp_path: Path) -> None:
    """SIGHUP's reload() path (no watcher): a higher serial is pushed by NOTIFY too."""
    zone_file = tmp_path / "foo.com.zone"
    zone_file.write_text(FOO_ZONE)
    async with (
        DnsServer(zones=[zone_file], host=PRIMARY, allow_transfer=[SECONDARY]) as ns1,
        _secondary(ns1.port, tmp_path / "ns2") as ns2,
    ):
        assert ns1.roles.watcher is None
        ns1.add_secondary(SECONDARY, ns2.port)
        await until(lambda: ns2.answerer.zone("foo.com.") is not None, "first transfer")
        zone_file.write_text(_with_serial(FOO_ZONE, 2006032900, "late IN A 127.0.9.8\n"))
        assert ns1.reload() == []

        async def has_late() -> bool:
            return _addresses(await _query(ns2, "late.foo.com.")) == {"127.0.9.8"}

        await until(has_late, "ns2 to get the reloaded zone")


async def test_a_zone_never_transferred_answers_servfail_until_the_first_transfer(
    tmp_path: Path,
) -> None:
    """Like BIND: a secondary zone with no data is ours but broken (SERVFAIL), not REFUSED."""
    ns1 = DnsServer(zones=[FOO_ZONE], host=PRIMARY, allow_transfer=[SECONDARY])
    await ns1.start()
    port = ns1.port
    await ns1.close()  # the primary is down before the secondary has ever reached it
    async with _secondary(port, tmp_path) as ns2:
        assert ns2.answerer.zone("foo.com.") is None
        assert (await _query(ns2, "www.foo.com.")).rcode() == dns.rcode.SERVFAIL
        assert (await _query(ns2, "foo.com.", "SOA", tcp=True)).rcode() == dns.rcode.SERVFAIL
        assert (await _query(ns2, "www.example.org.")).rcode() == dns.rcode.REFUSED
        async with DnsServer(zones=[FOO_ZONE], host=PRIMARY, port=port, allow_transfer=[SECONDARY]):
            result = (await ns2.refresh())["foo.com."]
            assert result.outcome == "transferred"
            reply = await _query(ns2, "www.foo.com.")
            assert reply.rcode() == dns.rcode.NOERROR
            assert len(_addresses(reply)) == 3


async def test_add_secondary_is_for_primaries_only() -> None:
    async with DnsServer(zones=[FOO_ZONE], host=PRIMARY) as plain:
        with pytest.raises(ValueError, match="not a primary"):
            plain.add_secondary(SECONDARY, 5300)
