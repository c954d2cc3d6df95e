"""Shared pieces for the DNS tests: the article's zone and a running server on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from dns_testzones import FOO_ZONE

from pylamp.dns.server import DnsServer


@pytest.fixture
def foo_zone_text() -> str:
    """The foo.com zone used across the DNS tests."""
    return FOO_ZONE


@pytest.fixture(params=[True, False], ids=["udp-batch", "udp-loop"])
async def dns_server(request: pytest.FixtureRequest) -> AsyncIterator[DnsServer]:
    """A DnsServer for foo.com on 127.0.0.1, any free port; once with UDP answered by the
    batch thread (recvmmsg/sendmmsg) and once on the event loop."""
    async with DnsServer(
        zones=[FOO_ZONE], host="127.0.0.1", port=0, udp_batch=request.param
    ) as server:
        assert server.udp_batching is request.param
        yield server
