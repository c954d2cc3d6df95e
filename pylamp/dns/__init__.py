"""pylamp.dns: the cluster's authoritative, round-robin DNS (the article's ns1 and ns2).

- :mod:`pylamp.dns.zone` -- BIND master files: ``load_zone``, ``zone_to_text``, ``serial_gt``.
- :mod:`pylamp.dns.answer` -- the pure core: ``Answerer`` turns query bytes into reply bytes.
- :mod:`pylamp.dns.server` -- ``DnsServer``, the asyncio UDP+TCP server around it.
- ``python -m pylamp.dns`` -- the command line (see :mod:`pylamp.dns.__main__`).

Submodules are imported where used; this package imports nothing, so that importing one
part (the zone parser, say) does not pull in the servers.
"""
