"""The topology file: the default cluster, loading, dumping and refusing bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylamp.config import (
    ConfigError,
    DnsServerConfig,
    default_topology,
    dump_topology,
    ensure_zone_file,
    load_topology,
    loads_topology,
    zone_text,
)


def test_default_is_the_articles_foo_com_cluster() -> None:
    t = default_topology()
    assert [s.name for s in t.dns] == ["ns1", "ns2"]
    assert [s.name for s in t.web] == ["web1", "web2", "web3"]
    assert [s.name for s in t.db] == ["db1", "db2"]
    assert t.server("ns2") == DnsServerConfig("ns2", "127.0.1.2", 5300, "secondary", primary="ns1")
    assert [s.name for s in t.secondaries_of("ns1")] == ["ns2"]
    assert [s.name for s in t.replicas_of("db1")] == ["db2"]
    assert t.web_primary() is not None and t.web_primary().name == "web1"  # type: ignore[union-attr]
    assert [w.database for w in t.web] == ["db1", "db2", "db2"]
    assert t.db_master() is not None and t.db_master().server_id == 1  # type: ignore[union-attr]
    assert t.zones[0].balance[0].servers == ("web1", "web2", "web3")


def test_dump_loads_back_unchanged(tmp_path: Path) -> None:
    t = default_topology()
    path = tmp_path / "cluster.toml"
    path.write_text(dump_topology(t))
    assert load_topology(path) == t
    assert dump_topology(load_topology(path)) == dump_topology(t)


def test_unknown_server_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="servers: db1, db2, web1"):
        default_topology().server("web9")


def _refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads_topology(text, source="bad.toml")
    return info.value


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[dns.ns1]\nhost = '127.0.0.1'\nport = 'fifty'\n", "dns.ns1.port", "expected an integer"),
        ("[dns.ns1]\nhost = '127.0.0.1'\nport = 70000\n", "dns.ns1.port", "0-65535"),
        ("[dns.ns1]\nport = 53\n", "dns.ns1.host", "missing"),
        ("[dns.ns1]\nhost = '127.0.0.1'\nrole = 'tertiary'\n", "dns.ns1.role", "one of"),
        ("[dns.ns1]\nhost = '127.0.0.1'\ncolour = 'red'\n", "dns.ns1.colour", "unknown key"),
        (
            "[dns.ns2]\nhost = '127.0.0.1'\nrole = 'secondary'\nprimary = 'ns9'\n",
            "dns.ns2.primary",
            "no primary name server 'ns9'",
        ),
        (
            "[db.a]\nhost = '127.0.0.1'\nport = 1\n[db.b]\nhost = '127.0.0.1'\nport = 2\n",
            "db.b.server_id",
            "also a's",
        ),
        (
            "[web.w]\nhost = '127.0.0.1'\ndatabase = 'db9'\n",
            "web.w.database",
            "no SQL server 'db9'",
        ),
        (
            "[web.w]\nhost = '127.0.0.1'\n[db.w]\nhost = '127.0.0.2'\n",
            "web.w",
            "name already used",
        ),
        (
            "[dns.a]\nhost = '127.0.0.1'\n[dns.b]\nhost = '127.0.0.1'\n",
            "dns.b.port",
            "already used by a",
        ),
        (
            "[zones.'foo.com'.balance.www]\nservers = ['web7']\n",
            'zones."foo.com".balance.www.servers',
            "no web server 'web7'",
        ),
        (
            "[web.w]\nhost = '127.0.0.1'\n[zones.'foo.com'.balance.www]\n"
            "servers = ['w']\nfall = 0\n",
            'zones."foo.com".balance.www.fall',
            "at least 1",
        ),
        (
            "[web.w]\nhost = '127.0.0.1'\n[zones.'foo.com'.balance.www]\n"
            "servers = ['w']\ncheck = 'ping'\n",
            'zones."foo.com".balance.www.check',
            "one of 'http', 'tcp'",
        ),
        ("[cluster]\nsync_interval = 'often'\n", "cluster.sync_interval", "expected a number"),
        ("dns = 3\n", "dns", "expected a table"),
        ("[nameservers.ns1]\n", "nameservers", "unknown key"),
    ],
)
def test_bad_topology_names_file_key_and_problem(text: str, key: str, problem: str) -> None:
    err = _refused(text)
    assert err.source == "bad.toml"
    assert err.key == key
    assert problem in err.problem
    assert str(err).startswith(f"bad.toml: {key}: ")


def test_invalid_toml_and_missing_file_are_refused(tmp_path: Path) -> None:
    assert "not valid TOML" in str(_refused("[dns.ns1\n"))
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_topology(tmp_path / "missing.toml")


def test_health_check_can_be_turned_off_or_tcp() -> None:
    text = (
        "[web.w]\nhost = '127.0.0.1'\n"
        "[zones.'example.org'.balance.www]\nservers = ['w']\ncheck = 'none'\n"
        "[zones.'example.org'.balance.app]\nservers = ['w']\ncheck = 'tcp'\ninterval = 0.5\n"
    )
    www, app = loads_topology(text).zones[0].balance
    assert www.check is None
    assert app.check is not None and app.check.kind == "tcp" and app.check.interval == 0.5
    assert loads_topology(dump_topology(loads_topology(text))) == loads_topology(text)


def test_relative_zone_file_is_relative_to_the_topology_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "cluster.toml"
    path.write_text("[zones.'foo.com']\nfile = 'zones/foo.com.zone'\n")
    assert load_topology(path).zones[0].file == str(tmp_path / "conf" / "zones/foo.com.zone")


def test_generated_zone_has_every_server_and_the_balanced_name() -> None:
    t = default_topology()
    text = zone_text(t, t.zones[0], serial=2026112501)
    assert "2026112501 ; serial" in text
    www = [line.split()[-1] for line in text.splitlines() if line.startswith("www\t")]
    assert www == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
    assert "@\tIN\tNS\tns2.foo.com." in text


def test_generated_zone_file_is_written_once_then_left_to_the_operator(tmp_path: Path) -> None:
    t = default_topology()
    path = ensure_zone_file(t, t.zones[0], tmp_path, today="20261125")
    assert path == tmp_path / "foo.com.zone"
    assert "2026112501 ; serial" in path.read_text()
    path.write_text("; edited by hand\n")
    assert ensure_zone_file(t, t.zones[0], tmp_path, today="20261126") == path
    assert path.read_text() == "; edited by hand\n"
