"""Pure transfer code: AXFR messages and their checks, NOTIFY messages, the SOA timer machine."""

from __future__ import annotations

import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest
from dns_testzones import zone_texts
from dnslib import QTYPE, RCODE, RR, A, DNSHeader, DNSQuestion, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.dns.transfer import (
    Action,
    AxfrReader,
    Notify,
    SecondaryState,
    SoaTimers,
    TransferError,
    axfr_query,
    axfr_response,
    is_notify_ack,
    notify_query,
    notify_reply,
    parse_notify,
    soa_timers,
)
from pylamp.dns.zone import Zone, load_zone, zone_to_text

ZONE = """\
$ORIGIN foo.com.
$TTL 300
@   IN SOA ns1 hostmaster ( 2006032801 10800 3600 86400 300 )
    IN NS  ns1
    IN NS  ns2
    IN MX  10 mail
ns1 IN A 127.0.1.1
ns2 IN A 127.0.1.2
www IN A 127.0.2.1
www IN A 127.0.2.2
www IN A 127.0.2.3
www IN AAAA ::1
web IN CNAME www
txt IN TXT "hello world" "x\\"y"
_http._tcp IN SRV 0 5 8080 www
"""


def _zone(text: str = ZONE) -> Zone:
    return load_zone(text, filename="test")


def _query(qid: int = 77) -> DNSRecord:
    return DNSRecord.parse(axfr_query("foo.com.", qid=qid))


def _read(messages: list[bytes], qid: int = 77) -> Zone:
    reader = AxfrReader("foo.com.", qid)
    done = [reader.feed(m) for m in messages]
    assert done == [False] * (len(messages) - 1) + [True]
    return reader.finish()


def _message(qid: int, rrs: list[RR], rcode: int = RCODE.NOERROR) -> bytes:
    header = DNSHeader(id=qid, qr=1, aa=1, rd=0, rcode=rcode)
    return bytes(DNSRecord(header, q=DNSQuestion("foo.com.", QTYPE.AXFR), rr=rrs).pack())


def test_axfr_round_trip_soa_first_and_last() -> None:
    zone = _zone()
    messages = axfr_response(_query(), zone)
    assert len(messages) == 1
    parsed = dns.message.from_wire(messages[0], one_rr_per_rrset=True)
    assert parsed.id == 77
    assert parsed.flags & dns.flags.AA
    assert parsed.answer[0].rdtype == dns.rdatatype.SOA
    assert parsed.answer[-1].rdtype == dns.rdatatype.SOA
    assert sum(1 for rrset in parsed.answer if rrset.rdtype == dns.rdatatype.SOA) == 2
    assert zone_to_text(_read(messages)) == zone_to_text(zone)


@pytest.mark.parametrize("max_size", [64, 200, 512])
def test_axfr_is_split_over_messages(max_size: int) -> None:
    zone = _zone(ZONE + "".join(f"h{i} IN A 10.0.{i // 250}.{i % 250}\n" for i in range(300)))
    messages = axfr_response(_query(), zone, max_size=max_size)
    assert len(messages) > 10
    first = DNSRecord.parse(messages[0])
    assert first.questions and first.rr[0].rtype == QTYPE.SOA
    for data in messages:
        record = DNSRecord.parse(data)
        assert len(data) <= max_size or len(record.rr) == 1  # a lone record may be larger
        assert record.header.id == 77
    assert not DNSRecord.parse(messages[1]).questions
    assert zone_to_text(_read(messages)) == zone_to_text(zone)


@settings(max_examples=40, deadline=None)
@given(
    hosts=st.lists(
        st.tuples(st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True), st.integers(1, 254)),
        max_size=60,
    ),
    max_size=st.integers(100, 4000),
)
def test_axfr_round_trip_property(hosts: list[tuple[str, int]], max_size: int) -> None:
    text = ZONE + "".join(f"{name}.gen IN A 10.1.2.{last}\n" for name, last in hosts)
    zone = _zone(text)
    assert zone_to_text(_read(axfr_response(_query(5), zone, max_size=max_size), 5)) == (
        zone_to_text(zone)
    )


@settings(max_examples=40, deadline=None)
@given(zone=zone_texts(), max_size=st.integers(100, 2000))
def test_any_zone_survives_a_transfer(zone: tuple[str, str, list[str]], max_size: int) -> None:
    """Every zone the zone tests generate comes through AXFR as it went in."""
    origin, text, _names = zone
    sent = load_zone(text, filename="generated")
    reader = AxfrReader(origin, 9)
    messages = axfr_response(DNSRecord.parse(axfr_query(origin, qid=9)), sent, max_size=max_size)
    assert [reader.feed(m) for m in messages][-1] is True
    assert zone_to_text(reader.finish()) == zone_to_text(sent)


