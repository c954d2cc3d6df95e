"""A primary and a secondary name server: zone transfer, then NOTIFY after an edit.

The primary (127.0.0.1) serves a zone file; the secondary (127.0.0.2) copies it by AXFR. The
file is then edited with a higher serial and reloaded: the primary sends NOTIFY and the
secondary transfers the new zone at once (its refresh timer, an hour, would be far too slow).

    .venv/bin/python examples/primary_secondary_dns.py
"""

import asyncio
import tempfile
import time
from pathlib import Path

from dnslib import DNSRecord

from pylamp.dns.server import DnsServer

ZONE = """\
$ORIGIN example.com.
@    IN SOA ns1 hostmaster ( {serial} 3600 600 86400 300 )
@    IN NS  ns1
ns1  IN A   127.0.0.1
www  IN A   192.0.2.1
"""


async def ask(server: DnsServer, name: str, rdtype: str = "A") -> list[str]:
    """Ask ``server`` until it has an answer for ``name`` (polling with a deadline)."""
    query = DNSRecord.question(name, rdtype)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # dnslib's client blocks, so it runs in a thread while the servers answer.
        reply = DNSRecord.parse(
            await asyncio.to_thread(query.send, server.host, server.port, timeout=2)
        )
        if reply.rr:
            return [str(rr.rdata) for rr in reply.rr]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{server.host} never answered {name}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        zone_file = Path(tmp, "example.com.zone")
        zone_file.write_text(ZONE.format(serial=1))
        async with (
            DnsServer(zones=[zone_file], host="127.0.0.1", allow_transfer=["127.0.0.2"]) as ns1,
            DnsServer(
                host="127.0.0.2",
                primary=(ns1.host, ns1.port),
                secondary_zones=["example.com."],
                data_dir=Path(tmp, "ns2"),
            ) as ns2,
        ):
            # Both bound port 0, so the primary learns where to send NOTIFY only now.
            ns1.add_secondary(ns2.host, ns2.port)
            print("primary   SOA:", (await ask(ns1, "example.com", "SOA"))[0])
            print("secondary SOA:", (await ask(ns2, "example.com", "SOA"))[0])
            print("secondary www:", await ask(ns2, "www.example.com"))

            zone_file.write_text(ZONE.format(serial=2) + "new  IN A   192.0.2.99\n")
            print("zone file edited: serial 2, new.example.com; reload errors:", ns1.reload())
            new = await ask(ns2, "new.example.com")
            print("secondary new:", new, "(by NOTIFY: its refresh timer is an hour)")
            print("secondary SOA:", (await ask(ns2, "example.com", "SOA"))[0])
    print("servers stopped")


if __name__ == "__main__":
    asyncio.run(main())
