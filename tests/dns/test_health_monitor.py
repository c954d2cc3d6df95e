"""Health-aware answers end to end: real aiohttp web servers on 127.0.0.x, a real DnsServer,
dnspython queries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest
from aiohttp import web
from dns_polling import until

from pylamp.dns.health import HealthConfig, HealthTarget
from pylamp.dns.server import DnsServer

WEB = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
ZONE = """\
$ORIGIN foo.com.
$TTL 60
@    IN SOA ns1 hostmaster ( 1 3600 600 86400 60 )
@    IN NS  ns1
ns1  IN A   127.0.1.1
""" + "".join(f"www IN A {address}\n" for address in WEB)


@dataclass
class WebServer:
    """A web server whose answer the test sets: status, load (header or JSON), or a stall."""

    address: str
    status: int = 200
    load: float | None = None
    load_in_header: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    stall: bool = False
    hits: int = 0
    port: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.stall:
            await self.release.wait()
        headers = {}
        body = b"{}"
        if self.load is not None:
            if self.load_in_header:
                headers["X-Load"] = str(self.load)
            else:
                body = json.dumps({"load": self.load}).encode()
        return web.Response(
            status=self.status, body=body, headers=headers, content_type="application/json"
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/server-status", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.address, self.port).start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            self.release.set()
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def webs() -> AsyncIterator[list[WebServer]]:
    servers = [WebServer(address) for address in WEB]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


def _config(webs: list[WebServer], **options: object) -> HealthConfig:
    settings: dict[str, object] = {"interval": 3600.0, "timeout": 5.0, "fall": 1, "rise": 1}
    settings.update(options)
    targets = tuple(HealthTarget(w.address, w.port) for w in webs)
    return HealthConfig("www.foo.com.", targets, **settings)  # type: ignore[arg-type]


async def _answer(server: DnsServer) -> list[str]:
    query = dns.message.make_query("www.foo.com.", "A")
    reply = await dns.asyncquery.udp(query, server.host, port=server.port, timeout=3)
    return [rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]


async def _served(server: DnsServer) -> set[str]:
    return set(await _answer(server))


async def _ready(server: DnsServer) -> None:
    assert server.roles.health is not None
    await asyncio.wait_for(server.roles.health.wait_ready(), 15)


async def test_down_addresses_leave_the_answers(webs: list[WebServer]) -> None:
    webs[1].status = 500
    async with DnsServer(zones=[ZONE], health=[_config(webs)]) as server:
        await _ready(server)
        assert await _served(server) == {WEB[0], WEB[2]}
        webs[1].status = 200
        webs[2].status = 503
        await server.check_health()
        assert await _served(server) == {WEB[0], WEB[1]}
        await webs[0].stop()  # closed: connection refused
        await server.check_health()
        assert await _served(server) == {WEB[1]}
        # Still round robin among what is live.
        webs[2].status = 200
        await server.check_health()
        firsts = {(await _answer(server))[0] for _ in range(4)}
        assert firsts == {WEB[1], WEB[2]}


async def test_all_down_gives_all(webs: list[WebServer]) -> None:
    for w in webs:
        w.status = 500
    async with DnsServer(zones=[ZONE], health=[_config(webs)]) as server:
        await _ready(server)
        assert await _served(server) == set(WEB)
        webs[0].status = 200
        await server.check_health()
        assert await _served(server) == {WEB[0]}


async def test_zone_as_written_until_the_first_round_completes(webs: list[WebServer]) -> None:
    webs[0].status = 500
    webs[2].stall = True  # its first check hangs until released
    async with DnsServer(zones=[ZONE], health=[_config(webs, timeout=60.0)]) as server:
        await until(lambda: webs[2].hits > 0 and webs[0].hits > 0, "the first checks")
        assert await _served(server) == set(WEB)
        webs[2].release.set()
        await _ready(server)
        assert await _served(server) == {WEB[1], WEB[2]}


async def test_check_timeout_counts_as_down(webs: list[WebServer]) -> None:
    webs[2].stall = True
    async with DnsServer(zones=[ZONE], health=[_config(webs, timeout=0.3)]) as server:
        await _ready(server)
        assert await _served(server) == {WEB[0], WEB[1]}


async def test_fall_and_rise_thresholds(webs: list[WebServer]) -> None:
    async with DnsServer(zones=[ZONE], health=[_config(webs, fall=2, rise=3)]) as server:
        await _ready(server)
        assert await _served(server) == set(WEB)
        webs[0].status = 500
        await server.check_health()
        assert await _served(server) == set(WEB)  # one failure: still up
        await server.check_health()
        assert await _served(server) == {WEB[1], WEB[2]}  # two: down
        webs[0].status = 200
        for _ in range(2):
            await server.check_health()
            assert await _served(server) == {WEB[1], WEB[2]}
        await server.check_health()
        assert await _served(server) == set(WEB)  # three passes: up again


async def test_least_loaded_order(webs: list[WebServer]) -> None:
    webs[0].load, webs[0].load_in_header = 0.9, True
    webs[1].load = 0.1
    webs[2].load = 0.5
    config = _config(webs, order="least-loaded")
    async with DnsServer(zones=[ZONE], health=[config]) as server:
        await _ready(server)
        for _ in range(3):  # the same order every time: no rotation
            assert await _answer(server) == [WEB[1], WEB[2], WEB[0]]
        webs[1].status = 500
        webs[0].load = 0.2
        await server.check_health()
        assert await _answer(server) == [WEB[0], WEB[2]]


async def test_tcp_connect_checks(webs: list[WebServer]) -> None:
    await webs[1].stop()
    config = _config(webs, kind="tcp")
    async with DnsServer(zones=[ZONE], health=[config]) as server:
        await _ready(server)
        assert await _served(server) == {WEB[0], WEB[2]}
        assert webs[0].hits == 0  # a TCP check sends no request


async def test_the_loop_checks_every_interval(webs: list[WebServer]) -> None:
    async with DnsServer(zones=[ZONE], health=[_config(webs, interval=0.1)]) as server:
        await _ready(server)
        assert await _served(server) == set(WEB)
        webs[0].status = 500

        async def gone() -> bool:
            return await _served(server) == {WEB[1], WEB[2]}

        await until(gone, "the loop to take web1 out")
        assert server.roles.health is not None
        assert server.roles.health.rounds("www.foo.com.") > 1
