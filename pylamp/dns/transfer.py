"""Zone transfer and NOTIFY, without I/O: AXFR messages, their validation, and the SOA timers.

* :func:`axfr_response` turns a zone's records into the messages of an AXFR answer (RFC 5936):
  the SOA first and last, everything else between, split over as many messages as the size limit
  needs, the question in the first message only.
* :class:`AxfrReader` takes the messages of a transfer one by one, checks each (our query's id, no
  error code, SOA first, every owner inside the zone, the closing SOA with the opening serial and
  nothing after it) and gives the records back.
* :func:`notify_query`, :func:`parse_notify` and :func:`notify_reply` build and read NOTIFY
  (RFC 1996): opcode 4, AA set, the zone's SOA in the question.
* :class:`SecondaryState` is the secondary's timer state machine (RFC 1034 section 4.3.5): it is
  told what happened and when (time is passed in) and says what to do next and whether the zone
  has expired.

Every failure is a :class:`TransferError` with a message fit for a log line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dnslib import (
    CLASS,
    OPCODE,
    QTYPE,
    RCODE,
    RR,
    SOA,
    DNSBuffer,
    DNSError,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)

from pylamp.dns.zone import Zone, ZoneError, load_zone, serial_gt, zone_to_text

__all__ = [
    "DEFAULT_MESSAGE_SIZE",
    "Action",
    "AxfrReader",
    "Notify",
    "SecondaryState",
    "SoaTimers",
    "TransferError",
    "axfr_query",
    "axfr_response",
    "is_notify_ack",
    "notify_query",
    "notify_reply",
    "parse_notify",
    "soa_query",
    "soa_serial",
    "soa_timers",
    "zone_from_records",
]

#: Largest AXFR message we build: well under TCP DNS's 65,535, as BIND and NSD keep theirs.
DEFAULT_MESSAGE_SIZE = 16384

_HEADER_SIZE = 12


class TransferError(Exception):
    """A transfer, SOA query or NOTIFY that cannot be used; the message says why."""


# -- SOA helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SoaTimers:
    """The SOA fields a secondary runs on, in seconds (serial as an RFC 1982 number)."""

    serial: int
    refresh: int
    retry: int
    expire: int


def soa_timers(rr: RR) -> SoaTimers:
    """Read the timer fields of an SOA record."""
    if rr.rtype != QTYPE.SOA or not isinstance(rr.rdata, SOA):
        raise TransferError(f"expected an SOA record, got {QTYPE.get(rr.rtype)}")
    serial, refresh, retry, expire, _minimum = rr.rdata.times
    return SoaTimers(int(serial), int(refresh), int(retry), int(expire))


def soa_serial(rr: RR) -> int:
    """The serial of an SOA record."""
    return soa_timers(rr).serial


# -- AXFR ------------------------------------------------------------------------------------


def axfr_query(origin: str, *, qid: int) -> bytes:
    """An AXFR query for ``origin`` (send over TCP with the 2-byte length prefix)."""
    query = DNSRecord(DNSHeader(id=qid, rd=0), q=DNSQuestion(origin, QTYPE.AXFR))
    return bytes(query.pack())


def soa_query(origin: str, *, qid: int) -> bytes:
    """The SOA query a secondary sends to learn the primary's serial."""
    query = DNSRecord(DNSHeader(id=qid, rd=0), q=DNSQuestion(origin, QTYPE.SOA))
    return bytes(query.pack())


def axfr_response(
    query: DNSRecord, zone: Zone, *, max_size: int = DEFAULT_MESSAGE_SIZE
) -> list[bytes]:
    """The messages of an AXFR answer to ``query``: the SOA, every other record, the SOA.

    Messages are filled up to ``max_size`` bytes (RFC 5936 section 2.2); a record is never split,
    and a record too large for an otherwise empty message gets a message of its own.
    """
    soa = zone.soa
    records = (rr for rr in zone.records() if rr is not soa)
    question = query.questions[:1]
    base = _HEADER_SIZE + sum(_packed_size(q) for q in question)
    messages: list[list[RR]] = [[]]
    size = base
    for rr in (soa, *records, soa):
        rr_size = _packed_size(rr)
        if messages[-1] and size + rr_size > max_size:
            messages.append([])
            size = _HEADER_SIZE
        messages[-1].append(rr)
        size += rr_size
    out = []
    for index, rrs in enumerate(messages):
        header = DNSHeader(id=query.header.id, qr=1, aa=1, rd=query.header.rd, opcode=0)
        reply = DNSRecord(header, questions=list(question) if index == 0 else [], rr=rrs)
        packed = bytes(reply.pack())
        if len(packed) > 65535:
            raise TransferError(f"a record of {rrs[0].rname} does not fit in a DNS message")
        out.append(packed)
    return out


def _packed_size(item: RR | DNSQuestion) -> int:
    """Size on its own; inside a message compression can only make it smaller."""
    buffer = DNSBuffer()
    item.pack(buffer)
    return len(buffer.data)


