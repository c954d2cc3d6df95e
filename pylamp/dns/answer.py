"""The authoritative answer logic: query bytes in, reply bytes out.

Pure: no sockets and no clock. One :class:`Answerer` holds the served zones, the
round-robin counters, the health filters and the expiry flags, and turns a query packet
into the reply packet the way BIND and NSD answer as authoritative servers:

- AA set and RA clear; RD and CD copied from the query.
- A CNAME is followed inside its zone, each step in the answer section.
- NXDOMAIN and NODATA carry the zone's SOA in the authority section with the TTL
  min(SOA TTL, SOA minimum) (RFC 2308).
- A name below a zone cut gets a referral (AA clear, NS in authority, glue in additional).
- A name that does not exist is answered from the wildcard ``*.<closest encloser>`` if
  the zone has one (RFC 4592), with the query's name as owner.
- REFUSED outside our zones or classes, NOTIMP for opcodes other than QUERY and for the
  mail meta types, FORMERR for packets that parse but are malformed (not exactly one
  question, records in the answer or authority section, several or misplaced OPT),
  silence (None) for packets that do not parse or are responses.
- EDNS0: the OPT record is answered with our buffer size (1232) and the client's DO bit;
  a version above 0 gets BADVERS. EDNS options (COOKIE, padding...) are ignored.
- Over UDP the reply is cut to whole RRsets that fit the client's limit (512 without
  EDNS0, else its advertised size, at most the server's own ``udp_limit``); TC is set when
  an answer or authority RRset had to go, or a referral's glue (RFC 9471). Over TCP
  (``udp_limit=None``) nothing is cut.
- Round robin: every RRset of more than one record is given rotated by one more position
  each time it goes into a reply (BIND's ``rrset-order cyclic``), counted per RRset.
- Positive answers carry no authority section (BIND's ``minimal-responses``); NS, MX and
  SRV answers carry the in-zone addresses of their targets as additional data.

Speed: the slow path parses with dnslib and builds the reply with dnslib. Every reply it
builds for a plain query (one question, and an OPT record without options or none) is
stored, per query shape and rotation position, as wire bytes. The fast path finds a
query's shape with a few bytes operations (dropping EDNS options first if there are any),
and returns the stored reply with the client's id and question spliced in; both paths
give byte-identical replies (tested). Any change of zones, expiry or health
filters drops the stored replies.

NOTIFY and zone transfers are not answered here: :func:`query_kind` tells the server
which queries to route to its transfer and notify handlers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from dnslib import CLASS, QTYPE, RR, DNSLabel, DNSQuestion, DNSRecord

from pylamp.dns.zone import Zone

__all__ = [
    "EDNS_BUFFER_SIZE",
    "RCODE_REFUSED",
    "Answerer",
    "QueryKind",
    "build_error",
    "query_kind",
]

#: The UDP payload size we announce in our OPT record (the DNS Flag Day 2020 value).
EDNS_BUFFER_SIZE = 1232

_OPCODE_QUERY = 0
_OPCODE_NOTIFY = 4
_RCODE_NOERROR = 0
_RCODE_FORMERR = 1
_RCODE_SERVFAIL = 2
_RCODE_NXDOMAIN = 3
_RCODE_NOTIMP = 4
_RCODE_REFUSED = 5
#: The REFUSED rcode, for servers refusing transfers or NOTIFY.
RCODE_REFUSED = _RCODE_REFUSED
_RCODE_BADVERS = 16
_QTYPE_OPT = 41
_QTYPE_IXFR = 251
_QTYPE_AXFR = 252
_QTYPE_MAILB = 253
_QTYPE_MAILA = 254
_QTYPE_ANY = 255
_CNAME_CHAIN_LIMIT = 16
_CACHE_LIMIT = 10_000
# Header bytes 2..3 of a query the reply cache may hold: QR=0, opcode QUERY, no AA/TC/RA/Z.
_CACHEABLE_FLAG_MASK = 0xFFFF & ~(0x0100 | 0x0020 | 0x0010)  # all but RD, AD, CD
_PLAIN_OPT_LEN = 11
_LETTERS = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))

QueryKind = Literal["query", "notify", "transfer", "other"]

_RRset = tuple[RR, ...]


def query_kind(query: bytes) -> QueryKind:
    """Which handler a packet belongs to, from its header and question, without parsing.

    ``"notify"`` for opcode NOTIFY, ``"transfer"`` for a QUERY whose single question asks
    AXFR or IXFR, ``"query"`` for other queries, ``"other"`` for responses, other opcodes
    and packets too short to tell (the :class:`Answerer` answers or ignores those).
    """
    if len(query) < 12 or query[2] & 0x80:
        return "other"
    opcode = (query[2] >> 3) & 0xF
    if opcode == _OPCODE_NOTIFY:
        return "notify"
    if opcode != _OPCODE_QUERY:
        return "other"
    end = _name_end(query, 12)
    if end is None or end + 4 > len(query) or query[4:6] != b"\x00\x01":
        return "query"
    qtype = int.from_bytes(query[end : end + 2], "big")
    return "transfer" if qtype in (_QTYPE_AXFR, _QTYPE_IXFR) else "query"


def _without_edns_options(query: bytes) -> bytes | None:
    """``query`` with the options of its OPT record removed, if it is one question plus a
    well-formed OPT carrying options (each option's length checked); else None."""
    if query[4:12] != b"\x00\x01\x00\x00\x00\x00\x00\x01":
        return None
    opt = query.find(0, 12) + 5
    n = len(query)
    if opt < 17 or n <= opt + 11 or query[opt : opt + 3] != b"\x00\x00\x29":
        return None
    if opt + 11 + int.from_bytes(query[opt + 9 : opt + 11], "big") != n:
        return None
    i = opt + 11
    while i + 4 <= n:
        i += 4 + int.from_bytes(query[i + 2 : i + 4], "big")
    if i != n:
        return None
    return query[: opt + 9] + b"\x00\x00"


def _name_end(data: bytes, offset: int) -> int | None:
    """Offset just past an uncompressed name starting at ``offset``; None if not one."""
    n = len(data)
    while offset < n:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length > 63:
            return None
        offset += length + 1
    return None


def _name_text(labels: Iterable[bytes]) -> str:
    """Lower-case absolute text of a wire name, escaping what zone names never contain."""
    parts = []
    for label in labels:
        low = label.lower()
        if all(0x21 <= b < 0x7F and b not in (0x2E, 0x5C) for b in low):
            parts.append(low.decode("ascii"))
        else:
            parts.append(
                "".join(
                    chr(b) if 0x21 <= b < 0x7F and b not in (0x2E, 0x5C) else f"\\{b:03d}"
                    for b in low
                )
            )
    return ".".join(parts) + "." if parts else "."


def _name_wire(labels: Iterable[bytes]) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def build_error(query: bytes, rcode: int) -> bytes | None:
    """A header-only reply with ``rcode`` to ``query`` (its id, opcode and RD); None if
    ``query`` is too short to carry an id. Used for FORMERR/NOTIMP/REFUSED replies to
    packets that are not worth parsing further, by the Answerer and by servers."""
    if len(query) < 4:
        return None
    flags = 0x8000 | (((query[2] >> 3) & 0xF) << 11) | ((query[2] & 0x01) << 8) | rcode
    return query[:2] + flags.to_bytes(2, "big") + bytes(8)


@dataclass(frozen=True)
class _Request:
    """What the slow path read from a query."""

    qname: str  # lower-case text
    qlabels: tuple[bytes, ...]  # as the client wrote them
    qtype: int
    qclass: int
    flags: int  # RD and CD bits to copy
    edns: tuple[int, bool] | None  # (client payload size, DO) if an OPT came


@dataclass
class _ZoneData:
    zone: Zone
    types_at: dict[str, list[int]]
    cuts: frozenset[str]
    expired: bool = False


class Answerer:
    """Answers queries from a set of zones. See the module docstring for the behaviour.

    Hooks for the zone-transfer and health code (dns-transfer) -- these names are API:

    - :meth:`set_zone` adds or replaces a zone (by origin), :meth:`remove_zone` drops one,
      :meth:`zone` and :meth:`zones` read them.
    - :meth:`set_expired` makes a zone answer SERVFAIL (a secondary past its expire timer).
    - :meth:`set_live` filters the A/AAAA records of one owner name down to the live
      addresses, optionally in a given order.

    Every hook drops the stored wire replies, so the next answer reflects the change.
    """

    def __init__(self, zones: Iterable[Zone] = (), *, edns_buffer_size: int = EDNS_BUFFER_SIZE):
        self._edns_buffer_size = edns_buffer_size
        self._zones: dict[str, _ZoneData] = {}
        # Zones we serve but hold no data for yet (a secondary before its first transfer):
        # SERVFAIL, as BIND answers, rather than REFUSED as for zones that are not ours.
        self._pending: set[str] = set()
        self._live: dict[str, tuple[tuple[str, ...], bool]] = {}
        # Round-robin counters, one per rotating RRset, by index for the fast path.
        self._rot_index: dict[tuple[str, int], int] = {}
        self._counters: list[int] = []
        # Stored replies: udp_limit (None = TCP) -> query shape -> (counter index or -1,
        # [reply after its id, question in lower case] one per rotation position).
        # The shape is the query after its id, lower-cased. Only queries whose bytes
        # outside the name hold no ASCII letter are stored, so lower-casing the whole
        # query merges exactly the queries that differ in the case of their name.
        self._cache: dict[int | None, dict[bytes, tuple[int, list[bytes]]]] = {}
        for zone in zones:
            self.set_zone(zone)

    # --- hooks -------------------------------------------------------------------------

    def set_zone(self, zone: Zone) -> None:
        """Serve ``zone``, replacing any zone with the same origin (and its expiry flag)."""
        types_at: dict[str, list[int]] = {}
        for name, rtype in zone.rrsets:
            types_at.setdefault(name, []).append(rtype)
        cuts = frozenset(
            name for name, types in types_at.items() if QTYPE.NS in types and name != zone.origin
        )
        self._zones[zone.origin] = _ZoneData(zone, types_at, cuts)
        self._pending.discard(zone.origin)
        self._cache.clear()

    def remove_zone(self, origin: str) -> None:
        """Stop serving the zone ``origin`` (queries for it get REFUSED)."""
        self._zones.pop(origin.lower(), None)
        self._cache.clear()

    def zone(self, origin: str) -> Zone | None:
        """The zone served for ``origin`` (absolute, any case), or None."""
        data = self._zones.get(origin.lower())
        return data.zone if data else None

    def zones(self) -> list[Zone]:
        """Every served zone."""
        return [data.zone for data in self._zones.values()]

    def set_expired(self, origin: str, expired: bool) -> None:
        """While ``expired``, queries for zone ``origin`` get SERVFAIL (RFC 1035 expire).

        A zone with no data yet (a secondary that has never transferred it) can be marked
        expired too: it answers SERVFAIL until :meth:`set_zone` gives it data.
        """
        origin = origin.lower()
        data = self._zones.get(origin)
        if data is not None:
            data.expired = expired
        elif expired:
            self._pending.add(origin)
        else:
            self._pending.discard(origin)
        self._cache.clear()

    def set_live(
        self, name: str, addresses: Sequence[str] | None, *, ordered: bool = False
    ) -> None:
        """Health filter for the A and AAAA records owned by ``name``.

        Answers give only the records whose address is in ``addresses`` (compared as IP
        addresses, so ``::1`` matches ``0:0::1``). ``None`` removes the filter (the zone
        as written). With ``ordered=True`` the live records come in exactly the order of
        ``addresses`` instead of rotating. A filter that would leave no record gives all
        of them, so health checks never make a name vanish.
        """
        key = name.lower() if name.endswith(".") else name.lower() + "."
        if addresses is None:
            self._live.pop(key, None)
        else:
            self._live[key] = (tuple(_norm_ip(a) for a in addresses), ordered)
        self._cache.clear()

    # --- the answer --------------------------------------------------------------------

    def answer(self, query: bytes, *, udp_limit: int | None) -> bytes | None:
        """The reply to one query packet, or None to stay silent.

        ``udp_limit`` is None for TCP (never truncated), else the largest UDP reply the
        server will send; the client's own limit (512, or its EDNS0 size) also applies.
        """
        reply = self.answer_cached(query, udp_limit)
        if reply is None:
            reply = self._answer_slow(query, udp_limit)
        return reply

    def answer_cached(self, query: bytes, udp_limit: int | None) -> bytes | None:
        """The fast path alone: the stored reply for this query's shape, or None if none
        is stored (then call :meth:`answer`). Never stores AXFR, IXFR or NOTIFY replies,
        so a server may route those after a miss. Advances round robin like answer()."""
        cache = self._cache.get(udp_limit)
        if cache is None:
            return None
        tail = query[2:]
        # A query asked in lower case (most are) is its own key: one lookup, no lower().
        entry = cache.get(tail)
        exact = entry is not None
        if entry is None:
            entry = cache.get(tail.lower())
            if entry is None:
                # EDNS options (a resolver's COOKIE, padding) do not change our reply:
                # answer as for the same query without them.
                plain = _without_edns_options(query)
                return None if plain is None else self.answer_cached(plain, udp_limit)
        index, variants = entry
        if index < 0:
            body = variants[0]
        else:
            counters = self._counters
            count = counters[index]
            counters[index] = count + 1
            body = variants[count % len(variants)]
        if exact:  # question in lower case: the stored body is the reply
            return query[:2] + body
        end = query.find(0, 12)
        return query[:2] + body[:10] + query[12:end] + body[end - 2 :]

    # --- slow path ---------------------------------------------------------------------

    def _answer_slow(self, query: bytes, udp_limit: int | None) -> bytes | None:
        if len(query) < 12 or query[2] & 0x80:
            return None
        opcode = (query[2] >> 3) & 0xF
        try:
            msg = DNSRecord.parse(query)
        except Exception:  # dnslib raises many types on garbage
            return None
        if opcode != _OPCODE_QUERY:
            return build_error(query, _RCODE_NOTIMP)
        if len(msg.questions) != 1 or msg.rr or msg.auth:
            return build_error(query, _RCODE_FORMERR)
        opts = [rr for rr in msg.ar if rr.rtype == _QTYPE_OPT]
        if len(opts) > 1 or (opts and opts[0].rname.label != ()):
            return build_error(query, _RCODE_FORMERR)
        q = msg.questions[0]
        qlabels = tuple(q.qname.label)
        edns: tuple[int, bool] | None = None
        if opts:
            opt = opts[0]
            edns = (max(512, int(opt.rclass)), bool((opt.ttl >> 15) & 1))
        name_end = _name_end(query, 12)
        cacheable = (
            name_end is not None
            and query.find(0, 12) + 1 == name_end
            and int.from_bytes(query[2:4], "big") & _CACHEABLE_FLAG_MASK == 0
            and query[4:12] == b"\x00\x01\x00\x00\x00\x00\x00" + (b"\x01" if opts else b"\x00")
            and len(query) == name_end + 4 + (_PLAIN_OPT_LEN if opts else 0)
            and (not opts or (opts[0].rdata == [] and (opts[0].ttl >> 16) & 0xFF == 0))
            and int(q.qtype) not in (_QTYPE_AXFR, _QTYPE_IXFR)
            and not _LETTERS.intersection(query[name_end:])
        )
        req = _Request(
            qname=_name_text(qlabels),
            qlabels=qlabels,
            qtype=int(q.qtype),
            qclass=int(q.qclass),
            flags=int.from_bytes(query[2:4], "big") & 0x0110,
            edns=edns,
        )
        if opts and (opts[0].ttl >> 16) & 0xFF:
            wire, _ = self._render_error(req, _RCODE_BADVERS)
            return self._finish(query, req, wire)

        counters = self._counters
        wire, used = self._render(req, udp_limit, lambda i: counters[i])
        if cacheable and len(used) <= 1:
            key = query[2:].lower()
            if len(used) == 1:
                index, n = used[0]
                variants = [self._render(req, udp_limit, _fixed(r))[0][2:] for r in range(n)]
            else:
                index, variants = -1, [wire[2:]]
            cache = self._cache.setdefault(udp_limit, {})
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = (index, variants)
        for index, _n in used:
            counters[index] += 1
        return self._finish(query, req, wire)

    @staticmethod
    def _finish(query: bytes, req: _Request, wire: bytes) -> bytes:
        """Put the client's id and question spelling into a rendered reply."""
        if len(wire) <= 12 or wire[4:6] == b"\x00\x00":
            return query[:2] + wire[2:]
        qwire = _name_wire(req.qlabels)
        return query[:2] + wire[2:12] + qwire + wire[12 + len(qwire) :]

    def _header(self, req: _Request, rcode: int, *, aa: bool) -> int:
        return 0x8000 | (0x0400 if aa else 0) | req.flags | (rcode & 0xF)

    def _opt(self, req: _Request, rcode: int) -> list[RR]:
        if req.edns is None:
            return []
        ttl = ((rcode >> 4) << 24) | (0x8000 if req.edns[1] else 0)
        return [RR("", _QTYPE_OPT, rclass=self._edns_buffer_size, ttl=ttl, rdata=[])]

    def _render_error(self, req: _Request, rcode: int) -> tuple[bytes, list[tuple[int, int]]]:
        return self._pack(req, rcode, False, [], [], [], None), []

    def _render(
        self, req: _Request, udp_limit: int | None, rotation: Callable[[int], int]
    ) -> tuple[bytes, list[tuple[int, int]]]:
        """Render the reply (id 0, question in lower case); also the rotating RRsets used
        as (counter index, size). ``rotation(index)`` gives a set's rotation position."""
        if req.qclass != CLASS.IN:
            return self._render_error(req, _RCODE_REFUSED)
        if req.qtype in (_QTYPE_MAILA, _QTYPE_MAILB):
            return self._render_error(req, _RCODE_NOTIMP)
        if req.qtype in (_QTYPE_AXFR, _QTYPE_IXFR, _QTYPE_OPT):
            return self._render_error(
                req, _RCODE_REFUSED if req.qtype != _QTYPE_OPT else _RCODE_FORMERR
            )
        data = self._find_zone(req.qname)
        if (data is not None and data.expired) or self._in_pending_zone(req.qname, data):
            return self._render_error(req, _RCODE_SERVFAIL)
        if data is None:
            return self._render_error(req, _RCODE_REFUSED)

        used: dict[int, int] = {}

        def rrset(name: str, rtype: int, owner: str | None = None) -> _RRset:
            rrs, index = self._effective(data.zone, name, rtype)
            if index is not None:
                used[index] = len(rrs)
                k = rotation(index) % len(rrs)
                rrs = rrs[k:] + rrs[:k]
            if owner is not None:  # synthesised from a wildcard (RFC 4592)
                rrs = tuple(RR(owner, rr.rtype, rr.rclass, rr.ttl, rr.rdata) for rr in rrs)
            return rrs

        zone = data.zone
        answer: list[_RRset] = []
        authority: list[_RRset] = []
        additional: list[_RRset] = []
        rcode = _RCODE_NOERROR
        aa = True
        name = req.qname
        seen: set[str] = set()
        while True:
            cut = self._cut(data, name)
            if cut is not None:
                aa = bool(answer)
                ns = rrset(cut, QTYPE.NS)
                authority.append(ns)
                additional.extend(self._glue(zone, ns, rrset))
                break
            owner: str | None = None
            source: str | None = name
            if name not in zone.names:
                source, owner = self._wildcard(zone, name), name
            if source is None:
                rcode = _RCODE_NXDOMAIN
                authority.append(self._negative_soa(zone))
                break
            cname = zone.rrsets.get((source, QTYPE.CNAME))
            if cname is not None and req.qtype not in (QTYPE.CNAME, _QTYPE_ANY):
                answer.append(rrset(source, QTYPE.CNAME, owner))
                seen.add(name)
                target = str(cname[0].rdata.label).lower()
                if target in seen or len(seen) > _CNAME_CHAIN_LIMIT or not zone.contains(target):
                    break
                name = target
                continue
            if req.qtype == _QTYPE_ANY:
                found = [rrset(source, t, owner) for t in data.types_at.get(source, ())]
            else:
                found = [s for s in (rrset(source, req.qtype, owner),) if s]
            if not found:
                authority.append(self._negative_soa(zone))
                break
            answer.extend(found)
            for s in found:
                for glue in self._glue(zone, s, rrset, skip=[*answer, *additional]):
                    additional.append(glue)
            break
        limit = None
        if udp_limit is not None:
            limit = min(udp_limit, req.edns[0] if req.edns else 512)
        # A referral without its glue is useless (RFC 9471): losing glue then sets TC too.
        referral = bool(authority) and rcode == _RCODE_NOERROR and not aa
        wire = self._pack(req, rcode, aa, answer, authority, additional, limit, referral)
        return wire, list(used.items())

    def _pack(
        self,
        req: _Request,
        rcode: int,
        aa: bool,
        answer: list[_RRset],
        authority: list[_RRset],
        additional: list[_RRset],
        limit: int | None,
        glue_required: bool = False,
    ) -> bytes:
        flags = self._header(req, rcode, aa=aa)
        opt = self._opt(req, rcode)
        sections = [list(answer), list(authority), list(additional)]
        truncated = False
        question = DNSQuestion(
            DNSLabel([lab.lower() for lab in req.qlabels]), req.qtype, req.qclass
        )
        while True:
            msg = DNSRecord(q=question)
            for rrs in sections[0]:
                msg.rr.extend(rrs)
            for rrs in sections[1]:
                msg.auth.extend(rrs)
            for rrs in sections[2]:
                msg.ar.extend(rrs)
            msg.ar.extend(opt)
            msg.set_header_qa()
            wire = bytes(msg.pack())
            if limit is None or len(wire) <= limit:
                break
            # Drop the last whole RRset: additional first, then authority, then answer.
            for i in (2, 1, 0):
                if sections[i]:
                    sections[i].pop()
                    truncated = truncated or i < 2 or glue_required
                    break
            else:
                break  # only the question and OPT left: send that
        if truncated:
            flags |= 0x0200
        return b"\x00\x00" + flags.to_bytes(2, "big") + wire[4:]

    # --- lookups -----------------------------------------------------------------------

    def _find_zone(self, qname: str) -> _ZoneData | None:
        name = qname
        while True:
            data = self._zones.get(name)
            if data is not None:
                return data
            if name == ".":
                return None
            name = name.split(".", 1)[1] or "."

    def _in_pending_zone(self, qname: str, found: _ZoneData | None) -> bool:
        """Whether ``qname`` belongs to a zone with no data yet, below any zone ``found``."""
        if not self._pending:
            return False
        stop = found.zone.origin if found is not None else None
        name = qname
        while name != stop:
            if name in self._pending:
                return True
            if name == ".":
                return False
            name = name.split(".", 1)[1] or "."
        return False

    @staticmethod
    def _cut(data: _ZoneData, name: str) -> str | None:
        """The zone cut (delegation) at or above ``name``, nearest the apex, if any."""
        if not data.cuts or name == data.zone.origin:
            return None
        labels = name[: -len(data.zone.origin) - 1].split(".")
        for i in range(len(labels) - 1, -1, -1):
            candidate = ".".join(labels[i:]) + "." + data.zone.origin
            if candidate in data.cuts:
                return candidate
        return None

    @staticmethod
    def _wildcard(zone: Zone, name: str) -> str | None:
        """The wildcard ``*.<closest encloser>`` that covers a missing ``name``, if the zone
        has one (RFC 4592: only the closest existing ancestor's wildcard applies)."""
        encloser = name
        while encloser not in zone.names:
            encloser = encloser.split(".", 1)[1] or "."
        source = "*." + encloser if encloser != "." else "*."
        return source if source in zone.names else None

    @staticmethod
    def _negative_soa(zone: Zone) -> _RRset:
        soa = zone.soa
        ttl = min(int(soa.ttl), int(soa.rdata.times[4]))
        return (RR(soa.rname, soa.rtype, soa.rclass, ttl, soa.rdata),)

    def _glue(
        self,
        zone: Zone,
        rrs: _RRset,
        rrset: Callable[[str, int], _RRset],
        skip: Sequence[_RRset] = (),
    ) -> list[_RRset]:
        """In-zone A/AAAA sets of the targets of NS, MX and SRV records."""
        out: list[_RRset] = []
        seen: set[str] = set()
        for rr in rrs:
            if rr.rtype in (QTYPE.NS, QTYPE.MX):
                target = str(rr.rdata.label).lower()
            elif rr.rtype == QTYPE.SRV:
                target = str(rr.rdata.target).lower()
            else:
                continue
            if target in seen or not zone.contains(target):
                continue
            seen.add(target)
            for rtype in (QTYPE.A, QTYPE.AAAA):
                if (target, rtype) in zone.rrsets and not any(
                    s and s[0].rtype == rtype and str(s[0].rname) == target for s in skip
                ):
                    out.append(rrset(target, rtype))
        return out

    def _effective(self, zone: Zone, name: str, rtype: int) -> tuple[_RRset, int | None]:
        """The RRset as answered (health filter applied) and its counter index if it
        rotates (None for single records and explicitly ordered sets)."""
        rrs = zone.rrsets.get((name, rtype), ())
        if rtype in (QTYPE.A, QTYPE.AAAA) and name in self._live and rrs:
            addresses, ordered = self._live[name]
            by_addr = {_rr_ip(rr): rr for rr in rrs}
            if ordered:
                picked = tuple(by_addr[a] for a in addresses if a in by_addr)
                if picked:
                    return picked, None
            else:
                live = set(addresses)
                picked = tuple(rr for rr in rrs if _rr_ip(rr) in live)
                if picked:
                    rrs = picked
        if len(rrs) <= 1:
            return rrs, None
        key = (name, rtype)
        index = self._rot_index.get(key)
        if index is None:
            index = self._rot_index[key] = len(self._counters)
            self._counters.append(0)
        return rrs, index


def _fixed(position: int) -> Callable[[int], int]:
    return lambda _index: position


def _norm_ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _rr_ip(rr: RR) -> str:
    if rr.rtype == QTYPE.AAAA:
        return str(ipaddress.IPv6Address(bytes(rr.rdata.data)))
    return str(rr.rdata)