def _rrs() -> tuple[RR, list[RR]]:
    zone = _zone()
    return zone.soa, [rr for rr in zone.records() if rr is not zone.soa]


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("wrong id", "does not match"),
        ("refused", "REFUSED"),
        ("no soa first", "does not start with the SOA"),
        ("outside", "outside the zone"),
        ("serial changed", "another serial"),
        ("after closing", "after the closing SOA"),
        ("garbage", "unparseable"),
        ("query", "not a response"),
        ("empty first", "no SOA"),
    ],
)
def test_axfr_reader_refuses_bad_streams(case: str, error: str) -> None:
    soa, rest = _rrs()
    other_soa = RR.fromZone("foo.com. 300 IN SOA ns1.foo.com. h.foo.com. 5 1 1 1 1")[0]
    stray = RR("www.bar.com.", QTYPE.A, rdata=A("1.2.3.4"), ttl=5)
    messages = {
        "wrong id": [_message(78, [soa, *rest, soa])],
        "refused": [_message(77, [], rcode=RCODE.REFUSED)],
        "no soa first": [_message(77, [*rest, soa])],
        "outside": [_message(77, [soa, stray, soa])],
        "serial changed": [_message(77, [soa, *rest]), _message(77, [other_soa])],
        "after closing": [_message(77, [soa, soa, *rest])],
        "garbage": [b"\x00\x4d\x85"],
        "query": [axfr_query("foo.com.", qid=77)],
        "empty first": [_message(77, [])],
    }[case]
    reader = AxfrReader("foo.com.", 77)
    with pytest.raises(TransferError, match=error):
        for data in messages:
            reader.feed(data)


def test_axfr_reader_incomplete_stream_and_data_after_end() -> None:
    soa, rest = _rrs()
    reader = AxfrReader("foo.com.", 77)
    assert reader.feed(_message(77, [soa, *rest])) is False
    with pytest.raises(TransferError, match="before the closing SOA"):
        reader.finish()
    assert reader.feed(_message(77, [soa])) is True
    with pytest.raises(TransferError, match="after the closing"):
        reader.feed(_message(77, [soa]))


def test_axfr_reader_refuses_zone_that_breaks_zone_rules() -> None:
    soa, _ = _rrs()
    cname = RR.fromZone("www.foo.com. 300 IN CNAME web.foo.com.")[0]
    a = RR.fromZone("www.foo.com. 300 IN A 1.2.3.4")[0]
    reader = AxfrReader("foo.com.", 77)
    reader.feed(_message(77, [soa, cname, a, soa]))
    with pytest.raises(TransferError, match="CNAME beside other data"):
        reader.finish()


def test_notify_round_trip_and_reply() -> None:
    zone = _zone()
    data = notify_query("foo.com.", qid=4242, soa=zone.soa)
    parsed = dns.message.from_wire(data)
    assert parsed.opcode() == dns.opcode.NOTIFY
    assert parsed.flags & dns.flags.AA
    assert parse_notify(data) == Notify(4242, "foo.com.", 2006032801)
    assert parse_notify(notify_query("foo.com", qid=1)) == Notify(1, "foo.com.", None)
    reply = notify_reply(data)
    answer = dns.message.from_wire(reply)
    assert answer.id == 4242
    assert answer.opcode() == dns.opcode.NOTIFY
    assert answer.rcode() == dns.rcode.NOERROR
    assert answer.flags & dns.flags.QR
    assert is_notify_ack(reply, 4242)
    assert not is_notify_ack(reply, 4243)
    assert not is_notify_ack(data, 4242)
    refused = dns.message.from_wire(notify_reply(data, RCODE.REFUSED))
    assert refused.rcode() == dns.rcode.REFUSED


def test_parse_notify_refuses_other_messages() -> None:
    with pytest.raises(TransferError, match="not a NOTIFY"):
        parse_notify(axfr_query("foo.com.", qid=1))
    with pytest.raises(TransferError, match="unparseable"):
        parse_notify(b"\x01")
    bad = DNSRecord(DNSHeader(id=1, opcode=4), q=DNSQuestion("foo.com.", QTYPE.A))
    with pytest.raises(TransferError, match="one SOA"):
        parse_notify(bytes(bad.pack()))


def test_soa_timers() -> None:
    assert soa_timers(_zone().soa) == SoaTimers(2006032801, 10800, 3600, 86400)
    with pytest.raises(TransferError):
        soa_timers(RR.fromZone("a.foo.com. 1 IN A 1.2.3.4")[0])


