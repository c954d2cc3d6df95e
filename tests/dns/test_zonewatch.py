"""Zone-file watching: reload on a higher serial, keep the old zone otherwise."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from pylamp.dns.answer import Answerer
from pylamp.dns.server import DnsServer
from pylamp.dns.zone import Zone, load_zone
from pylamp.dns.zonewatch import ZoneWatcher, decide

BASE = """\
$ORIGIN foo.com.
$TTL 300
@    IN SOA ns1 hostmaster ( {serial} 3600 600 86400 300 )
@    IN NS  ns1
ns1  IN A   127.0.1.1
www  IN A   127.0.2.1
{extra}
"""


def _text(serial: int, extra: str = "") -> str:
    return BASE.format(serial=serial, extra=extra)


def _zone(serial: int, extra: str = "") -> Zone:
    return load_zone(_text(serial, extra))


@pytest.mark.parametrize(
    ("old", "new", "decision"),
    [
        (None, (5, ""), "load"),
        ((5, ""), (6, ""), "load"),
        ((0xFFFFFFFF, ""), (3, ""), "load"),  # RFC 1982 wrap
        ((5, ""), (5, ""), "unchanged"),
        ((5, ""), (5, "new IN A 1.2.3.4"), "same-serial"),
        ((6, ""), (5, "new IN A 1.2.3.4"), "older-serial"),
        ((3, ""), (0xFFFFFFFF, ""), "older-serial"),
    ],
)
def test_decide(old: tuple[int, str] | None, new: tuple[int, str], decision: str) -> None:
    assert decide(_zone(*old) if old else None, _zone(*new)) == decision


@pytest.fixture
def watched(tmp_path: Path) -> tuple[Answerer, ZoneWatcher, Path, list[Zone]]:
    path = tmp_path / "foo.com.zone"
    path.write_text(_text(10))
    answerer = Answerer([load_zone(path.read_text())])
    loaded: list[Zone] = []
    watcher = ZoneWatcher(answerer, {"foo.com.": path}, on_load=loaded.append)
    return answerer, watcher, path, loaded


def _served(answerer: Answerer) -> Zone:
    zone = answerer.zone("foo.com.")
    assert zone is not None
    return zone


def test_check_loads_a_higher_serial(watched: tuple[Answerer, ZoneWatcher, Path, list[Zone]]):
    answerer, watcher, path, loaded = watched
    path.write_text(_text(11, "new IN A 127.0.9.9"))
    [outcome] = watcher.check()
    assert outcome.decision == "load"
    assert _served(answerer).serial == 11
    assert [z.serial for z in loaded] == [11]


def test_check_keeps_old_zone_when_serial_not_raised(
    watched: tuple[Answerer, ZoneWatcher, Path, list[Zone]], caplog: pytest.LogCaptureFixture
) -> None:
    answerer, watcher, path, loaded = watched
    caplog.set_level(logging.WARNING, "pylamp.dns.zonewatch")
    path.write_text(_text(10, "new IN A 127.0.9.9"))
    assert watcher.check()[0].decision == "same-serial"
    assert "serial 10 is the same as the served 10" in caplog.text
    path.write_text(_text(9, "new IN A 127.0.9.9"))
    assert watcher.check()[0].decision == "older-serial"
    assert _served(answerer).get("new.foo.com.", 1) == ()
    assert loaded == []


def test_check_keeps_old_zone_on_a_bad_or_missing_file(
    watched: tuple[Answerer, ZoneWatcher, Path, list[Zone]], caplog: pytest.LogCaptureFixture
) -> None:
    answerer, watcher, path, loaded = watched
    path.write_text(_text(12, "bad IN A 300.1.1.1"))
    [outcome] = watcher.check()
    assert outcome.decision == "error"
    assert f"{path}:7" in outcome.error
    assert "bad IPv4 address" in caplog.text
    path.unlink()
    assert watcher.check()[0].decision == "error"
    path.write_bytes(b"\xff\xfe bad")
    assert watcher.check()[0].decision == "error"
    assert _served(answerer).serial == 10
    assert loaded == []
    path.write_text(_text(12))
    assert watcher.check()[0].decision == "load"


async def _until_serial(server: DnsServer, serial: int, deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while True:
        reply = await dns.asyncquery.udp(
            dns.message.make_query("foo.com.", "SOA"), server.host, port=server.port, timeout=3
        )
        if reply.answer and reply.answer[0][0].serial == serial:
            return
        if time.monotonic() > end:
            pytest.fail(f"serial {serial} not served in time")
        await asyncio.sleep(0.05)


async def test_watchdog_reloads_edits_in_place_and_survives_a_bad_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "pylamp.dns.zonewatch")
    path = tmp_path / "foo.com.zone"
    path.write_text(_text(10))
    async with DnsServer(zones=[path], watch=True) as server:
        path.write_text(_text(11, "new IN A 127.0.9.9"))  # rewritten in place
        await _until_serial(server, 11)
        path.write_text(_text(12, "broken IN A"))  # a bad edit: the old zone stays
        end = time.monotonic() + 15
        while "not reloaded" not in caplog.text:
            assert time.monotonic() < end, "the bad edit was never seen"
            await asyncio.sleep(0.05)
        await _until_serial(server, 11)
        path.write_text(_text(13))
        await _until_serial(server, 13)
        reply = await dns.asyncquery.udp(
            dns.message.make_query("new.foo.com.", "A"), server.host, port=server.port, timeout=3
        )
        assert reply.rcode() == dns.rcode.NXDOMAIN


async def test_without_watch_edits_wait_for_reload(tmp_path: Path) -> None:
    path = tmp_path / "foo.com.zone"
    path.write_text(_text(10))
    async with DnsServer(zones=[path]) as server:
        assert server.roles.watcher is None
        path.write_text(_text(11))
        assert server.reload() == []
        await _until_serial(server, 11)
