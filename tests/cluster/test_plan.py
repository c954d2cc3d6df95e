"""Which processes a topology needs, and what the supervisor prints about them."""

from __future__ import annotations

import sys

from pylamp.cluster.plan import describe, plan
from pylamp.config import default_topology


def _all_built(kind: str, role: str) -> str | None:
    return None


def test_every_server_gets_its_own_process_in_start_order() -> None:
    planned = plan(default_topology(), "/etc/pylamp.toml", built=_all_built)
    assert [p.name for p in planned] == ["db1", "db2", "web1", "web2", "web3", "ns1", "ns2"]
    ns2 = planned[-1]
    assert ns2.command == (
        sys.executable,
        "-m",
        "pylamp.dns",
        "--config",
        "/etc/pylamp.toml",
        "--name",
        "ns2",
        "--log-level",
        "INFO",
    )
    assert (ns2.kind, ns2.role, ns2.host, ns2.port) == ("dns", "secondary", "127.0.1.2", 5300)


def test_servers_not_built_are_reported_not_started() -> None:
    def dns_only(kind: str, role: str) -> str | None:
        return None if kind == "dns" else f"pylamp.{kind} is not built yet"

    planned = plan(default_topology(), "c.toml", built=dns_only)
    started = [p.name for p in planned if p.command]
    assert started == ["ns1", "ns2"]
    table = describe(planned, default_topology())
    assert "web2" in table and "not started: pylamp.web is not built yet" in table
    assert "dig @127.0.1.1 -p 5300 www.foo.com +norec" in table
    assert "dig @127.0.1.2 -p 5300 www.foo.com +norec" in table
    assert "mysql" not in table


def test_only_limits_the_plan() -> None:
    planned = plan(default_topology(), "c.toml", built=_all_built, only=["db1", "ns1"])
    assert [p.name for p in planned] == ["db1", "ns1"]
