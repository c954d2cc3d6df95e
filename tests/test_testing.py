"""The pytest plugin as a user's suite meets it: pytester runs small test files that enable
``pylamp.testing`` the two documented ways, and we check what their fixtures left behind.

The inner files use pytest-asyncio's default (strict) mode, as a user's suite without our
``asyncio_mode = "auto"`` would.
"""

from __future__ import annotations

import importlib
import json
import socket

import pytest

pytest_plugins = ["pytester"]

# pytester's in-process runs forget the modules an inner run imported, and numpy cannot be
# imported twice in one process: so what the inner tests use is loaded once, here.
for _module in (
    "dns.asyncquery",
    "hypothesis",  # its pytest plugin imports it at the end of every inner run
    "pymysql",
    "pylamp.cluster",
    "pylamp.config",
    "pylamp.db.server",
    "pylamp.sync.receiver",
    "pylamp.sync.sender",
    "pylamp.testing",
):
    importlib.import_module(_module)

ZONE = """\
$ORIGIN example.com.
@    IN SOA ns1 hostmaster ( 1 3600 600 86400 300 )
@    IN NS  ns1
ns1  IN A   127.0.0.1
www  IN A   192.0.2.1
www  IN A   192.0.2.2
"""


def _closed(host: str, port: int) -> bool:
    """True when nothing listens on TCP host:port any more."""
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def _udp_free(host: str, port: int) -> bool:
    """True when UDP host:port can be bound again (the server's socket is gone)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# Prepended to every inner test file: ``record(name=[host, port])`` notes a server it was given.
PRELUDE = f"""
import json, pathlib
ZONE = {ZONE!r}

def record(**values):
    path = pathlib.Path(__file__).parent / "seen.json"
    seen = json.loads(path.read_text()) if path.exists() else {{}}
    seen.update(values)
    path.write_text(json.dumps(seen))
"""


def _run_user_tests(
    pytester: pytest.Pytester, source: str, *args: str, **outcomes: int
) -> dict[str, tuple[str, int]]:
    """Run ``source`` as a user's test file with pytest ``args``, check the outcomes, and
    return what its tests recorded: the (host, port) of each server by name."""
    # A user's config, as pytest-asyncio asks for one (and strict mode, its default).
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user=PRELUDE + source)
    result = pytester.runpytest(*args)
    result.assert_outcomes(**outcomes)
    seen = json.loads((pytester.path / "seen.json").read_text())
    return {name: (str(host), int(port)) for name, (host, port) in seen.items()}


def test_dns_factory_with_the_command_line_flag(pytester: pytest.Pytester) -> None:
    """``-p pylamp.testing``: a primary and its secondary (whose data_dir the factory gives)
    start on free ports, answer, and are gone after the test."""
    seen = _run_user_tests(
        pytester,
        """
import pathlib, dns.asyncquery, dns.message, pytest

@pytest.mark.asyncio
async def test_primary_and_secondary(pylamp_dns, tmp_path):
    a = await pylamp_dns(ZONE, allow_transfer=["127.0.0.2"])
    b = await pylamp_dns(
        host="127.0.0.2", primary=(a.host, a.port), secondary_zones=["example.com."]
    )
    assert a.port and b.port and (a.host, b.host) == ("127.0.0.1", "127.0.0.2")
    await b.refresh()
    for server in (a, b):
        query = dns.message.make_query("www.example.com", "A")
        reply = await dns.asyncquery.udp(query, server.host, port=server.port, timeout=3)
        assert sorted(r.address for r in reply.answer[0]) == ["192.0.2.1", "192.0.2.2"]
    saved = pathlib.Path(b.roles.saved_copies["example.com."])
    assert saved.exists() and not saved.is_relative_to(tmp_path)
    record(a=[a.host, a.port], b=[b.host, b.port])