class AxfrReader:
    """Checks the messages of one AXFR answer and collects its records.

    Feed each message with :meth:`feed`; it returns True once the closing SOA has arrived.
    :attr:`soa` is the zone's SOA and :attr:`records` every other record, in the order received.
    """

    def __init__(self, origin: str, qid: int) -> None:
        self.origin = DNSLabel(origin)
        self.qid = qid
        self.soa: RR | None = None
        self.records: list[RR] = []
        self.messages = 0
        self.done = False

    def feed(self, data: bytes) -> bool:
        """Take one message; raise :class:`TransferError` if it breaks the rules."""
        if self.done:
            raise TransferError("data after the closing SOA")
        try:
            message = DNSRecord.parse(data)
        except (DNSError, ValueError, IndexError) as exc:
            raise TransferError(f"unparseable transfer message: {exc}") from exc
        header = message.header
        if header.id != self.qid:
            raise TransferError(f"message id {header.id} does not match query id {self.qid}")
        if not header.qr or header.opcode != OPCODE.QUERY:
            raise TransferError("not a response to a transfer query")
        if header.rcode != RCODE.NOERROR:
            raise TransferError(f"primary answered {RCODE.get(header.rcode)}")
        self.messages += 1
        for index, rr in enumerate(message.rr):
            if self.soa is None:
                if rr.rtype != QTYPE.SOA or rr.rname != self.origin:
                    raise TransferError(f"transfer does not start with the SOA of {self.origin}")
                self.soa = rr
                continue
            if rr.rclass != CLASS.IN:
                raise TransferError(f"record of class {CLASS.get(rr.rclass)} at {rr.rname}")
            if not rr.rname.matchSuffix(self.origin):
                raise TransferError(f"record {rr.rname} is outside the zone {self.origin}")
            if rr.rtype == QTYPE.SOA and rr.rname == self.origin:
                if soa_serial(rr) != soa_serial(self.soa):
                    raise TransferError("closing SOA has another serial: zone changed mid-transfer")
                if index != len(message.rr) - 1:
                    raise TransferError("records after the closing SOA")
                self.done = True
                return True
            if rr.rtype == QTYPE.SOA:
                raise TransferError(f"SOA record at {rr.rname} inside the zone")
            self.records.append(rr)
        if self.soa is None:
            raise TransferError("first transfer message carries no SOA")
        return False

    def finish(self) -> Zone:
        """The transferred zone, checked as a zone file is; raise if it is incomplete or bad."""
        if not self.done or self.soa is None:
            raise TransferError("transfer ended before the closing SOA")
        return zone_from_records(str(self.origin), self.soa, self.records)


def zone_from_records(origin: str, soa: RR, records: Iterable[RR]) -> Zone:
    """A :class:`Zone` from transferred records, with every check :func:`load_zone` makes.

    The records go through the master-file printer and parser, so a transferred zone obeys
    exactly the rules of a zone file (supported types, no CNAME beside other data, ...).
    """
    origin = origin.lower() if origin.endswith(".") else origin.lower() + "."
    rrsets: dict[tuple[str, int], tuple[RR, ...]] = {}
    for rr in (soa, *records):
        key = (str(rr.rname).lower(), int(rr.rtype))
        rrsets[key] = (*rrsets.get(key, ()), rr)
    draft = Zone(origin=origin, soa=soa, rrsets=rrsets, names=frozenset())
    try:
        return load_zone(zone_to_text(draft), origin=origin, filename=f"transfer of {origin}")
    except ZoneError as exc:
        raise TransferError(str(exc)) from exc


# -- NOTIFY ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notify:
    """A NOTIFY received: which zone, the message id, and the serial hint if one was sent."""

    qid: int
    origin: str
    serial: int | None = None


def notify_query(origin: str, *, qid: int, soa: RR | None = None) -> bytes:
    """A NOTIFY for ``origin``; ``soa`` (optional) rides in the answer section as a hint."""
    message = DNSRecord(
        DNSHeader(id=qid, opcode=OPCODE.NOTIFY, aa=1, rd=0),
        q=DNSQuestion(origin, QTYPE.SOA),
        rr=[soa] if soa is not None else [],
    )
    return bytes(message.pack())


def parse_notify(data: bytes) -> Notify:
    """Read a NOTIFY request; raise :class:`TransferError` when it is not a well-formed one."""
    try:
        message = DNSRecord.parse(data)
    except (DNSError, ValueError, IndexError) as exc:
        raise TransferError(f"unparseable NOTIFY: {exc}") from exc
    if message.header.opcode != OPCODE.NOTIFY or message.header.qr:
        raise TransferError("not a NOTIFY request")
    if len(message.questions) != 1 or message.questions[0].qtype != QTYPE.SOA:
        raise TransferError("NOTIFY must ask about one SOA")
    origin = str(message.questions[0].qname)
    serial = None
    for rr in message.rr:
        if rr.rtype == QTYPE.SOA and rr.rname == message.questions[0].qname:
            serial = soa_serial(rr)
    return Notify(message.header.id, origin, serial)


