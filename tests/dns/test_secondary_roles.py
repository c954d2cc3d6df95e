"""Role options from the topology: who is primary, who transfers from whom, what is checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pylamp.config import (
    Balance,
    ConfigError,
    HealthCheck,
    default_topology,
    loads_topology,
)
from pylamp.dns.health import HealthConfig, HealthTarget
from pylamp.dns.roles import health_configs, server_options
from pylamp.dns.server import DnsServer


def test_default_topology_roles() -> None:
    topology = default_topology()
    ns1 = server_options(topology, "ns1")
    assert ns1["secondaries"] == [("127.0.1.2", 5300)]
    assert ns1["watch"] is True
    assert "primary" not in ns1
    ns2 = server_options(topology, "ns2")
    assert ns2["primary"] == ("127.0.1.1", 5300)
    assert ns2["secondary_zones"] == ["foo.com"]
    assert ns2["data_dir"] == Path("pylamp-data") / "ns2"
    assert (
        ns1["health"]
        == ns2["health"]
        == [
            HealthConfig(
                "www.foo.com.",
                tuple(HealthTarget(f"127.0.2.{i}", 8080) for i in (1, 2, 3)),
                kind="http",
                path="/server-status",
                interval=2.0,
                timeout=1.0,
                fall=3,
                rise=2,
            )
        ]
    )
    with pytest.raises(KeyError):
        server_options(topology, "web1")


def test_health_configs_follow_the_balance_entries() -> None:
    topology = default_topology()
    zone = topology.zones[0]
    balance = (
        Balance("www", ("web1", "web2"), HealthCheck(kind="tcp", fall=1), "cyclic"),
        Balance("@", ("web3",), HealthCheck(path="/up"), "least-loaded"),
        Balance("static.foo.com.", ("web1",), None),
    )
    topology = dataclasses.replace(topology, zones=(dataclasses.replace(zone, balance=balance),))
    www, apex = health_configs(topology)
    assert (www.name, www.kind, www.fall, www.addresses) == (
        "www.foo.com.",
        "tcp",
        1,
        ("127.0.2.1", "127.0.2.2"),
    )
    assert (apex.name, apex.path, apex.order) == ("foo.com.", "/up", "least-loaded")


def test_unusable_balance_is_a_config_error() -> None:
    text = """
[dns.ns1]
host = "127.0.0.1"
[web.web1]
host = "127.0.0.2"
[zones."foo.com".balance.www]
servers = ["web1"]
check = "tcp"
order = "least-loaded"
"""
    with pytest.raises(ConfigError, match="least-loaded"):  # from the loader or from us
        server_options(loads_topology(text), "ns1", source="cluster.toml")


def test_secondary_needs_zones_and_data_dir() -> None:
    with pytest.raises(ValueError, match="data directory"):
        DnsServer(primary=("127.0.0.1", 53), secondary_zones=["foo.com"])
    with pytest.raises(ValueError, match="names of its zones"):
        DnsServer(primary=("127.0.0.1", 53), data_dir="x")
    with pytest.raises(ValueError, match="primary"):
        DnsServer(secondary_zones=["foo.com"], data_dir="x")
