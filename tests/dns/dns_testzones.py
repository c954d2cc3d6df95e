"""Test zones: the article's foo.com, and hypothesis strategies for random valid zones."""

from __future__ import annotations

import ipaddress

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
