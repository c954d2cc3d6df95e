"""A pytest plugin for test suites that need pylamp servers: fixtures that start them on port 0.

Enable it with ``pytest -p pylamp.testing``, or in the root ``conftest.py`` of a suite::

    pytest_plugins = ["pylamp.testing"]

Each fixture is a factory: call it (``await``) as often as the test needs, and get back a
started server that listens on a free port of 127.0.0.1 (unless told otherwise) and keeps its
state in a new folder of pytest's temp dir (beside the test's ``tmp_path``, not in it). Every
server a factory started is stopped when the test ends, last started first, whether the test
passed or not::

    async def test_www_answers(pylamp_dns):
        server = await pylamp_dns(ZONE_TEXT)  # a DnsServer, started
        reply = await dns.asyncquery.udp(query, server.host, port=server.port)

- ``pylamp_dns(*zones, **options)`` -> :class:`pylamp.dns.server.DnsServer`
- ``pylamp_sql(**options)`` -> :class:`pylamp.db.SqlServer` (``data_dir`` defaults to a new
  folder)
- ``pylamp_sync_receiver(root=None, **options)`` -> :class:`pylamp.sync.SyncReceiver`
  (``key`` defaults to ``pylamp_sync_receiver.key``, which the test passes to ``push``)
- ``pylamp_cluster(topology, **options)`` -> :class:`pylamp.cluster.Cluster`, every server
  of the topology in its own process

This module imports pytest and pytest-asyncio, which are test dependencies of pylamp, not
runtime ones: install them (``pip install pylamp[test]``) before enabling the plugin. The
fixtures are declared with ``pytest_asyncio.fixture``, so they work in pytest-asyncio's strict
mode as well as in auto mode; tests using them are ``async def`` (marked
``@pytest.mark.asyncio`` in strict mode).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from pylamp.cluster import Cluster
    from pylamp.config import Topology
    from pylamp.db import SqlServer
    from pylamp.dns.server import DnsServer, ZoneSource
    from pylamp.sync import SyncReceiver

__all__ = [
    "ClusterFactory",
    "DnsFactory",
    "SqlFactory",
    "SyncReceiverFactory",
    "pylamp_cluster",
    "pylamp_dns",
    "pylamp_sql",
    "pylamp_sync_receiver",
]


class _Factory:
    """Starts servers into one exit stack, so that teardown stops them all in reverse order.

    Server modules are imported on first use, so that a suite using only DNS does not load
    the SQL engine (sqlglot) or the sync code (numpy).

    ``folder`` makes a new folder for a server's state in pytest's temp dir, beside the test's
    ``tmp_path`` rather than in it, so a test can push or scan its own ``tmp_path`` whole.
    """

    def __init__(
        self, stack: contextlib.AsyncExitStack, temp: pytest.TempPathFactory, prefix: str
    ) -> None:
        self._stack = stack
        self._temp = temp
        self._prefix = prefix

    def folder(self) -> Path:
        return self._temp.mktemp(self._prefix)


class DnsFactory(_Factory):
    """``await pylamp_dns(*zones, **options)``: a started DnsServer for the zones (text with a
    newline, file paths or parsed zones); ``options`` are DnsServer's (host, secondaries,
    primary, ...). A secondary's ``data_dir`` defaults to a new folder."""

    async def __call__(self, *zones: ZoneSource, **options: Any) -> DnsServer:
        from pylamp.dns.server import DnsServer

        if options.get("primary") is not None:
            options.setdefault("data_dir", self.folder())
        return await self._stack.enter_async_context(DnsServer(zones=zones, **options))


class SqlFactory(_Factory):
    """``await pylamp_sql(**options)``: a started SqlServer on a free port; ``options`` are
    SqlServer's (log_bin, root_password, read_only, ...), ``data_dir`` a new folder unless
    given (give the same one again to restart a server over its old data)."""

    async def __call__(self, **options: Any) -> SqlServer:
        from pylamp.db import SqlServer

        data_dir = options.pop("data_dir", None) or self.folder()
        return await self._stack.enter_async_context(SqlServer(data_dir, **options))


class SyncReceiverFactory(_Factory):
    """``await pylamp_sync_receiver(root=None, **options)``: a started SyncReceiver on a free
    port, its root a new folder unless given. It accepts pushes signed with :attr:`key` (a
    random key per test) unless ``key=`` is given."""

    def __init__(
        self, stack: contextlib.AsyncExitStack, temp: pytest.TempPathFactory, prefix: str
    ) -> None:
        super().__init__(stack, temp, prefix)
        #: The shared secret the receivers expect: ``push(src, [rx.address], key=factory.key)``.
        self.key = secrets.token_bytes(32)

    async def __call__(self, root: str | Path | None = None, **options: Any) -> SyncReceiver:
        from pylamp.sync import SyncReceiver

        options.setdefault("key", self.key)
        receiver = SyncReceiver(root if root is not None else self.folder(), **options)
        return await self._stack.enter_async_context(receiver)


class ClusterFactory(_Factory):
    """``await pylamp_cluster(topology, **options)``: a started Cluster, each server in its own
    process, state in a new folder; ``options`` are Cluster's (``only``, ``output``, ...).
    Give the topology's ports as 0 so the servers take free ports (``cluster.address(name)``
    says which)."""

    async def __call__(self, topology: Topology, **options: Any) -> Cluster:
        from pylamp.cluster import Cluster

        data_dir = options.pop("data_dir", None) or self.folder()
        return await self._stack.enter_async_context(Cluster(topology, data_dir, **options))


@pytest_asyncio.fixture
async def pylamp_dns(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DnsFactory]:
    """Factory of started DnsServers (see :class:`DnsFactory`), all stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:
        yield DnsFactory(stack, tmp_path_factory, "pylamp-dns")


@pytest_asyncio.fixture
async def pylamp_sql(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SqlFactory]:
    """Factory of started SqlServers (see :class:`SqlFactory`), all stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:
        yield SqlFactory(stack, tmp_path_factory, "pylamp-sql")


@pytest_asyncio.fixture
async def pylamp_sync_receiver(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SyncReceiverFactory]:
    """Factory of started SyncReceivers (see :class:`SyncReceiverFactory`), all stopped at
    teardown."""
    async with contextlib.AsyncExitStack() as stack:
        yield SyncReceiverFactory(stack, tmp_path_factory, "pylamp-sync")


@pytest_asyncio.fixture
async def pylamp_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClusterFactory]:
    """Factory of started Clusters (see :class:`ClusterFactory`), all stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:
        yield ClusterFactory(stack, tmp_path_factory, "pylamp-cluster")