# -- the SOA timer state machine, driven with explicit times --------------------------------

T = SoaTimers(serial=10, refresh=100, retry=20, expire=500)


def test_empty_secondary_transfers_at_once_and_is_expired() -> None:
    state = SecondaryState(now=1000.0, initial_retry=7)
    assert state.expired(1000.0)
    assert state.next_action(1000.0) == Action("refresh", 1000.0)
    assert state.on_soa(1, 1000.0) is True  # no data: any serial is worth a transfer
    state.on_failure(1000.5)
    assert state.next_action(1000.5) == Action("refresh", 1007.5)
    assert state.expired(5000.0)
    state.on_transfer(T, 1010.0)
    assert not state.expired(1010.0)
    assert state.serial == 10
    assert state.next_action(1010.0) == Action("refresh", 1110.0)


def test_refresh_retry_expire_honour_soa_values() -> None:
    state = SecondaryState(now=0.0)
    state.on_transfer(T, 0.0)
    assert state.next_action(50.0) == Action("refresh", 100.0)
    assert state.on_soa(10, 100.0) is False  # same serial: a contact
    assert state.next_action(100.0) == Action("refresh", 200.0)
    assert state.expires_at == 600.0
    state.on_failure(200.0)  # primary down from now on
    assert state.next_action(200.0) == Action("refresh", 220.0)
    now = 220.0
    while now < 600.0:
        assert not state.expired(now)
        state.on_failure(now)
        now = state.next_action(now).at
    assert now == 600.0
    assert state.expired(600.0)
    assert not state.expired(599.999)
    state.on_soa(10, 700.0)  # the primary is back: served again
    assert not state.expired(700.0)
    assert state.expires_at == 1200.0


def test_expire_is_a_wakeup_when_it_comes_before_the_next_check() -> None:
    state = SecondaryState(now=0.0)
    state.on_transfer(SoaTimers(1, refresh=100, retry=300, expire=250), 0.0)
    state.on_failure(100.0)
    assert state.next_action(100.0) == Action("expire", 250.0)
    assert state.next_action(260.0) == Action("refresh", 400.0)


def test_newer_serial_asks_for_transfer_without_resetting_expire() -> None:
    state = SecondaryState(now=0.0)
    state.on_transfer(T, 0.0)
    assert state.on_soa(11, 100.0) is True
    assert state.expires_at == 500.0
    state.on_failure(100.0)  # the transfer failed
    assert state.next_action(100.0) == Action("refresh", 120.0)
    state.on_transfer(SoaTimers(11, 30, 10, 90), 120.0)
    assert state.serial == 11
    assert state.next_action(120.0) == Action("refresh", 150.0)
    assert state.expires_at == 210.0


def test_notify_checks_at_once() -> None:
    state = SecondaryState(now=0.0)
    state.on_transfer(T, 0.0)
    state.on_notify(5.0)
    assert state.next_action(5.0) == Action("refresh", 5.0)


def test_saved_copy_expires_from_its_last_contact() -> None:
    state = SecondaryState(now=1000.0)
    state.load(T, contact=800.0, now=1000.0)
    assert not state.expired(1000.0)
    assert state.next_action(1000.0) == Action("refresh", 1000.0)
    assert state.expired(1300.0)
    stale = SecondaryState(now=1000.0)
    stale.load(T, contact=100.0, now=1000.0)
    assert stale.expired(1000.0)


@pytest.mark.parametrize(
    ("ours", "theirs", "transfer"),
    [
        (0xFFFFFFFF, 0, True),
        (0xFFFFFFFF, 5, True),
        (5, 0xFFFFFFFF, False),
        (2006032801, 2006032802, True),
        (2006032802, 2006032801, False),
        (1, 1 + 2**31 - 1, True),
        (1, 1 + 2**31, False),  # exactly half the space apart: undefined, not newer
    ],
)
def test_serial_compare_wraps(ours: int, theirs: int, transfer: bool) -> None:
    state = SecondaryState(now=0.0)
    state.on_transfer(SoaTimers(ours, 10, 10, 10), 0.0)
    assert state.on_soa(theirs & 0xFFFFFFFF, 1.0) is transfer


def test_notify_during_a_check_is_not_lost() -> None:
    state = SecondaryState(now=0.0)
    state.on_transfer(T, 0.0)
    state.begin_check()
    state.on_notify(100.0)  # arrives while the SOA query is out
    assert state.on_soa(10, 100.5) is False
    assert state.next_action(100.5) == Action("refresh", 100.5)
    state.begin_check()
    state.on_failure(101.0)
    assert state.next_action(101.0) == Action("refresh", 121.0)  # nothing new: retry timer
