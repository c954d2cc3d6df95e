"""Zone files: BIND master-file syntax, the checks, printing, RFC 1982 serials."""

from __future__ import annotations

import pytest
from dns_testzones import zone_texts
from dnslib import QTYPE
from hypothesis import HealthCheck, given, settings

from pylamp.dns.zone import ZoneError, load_zone, serial_gt, zone_to_text

SOA = "@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n"


def _zone(body: str, origin: str = "foo.com.") -> str:
    return f"$ORIGIN {origin}\n$TTL 300\n{SOA}{body}"


def test_article_zone_syntax(foo_zone_text: str) -> None:
    zone = load_zone(foo_zone_text, filename="foo.zone")
    assert zone.origin == "foo.com."
    assert zone.serial == 2006032801
    assert zone.soa.ttl == 3600
    www = zone.get("WWW.foo.com.", QTYPE.A)
    assert [str(rr.rdata) for rr in www] == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
    ns = zone.get("foo.com.", QTYPE.NS)
    assert [str(rr.rdata.label) for rr in ns] == ["ns1.foo.com.", "ns2.foo.com."]
    assert zone.get("ns1.foo.com.", QTYPE.A)[0].ttl == 300
    assert zone.get("ns2.foo.com.", QTYPE.A)[0].ttl == 300  # class before TTL
    assert str(zone.get("foo.com.", QTYPE.MX)[0].rdata) == "10 mail.foo.com."
    assert str(zone.get("alias.foo.com.", QTYPE.CNAME)[0].rdata.label) == "www.foo.com."
    srv = zone.get("_http._tcp.foo.com.", QTYPE.SRV)[0].rdata
    assert str(srv.target) == "www.foo.com."  # dnslib leaves SRV targets relative
    assert "deep.foo.com." in zone.names and "b.deep.foo.com." in zone.names
    assert "nope.foo.com." not in zone.names


def test_ttl_units_at_in_rdata_and_lowercase_types() -> None:
    zone = load_zone(_zone("$TTL 1h30m\nx in mx 5 @\ny 2d cname @\nz 1w a 10.0.0.1\n"))
    assert zone.get("x.foo.com.", QTYPE.MX)[0].ttl == 5400
    assert str(zone.get("x.foo.com.", QTYPE.MX)[0].rdata.label) == "foo.com."
    assert zone.get("y.foo.com.", QTYPE.CNAME)[0].ttl == 172800
    assert zone.get("z.foo.com.", QTYPE.A)[0].ttl == 604800


def test_no_ttl_anywhere_uses_soa_minimum_then_last_ttl() -> None:
    text = "foo.com. IN SOA ns1.foo.com. h.foo.com. ( 1 2 3 4 86400 )\nwww.foo.com. IN A 1.2.3.4\n"
    zone = load_zone(text)
    assert zone.origin == "foo.com."
    assert zone.get("www.foo.com.", QTYPE.A)[0].ttl == 86400


def test_origin_argument_and_relative_origin() -> None:
    zone = load_zone("@ 60 SOA ns1 h 1 2 3 4 5\n$ORIGIN sub\nwww 60 A 1.1.1.1\n", origin="foo.com")
    assert zone.origin == "foo.com."
    assert zone.get("www.sub.foo.com.", QTYPE.A)


def test_duplicates_dropped_and_set_ttl_unified() -> None:
    zone = load_zone(_zone("a 10 A 1.1.1.1\na 20 A 1.1.1.1\na 30 A 1.1.1.2\n"))
    rrs = zone.get("a.foo.com.", QTYPE.A)
    assert [str(r.rdata) for r in rrs] == ["1.1.1.1", "1.1.1.2"]
    assert {r.ttl for r in rrs} == {10}


def test_txt_escapes_round_trip() -> None:
    zone = load_zone(_zone('t TXT "a \\"q\\" \\200 \\; b" plain\n'))
    assert zone.get("t.foo.com.", QTYPE.TXT)[0].rdata.data == [b'a "q" \xc8 ; b', b"plain"]
    again = load_zone(zone_to_text(zone))
    assert again.get("t.foo.com.", QTYPE.TXT)[0].rdata.data == [b'a "q" \xc8 ; b', b"plain"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (_zone("www A 1.2.3.4\nwww AX 1.2.3.4\n"), 5, "unknown record type 'AX'"),
        (_zone("www A 1.2.3\n"), 4, "bad IPv4 address '1.2.3'"),
        (_zone("www AAAA 1.2.3.4\n"), 4, "bad IPv6 address"),
        (_zone("www.example.org. A 1.2.3.4\n"), 4, "outside the zone"),
        (_zone("www A 1.2.3.4\nwww CNAME x\n"), 5, "CNAME beside other data"),
        (_zone("www CNAME x\nwww CNAME y\n"), 4, "more than one CNAME"),
        (_zone("@ SOA a b 1 2 3 4 5\n"), 4, "second SOA"),
        ("$ORIGIN foo.com.\nwww 60 A 1.2.3.4\n", 0, "no SOA"),
        (_zone("www MX ten mail\n"), 4, "bad MX preference"),
        (_zone("www CH A 1.2.3.4\n"), 4, "class CH not served"),
        (_zone("www A (\n 1.2.3.4\n"), 4, "'(' without ')'"),
        (_zone('www TXT "open\n'), 4, "unterminated"),
        (_zone("$INCLUDE other.zone\n"), 4, "unsupported directive"),
        (_zone("www 60\n"), 4, "missing record type"),
        (_zone("www SRV 1 2 70000 x\n"), 4, "bad SRV port"),
        ("$ORIGIN foo\n@ 60 SOA a b 1 2 3 4 5\n", 1, "relative $ORIGIN before any origin"),
        ("$ORIGIN foo.com.\nwww A 1.2.3.4\n@ SOA a b 1 2 3 4 5\n", 2, "no TTL"),
    ],
)
def test_bad_zone_names_file_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(ZoneError) as info:
        load_zone(text, filename="foo.zone")
    assert info.value.filename == "foo.zone"
    assert info.value.line == line
    assert reason in info.value.reason
    assert str(info.value).startswith(f"foo.zone:{line}: " if line else "foo.zone: ")


def test_error_line_counts_multiline_records() -> None:
    text = _zone("a A (\n  1.1.1.1 )\n; comment\n\nb AX 1\n")
    with pytest.raises(ZoneError, match=r"^z:8: unknown record type 'AX'$"):
        load_zone(text, filename="z")


@pytest.mark.parametrize(
    ("a", "b", "greater"),
    [
        (2, 1, True),
        (1, 2, False),
        (1, 1, False),
        (0, 0xFFFFFFFF, True),  # wrapped
        (0xFFFFFFFF, 0, False),
        (0x7FFFFFFF, 0, True),
        (0x80000000, 0, False),  # exactly half way: undefined, not greater
        (2006032802, 2006032801, True),
    ],
)
def test_serial_gt_rfc1982(a: int, b: int, greater: bool) -> None:
    assert serial_gt(a, b) is greater


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone_texts())
def test_generated_zone_prints_and_parses_back(case: tuple[str, str, list[str]]) -> None:
    origin, text, names = case
    zone = load_zone(text, filename="gen.zone")
    assert zone.origin == origin
    assert set(names) <= zone.names
    printed = zone_to_text(zone)
    again = load_zone(printed, filename="printed.zone")
    assert again.origin == zone.origin
    assert [(str(r.rname), r.rtype, r.ttl, r.rdata) for r in again.records()] == [
        (str(r.rname), r.rtype, r.ttl, r.rdata) for r in zone.records()
    ]
    assert zone_to_text(again) == printed
