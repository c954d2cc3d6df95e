"""Zones in BIND master-file format: parse, check, print, and compare serials.

Pure: takes text, returns a :class:`Zone`; no files, sockets or clock.

dnslib's ``ZoneParser`` is not used for the text itself because, as of dnslib 0.9.26, it
reports no line numbers, takes a TTL only as plain digits and only before the class
(``IN 1h A`` fails), treats ``@`` in record data as a relative label (``MX 10 @`` becomes
``@.foo.com.``), leaves SRV targets relative, wants record types in upper case, accepts
malformed addresses (``1.2.3`` fails only when packed) and prints TXT escapes in octal.
So the master-file syntax (comments, quotes, parentheses, ``$ORIGIN``, ``$TTL``, blank
owners, ``@``) is tokenised here with line numbers, and dnslib's record classes (``A``,
``SOA``, ``MX``...) hold and pack the record data.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dnslib import AAAA, CLASS, CNAME, MX, NS, PTR, QTYPE, RR, SOA, SRV, TXT, A, DNSLabel

__all__ = [
    "SUPPORTED_TYPES",
    "Zone",
    "ZoneError",
    "load_zone",
    "serial_gt",
    "zone_to_text",
]

#: Record types a zone may contain, by name.
SUPPORTED_TYPES: tuple[str, ...] = ("SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR")

_MAX_U32 = 0xFFFFFFFF
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ZoneError(ValueError):
    """A zone that cannot be served: names the file, the line (0 = whole zone) and why."""

    def __init__(self, filename: str, line: int, reason: str) -> None:
        self.filename = filename
        self.line = line
        self.reason = reason
        where = f"{filename}:{line}" if line else filename
        super().__init__(f"{where}: {reason}")


RRsetKey = tuple[str, int]


@dataclass(frozen=True, eq=False)
class Zone:
    """One parsed, checked zone.

    ``origin`` is absolute and lower case (``"foo.com."``); ``rrsets`` maps
    ``(owner lowercased, rtype)`` to the records of that set in file order, every owner
    name stored in lower case and every record of a set carrying the set's TTL.
    ``names`` holds every owner name and every empty non-terminal between an owner and the
    origin, so "does this name exist" is one set lookup.
    """

    origin: str
    soa: RR
    rrsets: Mapping[RRsetKey, tuple[RR, ...]]
    names: frozenset[str] = field(repr=False)

    @property
    def serial(self) -> int:
        """The SOA serial."""
        return int(self.soa.rdata.times[0])

    def records(self) -> Iterator[RR]:
        """Every record, SOA first, then by owner and type in file order."""
        yield self.soa
        for (_, rtype), rrs in self.rrsets.items():
            if rtype != QTYPE.SOA:
                yield from rrs

    def get(self, name: str, rtype: int) -> tuple[RR, ...]:
        """The RRset of ``name`` (any case, absolute) and ``rtype``, or ``()``."""
        return self.rrsets.get((name.lower(), rtype), ())

    def contains(self, name: str) -> bool:
        """True if ``name`` (absolute) is the origin or below it."""
        return _in_zone(name.lower(), self.origin)


def _in_zone(name: str, origin: str) -> bool:
    return origin == "." or name == origin or name.endswith("." + origin)


def serial_gt(a: int, b: int) -> bool:
    """RFC 1982 serial arithmetic: True if serial ``a`` is newer than ``b``.

    Serials are 32-bit and wrap; ``a`` is greater when it is ahead of ``b`` by less than
    2**31. Serials exactly 2**31 apart are incomparable, reported as not greater.
    """
    a &= _MAX_U32
    b &= _MAX_U32
    return a != b and ((a - b) & _MAX_U32) < 0x80000000


# --- tokenising ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    quoted: bool


@dataclass(frozen=True)
class _Entry:
    """One logical line: its first physical line, whether it began with blank space."""

    line: int
    blank_owner: bool
    tokens: list[_Token]


def _entries(text: str, filename: str) -> Iterator[_Entry]:
    """Split master-file text into logical lines (parentheses join lines, ; comments)."""
    depth = 0
    tokens: list[_Token] = []
    start_line = 0
    blank_owner = False
    paren_line = 0
    i, n, line = 0, len(text), 1
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and depth == 0:
            start_line = line
            blank_owner = c in " \t"
            at_line_start = False
        if c == "\n":
            line += 1
            i += 1
            if depth == 0:
                if tokens:
                    yield _Entry(start_line, blank_owner, tokens)
                tokens = []
                at_line_start = True
            continue
        if c in " \t\r":
            i += 1
        elif c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "(":
            if depth == 0:
                paren_line = line
            depth += 1
            i += 1
        elif c == ")":
            if depth == 0:
                raise ZoneError(filename, line, "')' without '('")
            depth -= 1
            i += 1
        elif c == '"':
            j = i + 1
            buf: list[str] = []
            while True:
                if j >= n or text[j] == "\n":
                    raise ZoneError(filename, line, "unterminated quoted string")
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j : j + 2])
                    j += 2
                    continue
                if text[j] == '"':
                    break
                buf.append(text[j])
                j += 1
            tokens.append(_Token("".join(buf), True))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n;()"':
                j += 2 if text[j] == "\\" and j + 1 < n else 1
            tokens.append(_Token(text[i:j], False))
            i = j
    if depth:
        raise ZoneError(filename, paren_line, "'(' without ')'")
    if tokens:
        yield _Entry(start_line, blank_owner, tokens)


def _unescape(s: str) -> bytes:
    """Master-file escapes: ``\\X`` is X, ``\\DDD`` is the byte DDD (decimal)."""
    out = bytearray()
    raw = s.encode("utf-8")
    i = 0
    while i < len(raw):
        b = raw[i]
        if b == 0x5C and i + 1 < len(raw):
            d = raw[i + 1 : i + 4]
            if len(d) == 3 and d.isdigit() and int(d) < 256:
                out.append(int(d))
                i += 4
                continue
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(b)
        i += 1
    return bytes(out)


def _escape(data: bytes) -> str:
    """Inverse of :func:`_unescape` for a quoted string."""
    parts = []
    for b in data:
        if b in (0x22, 0x5C):
            parts.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            parts.append(chr(b))
        else:
            parts.append(f"\\{b:03d}")
    return "".join(parts)


# --- values --------------------------------------------------------------------------


def _parse_ttl(s: str) -> int | None:
    """A TTL: plain seconds or BIND units (``1h30m``); None if ``s`` is not one."""
    low = s.lower()
    if low.isdigit():
        value = int(low)
    else:
        if not low or not low[0].isdigit():
            return None
        value, num = 0, ""
        for ch in low:
            if ch.isdigit():
                num += ch
            elif ch in _TIME_UNITS and num:
                value += int(num) * _TIME_UNITS[ch]
                num = ""
            else:
                return None
        if num:
            value += int(num)
    return value if value <= _MAX_U32 else None


def _name(token: str, origin: str, err: _Err) -> str:
    """Absolute lower-case name from a master-file name (``@``, relative or absolute)."""
    if token == "@":
        return origin
    if token == ".":
        return "."
    if ".." in token or token.startswith("."):
        raise err(f"bad name {token!r}")
    full = (
        token if token.endswith(".") else (token + "." + origin if origin != "." else token + ".")
    )
    try:
        label = DNSLabel(full)
        labels = label.label
    except Exception as exc:  # dnslib raises several types for bad labels
        raise err(f"bad name {token!r}: {exc}") from None
    if any(len(p) > 63 for p in labels) or sum(len(p) + 1 for p in labels) + 1 > 255:
        raise err(f"name too long {token!r}")
    return full.lower()


class _Err:
    """Builds ZoneErrors for the entry being parsed."""

    def __init__(self, filename: str, line: int) -> None:
        self.filename = filename
        self.line = line

    def __call__(self, reason: str) -> ZoneError:
        return ZoneError(self.filename, self.line, reason)


def _u16(s: str, what: str, err: _Err) -> int:
    if not s.isdigit() or int(s) > 0xFFFF:
        raise err(f"bad {what} {s!r}")
    return int(s)


def _rdata(rtype: str, toks: list[_Token], origin: str, err: _Err) -> object:
    """dnslib record data for one record, checked."""
    words = [t.text for t in toks]

    def need(k: int) -> None:
        if len(words) != k:
            raise err(f"{rtype} needs {k} field{'s' if k > 1 else ''}, got {len(words)}")

    if rtype == "A":
        need(1)
        try:
            return A(str(ipaddress.IPv4Address(words[0])))
        except ValueError:
            raise err(f"bad IPv4 address {words[0]!r}") from None
    if rtype == "AAAA":
        need(1)
        try:
            return AAAA(tuple(ipaddress.IPv6Address(words[0]).packed))
        except ValueError:
            raise err(f"bad IPv6 address {words[0]!r}") from None
    if rtype in ("NS", "CNAME", "PTR"):
        need(1)
        cls = {"NS": NS, "CNAME": CNAME, "PTR": PTR}[rtype]
        return cls(_name(words[0], origin, err))
    if rtype == "MX":
        need(2)
        return MX(_name(words[1], origin, err), _u16(words[0], "MX preference", err))
    if rtype == "SRV":
        need(4)
        prio = _u16(words[0], "SRV priority", err)
        weight = _u16(words[1], "SRV weight", err)
        port = _u16(words[2], "SRV port", err)
        return SRV(prio, weight, port, _name(words[3], origin, err))
    if rtype == "TXT":
        if not toks:
            raise err("TXT needs at least one string")
        strings = [_unescape(t.text) for t in toks]
        if any(len(s) > 255 for s in strings):
            raise err("TXT string longer than 255 bytes")
        return TXT(strings)
    if rtype == "SOA":
        need(7)
        times = []
        for word in words[2:]:
            value = _parse_ttl(word)
            if value is None:
                raise err(f"bad SOA number {word!r}")
            times.append(value)
        return SOA(_name(words[0], origin, err), _name(words[1], origin, err), times)
    raise err(f"unknown record type {rtype!r}")  # pragma: no cover - filtered by caller


# --- loading -------------------------------------------------------------------------


def load_zone(text: str, *, origin: str | None = None, filename: str = "<zone>") -> Zone:
    """Parse and check one zone in master-file format.

    ``origin`` is the initial ``$ORIGIN`` (the zone's name); if None, the first
    ``$ORIGIN`` line or else the SOA owner (which must then be absolute) names the zone.
    A record without a TTL takes ``$TTL``, else the last TTL written, else the SOA
    minimum (BIND's rules for files without ``$TTL``).
    Raises :class:`ZoneError` with ``filename`` and the line for: syntax errors, unknown
    types or classes, bad record data, no SOA or more than one, records outside the zone,
    and a CNAME beside other data. Duplicate records are dropped (as BIND does) and a set
    whose records disagree on TTL takes the first one's.
    """
    cur_origin = _name(origin, ".", _Err(filename, 0)) if origin is not None else None
    zone_origin = cur_origin
    default_ttl: int | None = None
    last_ttl: int | None = None
    owner: str | None = None
    soa: RR | None = None
    rrsets: dict[RRsetKey, list[RR]] = {}
    lines: dict[RRsetKey, int] = {}
    pending: list[tuple[int, RR]] = []

    for entry in _entries(text, filename):
        err = _Err(filename, entry.line)
        toks = list(entry.tokens)
        first = toks[0].text
        if not toks[0].quoted and first.startswith("$"):
            directive = first.upper()
            if directive == "$ORIGIN":
                if len(toks) != 2:
                    raise err("$ORIGIN needs one name")
                if cur_origin is None and not toks[1].text.endswith("."):
                    raise err("relative $ORIGIN before any origin is known")
                cur_origin = _name(toks[1].text, cur_origin or ".", err)
                if zone_origin is None:
                    zone_origin = cur_origin
            elif directive == "$TTL":
                new_ttl = _parse_ttl(toks[1].text) if len(toks) == 2 else None
                if new_ttl is None:
                    raise err("$TTL needs one TTL")
                default_ttl = new_ttl
            else:
                raise err(f"unsupported directive {first!r}")
            continue
        if entry.blank_owner:
            if owner is None:
                raise err("no owner name and no previous record")
        else:
            tok = toks.pop(0)
            if tok.text.endswith("."):
                owner = _name(tok.text, ".", err)
            elif cur_origin is None:
                raise err(f"relative name {tok.text!r} before any $ORIGIN")
            else:
                owner = _name(tok.text, cur_origin, err)
        ttl: int | None = None
        seen_class = False
        while toks and not toks[0].quoted:
            word = toks[0].text
            if ttl is None and (t := _parse_ttl(word)) is not None:
                ttl = t
            elif not seen_class and word.upper() in ("IN", "CH", "HS", "CS"):
                if word.upper() != "IN":
                    raise err(f"class {word.upper()} not served (only IN)")
                seen_class = True
            else:
                break
            toks.pop(0)
        if not toks or toks[0].quoted:
            raise err("missing record type")
        rtype_name = toks.pop(0).text.upper()
        if rtype_name not in SUPPORTED_TYPES:
            raise err(f"unknown record type {rtype_name!r}")
        if cur_origin is None:
            cur_origin = owner if rtype_name == "SOA" else None
            if cur_origin is None:
                raise err("no $ORIGIN and no SOA before the first record")
            if zone_origin is None:
                zone_origin = cur_origin
        rdata = _rdata(rtype_name, toks, cur_origin, err)
        if ttl is None:
            if default_ttl is not None:
                ttl = default_ttl
            elif last_ttl is not None:
                ttl = last_ttl
            elif rtype_name == "SOA":
                ttl = int(rdata.times[4])  # type: ignore[attr-defined]
            elif soa is not None:
                ttl = int(soa.rdata.times[4])
            else:
                raise err("no TTL, no $TTL and no earlier TTL")
        else:
            last_ttl = ttl
        assert owner is not None
        rtype = int(getattr(QTYPE, rtype_name))
        rr = RR(owner, rtype, CLASS.IN, ttl, rdata)
        if rtype == QTYPE.SOA:
            if soa is not None:
                raise err("second SOA record")
            soa = rr
        pending.append((entry.line, rr))

    if soa is None:
        raise ZoneError(filename, 0, "no SOA record")
    apex = str(soa.rname).lower()
    if zone_origin is None:  # pragma: no cover - the SOA sets it
        zone_origin = apex
    if apex != zone_origin:
        raise ZoneError(filename, _line_of(pending, soa), f"SOA owner {apex} is not {zone_origin}")

    for line, rr in pending:
        name = str(rr.rname).lower()
        if not _in_zone(name, zone_origin):
            raise ZoneError(filename, line, f"{name} is outside the zone {zone_origin}")
        key = (name, rr.rtype)
        rrs = rrsets.setdefault(key, [])
        lines.setdefault(key, line)
        if rrs:
            rr.ttl = rrs[0].ttl
        if all(rr.rdata != other.rdata for other in rrs):
            rrs.append(rr)

    names: set[str] = set()
    types_at: dict[str, list[int]] = {}
    for name, rtype in rrsets:
        types_at.setdefault(name, []).append(rtype)
        n = name
        while n not in names:
            names.add(n)
            if n == zone_origin:
                break
            n = n.split(".", 1)[1] or "."
    for name, types in types_at.items():
        cname = rrsets.get((name, QTYPE.CNAME))
        if cname is None:
            continue
        if len(types) > 1:
            raise ZoneError(
                filename, lines[(name, QTYPE.CNAME)], f"CNAME beside other data at {name}"
            )
        if len(cname) > 1:
            raise ZoneError(filename, lines[(name, QTYPE.CNAME)], f"more than one CNAME at {name}")
    return Zone(
        origin=zone_origin,
        soa=rrsets[(zone_origin, QTYPE.SOA)][0],
        rrsets={k: tuple(v) for k, v in rrsets.items()},
        names=frozenset(names),
    )


def _line_of(pending: list[tuple[int, RR]], rr: RR) -> int:
    return next((line for line, other in pending if other is rr), 0)


# --- printing ------------------------------------------------------------------------


def _rdata_text(rr: RR) -> str:
    rd = rr.rdata
    if rr.rtype == QTYPE.TXT:
        return " ".join('"' + _escape(s) + '"' for s in rd.data)
    if rr.rtype == QTYPE.AAAA:
        return str(ipaddress.IPv6Address(bytes(rd.data)))
    return str(rd.toZone())


def zone_to_text(zone: Zone) -> str:
    """The zone as master-file text with absolute names, which :func:`load_zone` reads back."""
    out = [f"$ORIGIN {zone.origin}"]
    for rr in zone.records():
        out.append(f"{str(rr.rname).lower()}\t{rr.ttl}\tIN\t{QTYPE[rr.rtype]}\t{_rdata_text(rr)}")
    return "\n".join(out) + "\n"
