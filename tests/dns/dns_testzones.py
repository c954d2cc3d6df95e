"""Test zones: the article's foo.com, and hypothesis strategies for random valid zones,
for queries about foo.com and for random and mutated packets."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.edns
import dns.flags
import dns.message
from hypothesis import strategies as st

FOO_ZONE = """\
; Domain database for foo.com (the article's zone, with addresses filled in)
$ORIGIN foo.com.
$TTL 1h
@       IN      SOA     ns1.foo.com. hostmaster.foo.com. (
                        2006032801 ; serial
                        10800 ; refresh
                        3600 ; retry
                        86400 ; expire
                        300 ) ; negative TTL
foo.com.        IN      NS      ns1.foo.com.
                IN      NS      ns2
@               IN      MX      10 mail
ns1     300     IN      A       127.0.1.1
ns2     IN      300     A       127.0.1.2
mail            IN      A       127.0.4.1
www             IN      A       127.0.2.1
www             IN      A       127.0.2.2
www             IN      A       127.0.2.3
alias           IN      CNAME   www
chain           IN      CNAME   alias
away            IN      CNAME   www.example.org.
dangling        IN      CNAME   nothing
a.b.deep        IN      TXT     "empty non-terminals above"
_http._tcp      IN      SRV     0 5 8080 www
v6              IN      AAAA    2001:db8::1
sub             IN      NS      ns.sub
ns.sub          IN      A       127.0.5.1
*.wild          IN      A       127.0.6.1
*.wild          IN      A       127.0.6.2
"""


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
_TTL = st.integers(min_value=0, max_value=2**31 - 1)
_IPV4 = st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
_IPV6 = st.integers(min_value=0, max_value=2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
_TXT = st.lists(
    st.binary(max_size=40).map(
        lambda b: (
            '"'
            + "".join(
                chr(c) if 0x20 <= c < 0x7F and c not in (0x22, 0x5C) else f"\\{c:03d}" for c in b
            )
            + '"'
        )
    ),
    min_size=1,
    max_size=3,
).map(" ".join)


@st.composite
def zone_texts(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    """(origin, master-file text, owner names) of a random valid zone.

    Uses relative and absolute names, '@', $TTL, blank owners, parentheses and comments.
    """
    origin = ".".join(draw(st.lists(_LABEL, min_size=1, max_size=3))) + "."
    owners = draw(
        st.lists(st.lists(_LABEL, min_size=1, max_size=3).map(".".join), max_size=8, unique=True)
    )
    lines = [f"$ORIGIN {origin}", f"$TTL {draw(_TTL)}"]
    serial = draw(st.integers(min_value=0, max_value=2**32 - 1))
    lines.append(f"@ IN SOA ns1 hostmaster.{origin} ( {serial} ; serial")
    lines.append("   3600 900 604800 300 )")
    lines.append(f"{origin} NS ns1")
    lines.append("  NS ns2.example.net.")
    names = [origin]
    cname_owners: set[str] = set()
    for owner in owners:
        full = f"{owner}.{origin}"
        names.append(full)
        if draw(st.booleans()) and draw(st.booleans()) and owner not in cname_owners:
            target = draw(st.sampled_from(["@", *owners]))
            if target == owner:
                target = "@"
            lines.append(f"{owner} {draw(_TTL)} IN CNAME {target}")
            cname_owners.add(owner)
            continue
        kinds = draw(
            st.lists(
                st.sampled_from(["A", "AAAA", "MX", "TXT", "SRV", "PTR"]), min_size=1, max_size=4
            )
        )
        first = True
        for kind in kinds:
            name = (owner if draw(st.booleans()) else full) if first else ""
            ttl = f"{draw(_TTL)} " if draw(st.booleans()) else ""
            if kind == "A":
                rdata = draw(_IPV4)
            elif kind == "AAAA":
                rdata = draw(_IPV6)
            elif kind == "MX":
                rdata = f"{draw(st.integers(0, 65535))} {draw(st.sampled_from(['@', *owners]))}"
            elif kind == "TXT":
                rdata = draw(_TXT)
            elif kind == "SRV":
                p, w, port = (draw(st.integers(0, 65535)) for _ in range(3))
                rdata = f"{p} {w} {port} {draw(st.sampled_from(['@', *owners]))}"
            else:
                rdata = draw(st.sampled_from(["@", *owners, "host.example.com."]))
            comment = " ; note" if draw(st.booleans()) else ""
            lines.append(f"{name}\t{ttl}IN {kind} {rdata}{comment}")
            first = False
    return origin, "\n".join(lines) + "\n", names


# --- queries and packets about FOO_ZONE -----------------------------------------------------

_NAMES = [
    "www.foo.com",
    "foo.com",
    "alias.foo.com",
    "chain.foo.com",
    "nope.foo.com",
    "x.sub.foo.com",
    "_http._tcp.foo.com",
    "deep.foo.com",
    "away.foo.com",
    "mail.foo.com",
    "a.b.wild.foo.com",
    "www.example.org",
]
_TYPES = ["A", "AAAA", "NS", "MX", "SOA", "TXT", "SRV", "CNAME", "ANY", "PTR", "MAILA", "TYPE99"]


def recase(name: str, mask: int) -> str:
    """``name`` with the letters whose bit is set in ``mask`` upper-cased."""
    return "".join(c.upper() if (mask >> (i % 60)) & 1 else c for i, c in enumerate(name))


@dataclass(frozen=True)
class QuerySpec:
    """One generated query: name (letter case from ``mask``), type, header flags, EDNS
    (version, payload size, DO) or None, EDNS options, and a UDP limit to answer under."""

    name: str
    mask: int
    rdtype: str
    flags: int
    edns: tuple[int, int, bool] | None
    limit: int | None
    options: tuple[dns.edns.Option, ...]


def query_wire(spec: QuerySpec) -> bytes:
    """The wire form of a generated query."""
    kwargs: dict[str, object] = {}
    if spec.edns is not None:
        version, payload, dnssec = spec.edns
        kwargs = {"use_edns": version, "payload": payload, "want_dnssec": dnssec}
        kwargs["options"] = list(spec.options)
    query = dns.message.make_query(recase(spec.name, spec.mask), spec.rdtype, **kwargs)  # type: ignore[arg-type]
    query.flags = spec.flags
    return query.to_wire()


#: Queries about foo.com (and one name outside it) in many shapes.
QUERIES = st.builds(
    QuerySpec,
    st.sampled_from(_NAMES),
    st.integers(0, 2**60),
    st.sampled_from(_TYPES),
    st.sampled_from([0, dns.flags.RD, dns.flags.CD | dns.flags.RD, dns.flags.AD]),
    st.sampled_from([None, (0, 512, False), (0, 4096, True), (0, 1232, False)]),
    st.sampled_from([None, 512, 1232, 65535]),
    st.sampled_from(
        [
            (),
            (dns.edns.GenericOption(10, b"\x07" * 8),),  # a client COOKIE
            (dns.edns.GenericOption(12, b"\x00" * 17),),  # padding
            (dns.edns.GenericOption(65001, b""), dns.edns.GenericOption(10, b"c" * 24)),
        ]
    ),
)

#: Valid queries that mutated_packets() starts from.
BASE_PACKETS = [
    dns.message.make_query("www.foo.com", "A", use_edns=0).to_wire(),
    dns.message.make_query(
        "www.foo.com", "A", use_edns=0, options=[dns.edns.GenericOption(10, b"\x01" * 8)]
    ).to_wire(),
    dns.message.make_query("foo.com", "NS").to_wire(),
]


def mutated_packets() -> st.SearchStrategy[bytes]:
    """Random bytes, and BASE_PACKETS with a byte changed, cut short or with junk after."""

    def flip(base: bytes, at: int, value: int) -> bytes:
        at %= len(base)
        return base[:at] + bytes([value]) + base[at + 1 :]

    bases = st.sampled_from(BASE_PACKETS)
    return st.one_of(
        st.binary(max_size=80),
        st.builds(flip, bases, st.integers(0, 200), st.integers(0, 255)),
        st.builds(lambda b, n: b[: n % (len(b) + 1)], bases, st.integers(0, 200)),
        st.builds(lambda b, junk: b + junk, bases, st.binary(max_size=20)),
    )