def notify_reply(data: bytes, rcode: int = RCODE.NOERROR) -> bytes:
    """The reply to a NOTIFY request: same id and question, QR set, AA set, the given rcode."""
    try:
        request = DNSRecord.parse(data)
    except (DNSError, ValueError, IndexError) as exc:
        raise TransferError(f"unparseable NOTIFY: {exc}") from exc
    header = DNSHeader(
        id=request.header.id, qr=1, aa=1, rd=0, opcode=request.header.opcode, rcode=rcode
    )
    return bytes(DNSRecord(header, questions=request.questions[:1]).pack())


def is_notify_ack(data: bytes, qid: int) -> bool:
    """Whether ``data`` acknowledges our NOTIFY ``qid`` (any rcode ends the retries, as BIND)."""
    try:
        header = DNSRecord.parse(data).header
    except (DNSError, ValueError, IndexError):
        return False
    return bool(header.qr) and header.id == qid and header.opcode == OPCODE.NOTIFY


# -- the secondary's timers ------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What a secondary does next, and when: check the primary's SOA, or expire the zone."""

    kind: Literal["refresh", "expire"]
    at: float


# State table (RFC 1034 4.3.5, RFC 1996 for NOTIFY). "contact" = the primary answered the SOA
# query with a serial not newer than ours, or a transfer completed.
#
#   event                      next_check            expires_at          zone data
#   load(saved copy, t)        now                   t + expire          saved copy
#   on_soa(newer)              (unchanged: a         unchanged           unchanged
#                               transfer follows)
#   on_soa(not newer), now     now + refresh         now + expire        unchanged
#   on_transfer(timers), now   now + refresh         now + expire        new zone
#   on_failure(now)            now + retry           unchanged           unchanged
#   on_notify(now)             now                   unchanged           unchanged
#   begin_check()              (unchanged)           unchanged           unchanged
#
# A NOTIFY that arrives while a check is under way (after begin_check, before its outcome) is
# kept: the outcome then schedules the next check at once instead of after refresh/retry, so a
# change made on the primary during a transfer is not missed until the next refresh.
# Without any zone data the retry interval is `initial_retry`, and the zone counts as expired
# (the server answers SERVFAIL for it) until the first transfer.
class SecondaryState:
    """Pure SOA timer state of one secondary zone (see the table above); times in seconds."""

    def __init__(self, *, now: float, initial_retry: float = 5.0) -> None:
        self.timers: SoaTimers | None = None
        self.initial_retry = initial_retry
        self.next_check = now
        self.expires_at: float | None = None
        self.last_contact: float | None = None
        self._checking = False
        self._notified = False

    @property
    def serial(self) -> int | None:
        """Serial of the zone we hold, None before the first transfer."""
        return self.timers.serial if self.timers else None

    def load(self, timers: SoaTimers, *, contact: float, now: float) -> None:
        """A saved copy was loaded; ``contact`` is when it was last confirmed with the primary."""
        self.timers = timers
        self.last_contact = contact
        self.expires_at = contact + timers.expire
        self.next_check = now

    def next_action(self, now: float) -> Action:
        """The next thing to do; due when ``action.at <= now``."""
        if self.expires_at is not None and now < self.expires_at < self.next_check:
            return Action("expire", self.expires_at)
        return Action("refresh", self.next_check)

    def begin_check(self) -> None:
        """A check of the primary (SOA query, maybe a transfer) starts now."""
        self._checking = True
        self._notified = False

    def on_soa(self, serial: int, now: float) -> bool:
        """The primary's SOA serial arrived; return whether to transfer the zone."""
        if self.timers is None or serial_gt(serial, self.timers.serial):
            return True
        self._contact(now)
        return False

    def on_transfer(self, timers: SoaTimers, now: float) -> None:
        """A transfer completed and its zone is now served."""
        self.timers = timers
        self._contact(now)

    def on_failure(self, now: float) -> None:
        """The SOA query or the transfer failed: try again after the retry interval."""
        retry = self.timers.retry if self.timers else self.initial_retry
        self._end_check(now + retry, now)

    def on_notify(self, now: float) -> None:
        """A NOTIFY from the primary: check the serial at once (RFC 1996 section 3.11)."""
        self.next_check = min(self.next_check, now)
        if self._checking:
            self._notified = True

    def expired(self, now: float) -> bool:
        """Whether the zone must not be served (no data, or expire passed without contact)."""
        return self.expires_at is None or now >= self.expires_at

    def _contact(self, now: float) -> None:
        assert self.timers is not None
        self.last_contact = now
        self.expires_at = now + self.timers.expire
        self._end_check(now + self.timers.refresh, now)

    def _end_check(self, next_check: float, now: float) -> None:
        self.next_check = now if self._notified else next_check
        self._checking = self._notified = False