""",
        "-p",
        "pylamp.testing",
        passed=1,
    )
    assert set(seen) == {"a", "b"}
    for host, port in seen.values():
        assert _closed(host, port) and _udp_free(host, port)


def test_sql_and_sync_fixtures_from_a_conftest(pytester: pytest.Pytester) -> None:
    """``pytest_plugins`` in the root conftest: SQL with a binlog, and a push to a receiver."""
    pytester.makeconftest('pytest_plugins = ["pylamp.testing"]')
    seen = _run_user_tests(
        pytester,
        """
import asyncio, pathlib, pymysql, pytest
from pylamp.sync import push

@pytest.mark.asyncio
async def test_sql(pylamp_sql):
    db = await pylamp_sql(log_bin="db1")

    def query():
        with pymysql.connect(host=db.host, port=db.port, user="root", password="") as conn:
            with conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                return cur.fetchone()[0]

    assert await asyncio.to_thread(query) == "db1-bin.000001"
    assert (pathlib.Path(db.data_dir) / "db1-bin.000001").exists()
    record(sql=[db.host, db.port])

@pytest.mark.asyncio
async def test_sync(pylamp_sync_receiver, tmp_path):
    rx = await pylamp_sync_receiver()
    mine = tmp_path.parent / "mine"
    other = await pylamp_sync_receiver(mine, key=b"k" * 16)
    (tmp_path / "index.html").write_text("hello")
    # The receiver's root is not inside tmp_path, so the test's whole tmp_path can be pushed.
    [ok] = await push(tmp_path, [rx.address], key=pylamp_sync_receiver.key)
    assert ok.ok and sorted(p.name for p in pathlib.Path(rx.root).iterdir()) == ["index.html"]
    [refused] = await push(tmp_path, [other.address], key=pylamp_sync_receiver.key)
    assert refused.error and other.root == str(mine.resolve()) and not any(mine.iterdir())
    record(rx=list(rx.address), other=list(other.address))
""",
        passed=2,
    )
    assert set(seen) == {"sql", "rx", "other"}
    for host, port in seen.values():
        assert _closed(host, port)


def test_servers_stop_when_the_test_fails(pytester: pytest.Pytester) -> None:
    """A failing test still tears its servers down; the failure is the test's own."""
    seen = _run_user_tests(
        pytester,
        """
import pytest

@pytest.mark.asyncio
async def test_fails(pylamp_dns, pylamp_sql):
    server = await pylamp_dns(ZONE)
    db = await pylamp_sql()
    record(dns=[server.host, server.port], sql=[db.host, db.port])
    assert False, "the user's own failure"
""",
        "-p",
        "pylamp.testing",
        failed=1,
    )
    assert set(seen) == {"dns", "sql"}
    for host, port in seen.values():
        assert _closed(host, port)


def test_cluster_factory_runs_a_topology(pytester: pytest.Pytester) -> None:
    """A topology's name server runs as its own process and is stopped at teardown."""
    seen = _run_user_tests(
        pytester,
        """
import dns.asyncquery, dns.message, pytest
from pylamp.config import loads_topology

@pytest.mark.asyncio
async def test_cluster(pylamp_cluster, tmp_path):
    zone = tmp_path / "example.com.zone"
    zone.write_text(ZONE)
    topology = loads_topology(
        f'[dns.ns1]\\nhost = "127.0.0.1"\\nport = 0\\n[zones."example.com"]\\nfile = "{zone}"\\n'
    )
    cluster = await pylamp_cluster(topology)
    host, port = cluster.address("ns1")
    assert port != 0 and cluster.running("ns1")
    query = dns.message.make_query("www.example.com", "A")
    reply = await dns.asyncquery.udp(query, host, port=port, timeout=3)
    assert len(reply.answer[0]) == 2
    record(ns1=[host, port])
""",
        "-p",
        "pylamp.testing",
        passed=1,
    )
    assert set(seen) == {"ns1"}
    for host, port in seen.values():
        assert _closed(host, port) and _udp_free(host, port)
