"""Round-robin DNS: one name, three addresses, a different first address on every answer.

Starts a DnsServer on a free port from zone text, asks it six times for www.example.com with
dnslib's client, and prints the order of the addresses in each answer (BIND's cyclic order).

    .venv/bin/python examples/round_robin_dns.py
"""

import asyncio

from dnslib import QTYPE, DNSRecord

from pylamp.dns.server import DnsServer

ZONE = """\
$ORIGIN example.com.
$TTL 300
@    IN SOA ns1 hostmaster ( 1 3600 600 86400 300 )
@    IN NS  ns1
ns1  IN A   127.0.0.1
www  IN A   192.0.2.1
www  IN A   192.0.2.2
www  IN A   192.0.2.3
"""


def ask(host: str, port: int) -> list[str]:
    """One UDP query for www's A records; the addresses in the order the server gave them."""
    query = DNSRecord.question("www.example.com", "A")
    reply = DNSRecord.parse(query.send(host, port, timeout=2))
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


async def main() -> None:
    async with DnsServer(zones=[ZONE], host="127.0.0.1", port=0) as dns:
        print(f"DNS server on {dns.host}:{dns.port}")
        for i in range(1, 7):
            # dnslib's client blocks, so it runs in a thread while the server answers.
            addresses = await asyncio.to_thread(ask, dns.host, dns.port)
            print(f"answer {i}: {' '.join(addresses)}")
    print("server stopped")


if __name__ == "__main__":
    asyncio.run(main())
