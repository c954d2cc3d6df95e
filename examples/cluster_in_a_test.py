"""The name servers of a cluster as real processes, for a test harness: kill ns1, ns2 answers.

Writes a topology (ns1 primary, ns2 secondary, every port 0 so the supervisor picks free ones)
and a zone file to a temp dir, starts both servers with ``async with Cluster(...)``, asks each
for www.foo.com, kills ns1 as a crash would, and shows ns2 still answers from its copy.

    .venv/bin/python examples/cluster_in_a_test.py
"""

import asyncio
import tempfile
import time
from pathlib import Path

from dnslib import DNSRecord

from pylamp.cluster import Cluster
from pylamp.config import loads_topology

TOPOLOGY = """\
dns.ns1 = { host = "127.0.1.1", port = 0 }
dns.ns2 = { host = "127.0.1.2", port = 0, role = "secondary", primary = "ns1" }
zones."foo.com" = { file = "ZONE_FILE" }
"""
ZONE = """\
$ORIGIN foo.com.
@    IN SOA ns1 hostmaster ( 1 10800 3600 86400 300 )
@    IN NS  ns1
ns1  IN A   127.0.1.1
www  IN A   127.0.2.1
www  IN A   127.0.2.2
"""


async def www(cluster: Cluster, name: str) -> list[str]:
    """Ask server ``name`` for www.foo.com until it answers (deadline 10 s)."""
    host, port = cluster.address(name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        query = DNSRecord.question("www.foo.com", "A")
        try:
            reply = DNSRecord.parse(await asyncio.to_thread(query.send, host, port, timeout=1))
            if reply.rr:
                return sorted(str(rr.rdata) for rr in reply.rr)
        except TimeoutError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{name} never answered")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        zone_file = Path(tmp, "foo.com.zone")
        zone_file.write_text(ZONE)
        topology = loads_topology(TOPOLOGY.replace("ZONE_FILE", str(zone_file)))
        async with Cluster(topology, Path(tmp, "data"), output=lambda name, line: None) as c:
            for name in ("ns1", "ns2"):
                print(f"{name} at {c.address(name)} answers www.foo.com: {await www(c, name)}")
            await c.kill("ns1")
            print(f"ns1 killed, running: {c.running('ns1')}")
            print(f"ns2 still answers www.foo.com: {await www(c, 'ns2')}")
    print("cluster stopped")


if __name__ == "__main__":
    asyncio.run(main())
