"""The pure answer core, checked with dnspython messages (no sockets)."""

from __future__ import annotations

import collections

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest
from dns_testzones import (
    BASE_PACKETS,
    FOO_ZONE,
    QUERIES,
    QuerySpec,
    mutated_packets,
    query_wire,
    recase,
    zone_texts,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylamp.dns.answer import Answerer, query_kind
from pylamp.dns.zone import load_zone


@pytest.fixture
def answerer(foo_zone_text: str) -> Answerer:
    return Answerer([load_zone(foo_zone_text)])


def ask(
    answerer: Answerer,
    name: str,
    rdtype: str = "A",
    *,
    udp_limit: int | None = 1232,
    **kwargs: object,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    wire = answerer.answer(query.to_wire(), udp_limit=udp_limit)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id
    return reply


def texts(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def test_positive_answer_flags(answerer: Answerer) -> None:
    reply = ask(answerer, "www.foo.com")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.RA
    assert reply.flags & dns.flags.RD  # copied from the query
    assert len(reply.answer) == 1 and len(reply.answer[0]) == 3
    assert reply.authority == [] and reply.additional == []
    norec = ask(answerer, "www.foo.com", flags=0)
    assert not norec.flags & dns.flags.RD


def test_question_echoed_in_client_case(answerer: Answerer) -> None:
    for _ in range(2):  # second time from the stored reply
        reply = ask(answerer, "wWw.FoO.cOm")
        assert reply.question[0].name.to_text() == "wWw.FoO.cOm."
        assert reply.answer[0].name.to_text() == "wWw.FoO.cOm."


def test_cname_chased_in_zone(answerer: Answerer) -> None:
    reply = ask(answerer, "chain.foo.com")
    lines = texts(reply.answer)
    assert lines[0].startswith("chain.foo.com. 3600 IN CNAME alias.foo.com.")
    assert lines[1].startswith("alias.foo.com. 3600 IN CNAME www.foo.com.")
    assert len(lines) == 5 and all(" IN A 127.0.2." in line for line in lines[2:])
    out = ask(answerer, "away.foo.com")  # target outside the zone: CNAME only
    assert texts(out.answer) == ["away.foo.com. 3600 IN CNAME www.example.org."]
    assert out.rcode() == dns.rcode.NOERROR
    dangling = ask(answerer, "dangling.foo.com")  # target missing: NXDOMAIN (RFC 6604)
    assert dangling.rcode() == dns.rcode.NXDOMAIN
    assert len(dangling.answer) == 1 and dangling.authority[0].rdtype == dns.rdatatype.SOA
    direct = ask(answerer, "alias.foo.com", "CNAME")
    assert texts(direct.answer) == ["alias.foo.com. 3600 IN CNAME www.foo.com."]


def test_nxdomain_and_nodata_carry_soa(answerer: Answerer) -> None:
    nx = ask(answerer, "nope.foo.com")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA
    assert nx.answer == []
    soa = nx.authority[0]
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "foo.com."
    assert soa.ttl == 300  # min(SOA TTL 3600, minimum 300), RFC 2308
    nodata = ask(answerer, "www.foo.com", "MX")
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    ent = ask(answerer, "deep.foo.com", "TXT")  # empty non-terminal: NODATA, not NXDOMAIN
    assert ent.rcode() == dns.rcode.NOERROR and ent.authority[0].rdtype == dns.rdatatype.SOA


def test_refused_outside_our_zones_and_classes(answerer: Answerer) -> None:
    for reply in (ask(answerer, "www.example.org"), ask(answerer, "foo.com", rdclass="CH")):
        assert reply.rcode() == dns.rcode.REFUSED
        assert not reply.flags & dns.flags.AA
        assert reply.question[0].name.to_text() in ("www.example.org.", "foo.com.")


def test_additional_glue_for_ns_mx_srv(answerer: Answerer) -> None:
    ns = ask(answerer, "foo.com", "NS")
    assert sorted(texts(ns.additional)) == [
        "ns1.foo.com. 300 IN A 127.0.1.1",
        "ns2.foo.com. 300 IN A 127.0.1.2",
    ]
    mx = ask(answerer, "foo.com", "MX")
    assert texts(mx.additional) == ["mail.foo.com. 3600 IN A 127.0.4.1"]
    srv = ask(answerer, "_http._tcp.foo.com", "SRV")
    assert len(srv.additional[0]) == 3


def test_referral_below_zone_cut(answerer: Answerer) -> None:
    reply = ask(answerer, "www.sub.foo.com")
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA
    assert reply.answer == []
    assert texts(reply.authority) == ["sub.foo.com. 3600 IN NS ns.sub.foo.com."]
    assert texts(reply.additional) == ["ns.sub.foo.com. 3600 IN A 127.0.5.1"]


def test_any_query(answerer: Answerer) -> None:
    reply = ask(answerer, "foo.com", "ANY")
    types = {rrset.rdtype for rrset in reply.answer}
    assert types == {dns.rdatatype.SOA, dns.rdatatype.NS, dns.rdatatype.MX}


def test_edns_echoed_with_our_size_and_do_bit(answerer: Answerer) -> None:
    reply = ask(answerer, "www.foo.com", use_edns=0, payload=4096, want_dnssec=True)
    assert reply.edns == 0 and reply.payload == 1232
    assert reply.ednsflags & dns.flags.DO
    plain = ask(answerer, "www.foo.com", use_edns=0, payload=4096)
    assert plain.edns == 0 and not plain.ednsflags & dns.flags.DO
    assert ask(answerer, "www.foo.com").edns == -1


def test_edns_options_are_accepted(answerer: Answerer) -> None:
    cookie = dns.edns.GenericOption(10, b"\x01" * 8)
    reply = ask(answerer, "www.foo.com", use_edns=0, options=[cookie])
    assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer[0]) == 3
    assert reply.edns == 0


def test_badvers_for_edns_version_above_zero(answerer: Answerer) -> None:
    reply = ask(answerer, "www.foo.com", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0 and reply.answer == []


def test_notimp_formerr_and_silence(answerer: Answerer) -> None:
    query = dns.message.make_query("www.foo.com", "A")
    query.set_opcode(dns.opcode.STATUS)
    wire = answerer.answer(query.to_wire(), udp_limit=512)
    assert wire is not None and dns.message.from_wire(wire).rcode() == dns.rcode.NOTIMP

    two = dns.message.make_query("www.foo.com", "A")
    two.question.append(two.question[0])
    wire = answerer.answer(two.to_wire(), udp_limit=512)
    assert wire is not None
    formerr = dns.message.from_wire(wire, question_only=True)
    assert formerr.rcode() == dns.rcode.FORMERR and formerr.id == two.id

    none = dns.message.make_query("www.foo.com", "A")
    none.question = []
    wire = answerer.answer(none.to_wire(), udp_limit=512)
    assert wire is not None and dns.message.from_wire(wire).rcode() == dns.rcode.FORMERR

    good = dns.message.make_query("www.foo.com", "A").to_wire()
    assert answerer.answer(b"", udp_limit=512) is None
    assert answerer.answer(b"\x00" * 11, udp_limit=512) is None
    assert answerer.answer(good[:-3], udp_limit=512) is None  # cut short: garbage
    response = bytearray(good)
    response[2] |= 0x80  # a response: never answer it
    assert answerer.answer(bytes(response), udp_limit=512) is None


def _big_answerer() -> Answerer:
    body = "".join(f'big TXT "{i:03d}{"x" * 200}"\n' for i in range(10))
    body += "".join(f"many A 10.0.0.{i}\n" for i in range(1, 40))
    text = f"$ORIGIN big.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 10.1.1.1\n{body}"
    return Answerer([load_zone(text)])


def test_udp_truncation_keeps_whole_rrsets() -> None:
    answerer = _big_answerer()
    small = ask(answerer, "big.big.test", "TXT", udp_limit=1232)
    assert small.flags & dns.flags.TC
    assert small.answer == []  # the only RRset did not fit: no partial set
    assert small.question[0].name.to_text() == "big.big.test."
    full = ask(answerer, "big.big.test", "TXT", udp_limit=None)  # TCP: everything
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 10
    many = ask(answerer, "many.big.test", udp_limit=1232)  # 39 A = 639 bytes > 512
    assert many.flags & dns.flags.TC and many.answer == []
    edns = ask(answerer, "many.big.test", udp_limit=1232, use_edns=0, payload=1232)
    assert not edns.flags & dns.flags.TC and len(edns.answer[0]) == 39
    capped = ask(answerer, "many.big.test", udp_limit=600, use_edns=0, payload=4096)
    assert capped.flags & dns.flags.TC  # the server's own limit applies too


def test_truncation_drops_additional_without_tc() -> None:
    text = "$ORIGIN t.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n"
    text += "".join(f"@ NS ns{i}.t.\nns{i} AAAA 2001:db8::{i}\n" for i in range(12))
    answerer = Answerer([load_zone(text)])
    reply = ask(answerer, "t", "NS", udp_limit=512)
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == 12
    assert 0 < sum(len(s) for s in reply.additional) < 12


def test_round_robin_per_rrset(answerer: Answerer) -> None:
    firsts: collections.Counter[str] = collections.Counter()
    for i in range(300):
        name = "www.foo.com" if i % 2 else "WWW.foo.com"
        reply = ask(answerer, name, udp_limit=None if i % 3 else 512)
        addresses = [rr.address for rr in reply.answer[0]]
        assert sorted(addresses) == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
        firsts[addresses[0]] += 1
    assert set(firsts.values()) == {100}
    # Another set rotates on its own counter: NS was never asked yet, starts in file order.
    ns = ask(answerer, "foo.com", "NS")
    assert [rr.target.to_text() for rr in ns.answer[0]] == ["ns1.foo.com.", "ns2.foo.com."]
    ns = ask(answerer, "foo.com", "NS")
    assert [rr.target.to_text() for rr in ns.answer[0]] == ["ns2.foo.com.", "ns1.foo.com."]


def test_set_live_filters_and_orders(answerer: Answerer) -> None:
    answerer.set_live("www.foo.com", ["127.0.2.3", "127.0.2.1"])
    seen = {ask(answerer, "www.foo.com").answer[0][0].address for _ in range(4)}
    assert seen == {"127.0.2.1", "127.0.2.3"}
    alias = ask(answerer, "alias.foo.com")
    assert {rr.address for rr in alias.answer[1]} == {"127.0.2.1", "127.0.2.3"}
    answerer.set_live("www.foo.com.", ["127.0.2.2", "127.0.2.1"], ordered=True)
    for _ in range(3):
        addresses = [rr.address for rr in ask(answerer, "www.foo.com").answer[0]]
        assert addresses == ["127.0.2.2", "127.0.2.1"]
    answerer.set_live("www.foo.com", ["10.9.9.9"])  # nothing live: all given
    assert len(ask(answerer, "www.foo.com").answer[0]) == 3
    answerer.set_live("www.foo.com", None)
    assert len(ask(answerer, "www.foo.com").answer[0]) == 3
    answerer.set_live("v6.foo.com", ["2001:0db8:0::1"])  # compared as addresses
    assert len(ask(answerer, "v6.foo.com", "AAAA").answer[0]) == 1


def test_set_expired_and_set_zone(answerer: Answerer, foo_zone_text: str) -> None:
    ask(answerer, "www.foo.com")  # stored
    answerer.set_expired("foo.com.", True)
    assert ask(answerer, "www.foo.com").rcode() == dns.rcode.SERVFAIL
    answerer.set_expired("FOO.com.", False)
    assert ask(answerer, "www.foo.com").rcode() == dns.rcode.NOERROR
    newer = foo_zone_text.replace("2006032801", "2006032802").replace("127.0.2.3", "127.0.2.9")
    answerer.set_zone(load_zone(newer))
    zone = answerer.zone("foo.com.")
    assert zone is not None and zone.serial == 2006032802
    addresses = {rr.address for rr in ask(answerer, "www.foo.com").answer[0]}
    assert "127.0.2.9" in addresses
    assert [z.origin for z in answerer.zones()] == ["foo.com."]
    answerer.remove_zone("foo.com.")
    assert ask(answerer, "www.foo.com").rcode() == dns.rcode.REFUSED


def test_query_kind() -> None:
    axfr = dns.message.make_query("foo.com", "AXFR").to_wire()
    ixfr = dns.message.make_query("foo.com", "IXFR").to_wire()
    notify = dns.message.make_query("foo.com", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    plain = dns.message.make_query("foo.com", "A").to_wire()
    assert query_kind(axfr) == "transfer" and query_kind(ixfr) == "transfer"
    assert query_kind(notify.to_wire()) == "notify"
    assert query_kind(plain) == "query"
    assert query_kind(b"\x00") == "other"


def test_axfr_never_stored_refused_by_default(answerer: Answerer) -> None:
    wire = dns.message.make_query("foo.com", "AXFR").to_wire()
    for _ in range(2):
        assert answerer.answer_cached(wire, None) is None
        reply = answerer.answer(wire, udp_limit=None)
        assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.REFUSED


# --- properties -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(QUERIES, min_size=1, max_size=30))
def test_fast_path_equals_slow_path(queries: list[QuerySpec]) -> None:
    zone = load_zone(FOO_ZONE)
    fast, slow = Answerer([zone]), Answerer([zone])
    for spec in queries:
        wire, limit = query_wire(spec), spec.limit
        for _ in range(2):
            assert fast.answer(wire, udp_limit=limit) == slow._answer_slow(wire, limit)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone_texts(), st.integers(0, 2**60))
def test_generated_zone_answers_every_name(case: tuple[str, str, list[str]], mask: int) -> None:
    _origin, text, names = case
    answerer = Answerer([load_zone(text)])
    for name in names:
        for rdtype in ("SOA", "A", "TXT", "ANY"):
            reply = ask(answerer, recase(name, mask), rdtype, udp_limit=None)
            assert reply.rcode() == dns.rcode.NOERROR
            assert reply.flags & dns.flags.AA
            assert reply.question[0].name.to_text() == recase(name, mask)
            assert reply.answer or reply.authority[0].rdtype == dns.rdatatype.SOA
        missing = ask(answerer, "no-such-name." + name, udp_limit=None)
        assert missing.rcode() == dns.rcode.NXDOMAIN or missing.answer  # a CNAME may lead on


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_packets(), min_size=1, max_size=5))
def test_random_and_mutated_packets_fast_equals_slow(packets: list[bytes]) -> None:
    zone = load_zone(FOO_ZONE)
    fast, slow = Answerer([zone]), Answerer([zone])
    for packet in [*BASE_PACKETS, *packets]:  # the bases first, so mutants meet stored replies
        for limit in (512, None):
            reply = fast.answer(packet, udp_limit=limit)
            assert reply == slow._answer_slow(packet, limit)
            if reply is not None:
                assert reply[:2] == packet[:2] and reply[2] & 0x80
                if limit is not None:
                    assert len(reply) <= limit
    good = ask(fast, "www.foo.com")
    assert len(good.answer[0]) == 3


def test_qtypes_whose_bytes_are_letters_are_not_merged(answerer: Answerer) -> None:
    # TYPE97 is b"\x00a" on the wire and TYPE65 b"\x00A": lower-casing must not merge them.
    for rdtype in ("TYPE97", "TYPE65", "TYPE97", "TYPE65"):
        reply = ask(answerer, "www.foo.com", rdtype)
        assert reply.question[0].rdtype == dns.rdatatype.from_text(rdtype)


def test_edns_options_take_the_fast_path(answerer: Answerer) -> None:
    cookie = dns.edns.GenericOption(10, b"\x01" * 8)
    plain = dns.message.make_query("www.foo.com", "A", use_edns=0).to_wire()
    with_cookie = dns.message.make_query("www.foo.com", "A", use_edns=0, options=[cookie])
    assert answerer.answer_cached(with_cookie.to_wire(), 1232) is None  # nothing stored yet
    answerer.answer(plain, udp_limit=1232)
    reply = answerer.answer_cached(with_cookie.to_wire(), 1232)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.id == with_cookie.id and not message.options and message.payload == 1232


def test_additional_sets_given_once() -> None:
    text = "$ORIGIN t.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n@ MX 10 ns\n"
    text += "ns A 10.0.0.1\nns A 10.0.0.2\n"
    reply = ask(Answerer([load_zone(text)]), "t", "ANY")
    assert [(s.name.to_text(), len(s)) for s in reply.additional] == [("ns.t.", 2)]


def test_referral_that_loses_glue_is_truncated() -> None:
    text = "$ORIGIN t.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n"
    text += "".join(f"sub NS ns{i}.sub\nns{i}.sub AAAA 2001:db8::{i}\n" for i in range(14))
    answerer = Answerer([load_zone(text)])
    reply = ask(answerer, "www.sub.t", udp_limit=512)
    assert reply.flags & dns.flags.TC and not reply.flags & dns.flags.AA
    assert len(reply.authority[0]) == 14
    full = ask(answerer, "www.sub.t", udp_limit=None)
    assert not full.flags & dns.flags.TC and len(full.additional) == 14


def test_wildcards_rfc4592() -> None:
    text = "$ORIGIN w.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n* A 10.0.0.1\n* A 10.0.0.2\n"
    text += "*.alias CNAME host\nhost A 10.0.0.9\nreal TXT x\n*.sub.real TXT y\n"
    answerer = Answerer([load_zone(text)])
    reply = ask(answerer, "AnY.w")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert reply.answer[0].name.to_text() == "AnY.w."
    assert sorted(rr.address for rr in reply.answer[0]) == ["10.0.0.1", "10.0.0.2"]
    assert ask(answerer, "a.b.c.w").answer[0].name.to_text() == "a.b.c.w."
    chased = ask(answerer, "x.alias.w")
    assert texts(chased.answer) == ["x.alias.w. 60 IN CNAME host.w.", "host.w. 60 IN A 10.0.0.9"]
    nodata = ask(answerer, "any.w", "MX")
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    # Existing names and their descendants' closest encloser block the apex wildcard.
    assert ask(answerer, "real.w").rcode() == dns.rcode.NOERROR
    assert ask(answerer, "real.w").answer == []
    assert ask(answerer, "x.real.w").rcode() == dns.rcode.NXDOMAIN
    assert texts(ask(answerer, "x.sub.real.w", "TXT").answer) == ['x.sub.real.w. 60 IN TXT "y"']
