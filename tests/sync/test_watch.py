"""SyncWatcher: debouncing rules (pure), and pushes on change to real receivers on port 0."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pylamp.sync.receiver import SyncReceiver
from pylamp.sync.watch import MAX_SCOPE, Debouncer, PushRound, SyncWatcher, format_round

KEY = b"watch-test-key-0123456789abcdef!"


async def _eventually(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll until ``predicate()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.005)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Debouncer (pure, time passed in)


def test_burst_is_coalesced_until_quiet() -> None:
    d = Debouncer(debounce=0.2, max_wait=5.0)
    assert d.deadline() is None and d.take(100.0) == []
    d.add("a.html", 10.0)
    d.add("b.html", 10.1)
    d.add("a.html", 10.15)
    assert d.deadline() == pytest.approx(10.35)
    assert d.take(10.3) == []  # still within the burst
    assert d.pending == 2
    assert d.take(10.35) == ["a.html", "b.html"]
    assert d.pending == 0 and d.deadline() is None


def test_max_wait_bounds_continuous_change() -> None:
    d = Debouncer(debounce=0.2, max_wait=1.0)
    t = 0.0
    while t < 0.95:
        d.add("busy.log", t)
        assert d.take(t) == []
        t += 0.1
    d.add("busy.log", 1.0)
    assert d.take(1.0) == ["busy.log"]


def test_zero_debounce_is_due_at_once() -> None:
    d = Debouncer(debounce=0.0)
    d.add("x", 5.0)
    assert d.take(5.0) == ["x"]


def test_paths_inside_pending_directories_are_dropped() -> None:
    d = Debouncer(debounce=0.0)
    for p in ("img/a.png", "img", "img2/b.png", "css/site.css", "img/sub/c.png"):
        d.add(p, 1.0)
    assert d.take(1.0) == ["css/site.css", "img", "img2/b.png"]
    d.add("x/y", 2.0)
    d.add(".", 2.0)
    assert d.take(2.0) == ["."]
    # "a/b.txt" sorts between "a/b" and "a/b/c": still folded by ancestry, not by order.
    for p in ("a/b/c", "a/b.txt", "a/b", "a/b-c/d"):
        d.add(p, 3.0)
    assert d.take(3.0) == ["a/b", "a/b-c/d", "a/b.txt"]


def test_negative_times_are_refused() -> None:
    with pytest.raises(ValueError):
        Debouncer(debounce=-1)


def test_watcher_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="receiver"):
        SyncWatcher(tmp_path, [], key=KEY)
    with pytest.raises(ValueError, match="interval"):
        SyncWatcher(tmp_path, ["127.0.0.1:1"], key=KEY, interval=0)


# ---------------------------------------------------------------------------------------------
# Watcher against real receivers


async def test_pushes_at_start_and_on_change(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "img").mkdir(parents=True)
    (src / "index.html").write_bytes(b"v1")
    (src / "img" / "logo.png").write_bytes(b"\x89PNG" * 1000)
    rounds: list[PushRound] = []
    async with (
        SyncReceiver(tmp_path / "web2", key=KEY) as r2,
        SyncReceiver(tmp_path / "web3", key=KEY) as r3,
    ):
        addrs = [r2.address, r3.address]
        async with SyncWatcher(src, addrs, key=KEY, debounce=0.02, on_push=rounds.append) as w:
            # The start pushes everything before returning.
            assert rounds and rounds[0].paths is None and rounds[0].ok
            for web in ("web2", "web3"):
                assert (tmp_path / web / "img" / "logo.png").read_bytes() == b"\x89PNG" * 1000

            (src / "index.html").write_bytes(b"v2 with more text")
            (src / "new").mkdir()
            (src / "new" / "page.html").write_bytes(b"fresh")
            (src / "img" / "logo.png").unlink()
            for web in ("web2", "web3"):
                root = tmp_path / web
                await _eventually(lambda r=root: _read(r / "index.html") == b"v2 with more text")
                await _eventually(lambda r=root: _read(r / "new" / "page.html") == b"fresh")
                await _eventually(lambda r=root: not (r / "img" / "logo.png").exists())

            os.rename(src / "new", src / "moved")
            for web in ("web2", "web3"):
                root = tmp_path / web
                await _eventually(lambda r=root: _read(r / "moved" / "page.html") == b"fresh")
                await _eventually(lambda r=root: not (r / "new").exists())
            assert w.rounds >= 2
            # Event-driven rounds push paths, not the whole tree, over the kept connections.
            assert any(r.paths is not None for r in rounds[1:])
            assert all(r.ok for r in rounds)
            assert "receiver(s)" in format_round(rounds[-1])


async def test_receiver_down_fails_alone_and_catches_up(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    port = _free_port()
    rounds: list[PushRound] = []
    async with SyncReceiver(tmp_path / "up", key=KEY) as up:
        addrs = [up.address, ("127.0.0.1", port)]
        async with SyncWatcher(src, addrs, key=KEY, debounce=0, on_push=rounds.append) as w:
            first = rounds[0]
            assert first.stats[0].ok
            assert first.stats[1].error is not None
            assert "ERROR" in format_round(first)
            assert (tmp_path / "up" / "a.txt").read_bytes() == b"a"

            # The missing receiver comes up: the next round pushes it everything.
            async with SyncReceiver(tmp_path / "late", port=port, key=KEY):
                (src / "b.txt").write_bytes(b"b")
                await _eventually(lambda: _read(tmp_path / "late" / "b.txt") == b"b")
                await _eventually(lambda: _read(tmp_path / "late" / "a.txt") == b"a")
                await _eventually(lambda: _read(tmp_path / "up" / "b.txt") == b"b")
                await _eventually(lambda: w.rounds >= 2)  # files land before the round ends
                assert rounds[-1].ok


async def test_periodic_full_scan_catches_what_events_miss(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    # No observer: only the interval's full scan can bring the file over.
    async with (
        SyncReceiver(tmp_path / "dst", key=KEY) as r,
        SyncWatcher(src, [r.address], key=KEY, interval=0.05, watch=False) as w,
    ):
        (src / "late.html").write_bytes(b"found by the scan")
        await _eventually(lambda: _read(tmp_path / "dst" / "late.html") == b"found by the scan")
        assert w.last_round is not None and w.last_round.paths is None


async def test_sync_once_and_notify_without_observer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    async with (
        SyncReceiver(tmp_path / "dst", key=KEY) as r,
        SyncWatcher(src, [r.address], key=KEY, debounce=0, watch=False) as w,
    ):
        (src / "one.txt").write_bytes(b"1")
        rnd = await w.sync_once(["one.txt"])
        assert rnd.paths == ("one.txt",) and rnd.ok
        assert rnd.stats[0].files_sent == 1
        assert (tmp_path / "dst" / "one.txt").read_bytes() == b"1"
        (src / "one.txt").unlink()
        w.notify("one.txt")
        await _eventually(lambda: not (tmp_path / "dst" / "one.txt").exists())
        assert w.pending == 0


async def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="not a directory"):
        async with SyncWatcher(tmp_path / "nope", ["127.0.0.1:1"], key=KEY):
            pass


async def test_excluded_paths_do_not_trigger_pushes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    async with (
        SyncReceiver(tmp_path / "dst", key=KEY) as r,
        SyncWatcher(
            src, [r.address], key=KEY, debounce=100, watch=False, excludes=["*.tmp", "cache/"]
        ) as w,
    ):
        w.notify("edit.tmp")
        w.notify("cache", is_dir=True)
        w.notify("cache/sub/page.html")
        assert w.pending == 0
        w.notify("cache.html")  # only the directory named cache is excluded
        w.notify("page.html")
        assert w.pending == 2


async def test_a_failing_callback_does_not_stop_the_loop(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    calls: list[PushRound] = []

    def on_push(rnd: PushRound) -> None:
        calls.append(rnd)
        if len(calls) == 2:
            raise RuntimeError("callback bug")

    async with (
        SyncReceiver(tmp_path / "dst", key=KEY) as r,
        SyncWatcher(src, [r.address], key=KEY, debounce=0, watch=False, on_push=on_push) as w,
    ):
        (src / "one.txt").write_bytes(b"1")
        w.notify("one.txt")
        await _eventually(lambda: len(calls) >= 2)
        (src / "two.txt").write_bytes(b"2")
        w.notify("two.txt")
        await _eventually(lambda: _read(tmp_path / "dst" / "two.txt") == b"2")


async def test_receiver_restart_is_reconnected_within_the_round(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    rounds: list[PushRound] = []
    rx = SyncReceiver(tmp_path / "dst", key=KEY)
    await rx.start()
    port = rx.address[1]
    try:
        async with SyncWatcher(
            src, [rx.address], key=KEY, debounce=0, watch=False, on_push=rounds.append
        ) as w:
            await rx.close()  # the kept connection dies with it
            rx = SyncReceiver(tmp_path / "dst", port=port, key=KEY)
            await rx.start()
            (src / "b.txt").write_bytes(b"b")
            rnd = await w.sync_once(["b.txt"])
            assert rnd.ok, rnd.stats
            assert _read(tmp_path / "dst" / "b.txt") == b"b"
    finally:
        await rx.close()


async def test_very_many_paths_become_one_full_push(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    names = [f"f{i:03d}.txt" for i in range(MAX_SCOPE + 1)]
    async with (
        SyncReceiver(tmp_path / "dst", key=KEY) as r,
        SyncWatcher(src, [r.address], key=KEY, watch=False) as w,
    ):
        for name in names:
            (src / name).write_text(name)
        few = await w.sync_once(names[:3])
        assert few.paths == tuple(names[:3]) and few.stats[0].files_sent == 3
        many = await w.sync_once(names)
        assert many.paths is None and many.ok
        assert many.stats[0].files_sent == len(names) - 3
        assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == names


@pytest.mark.parametrize("whole_file", [False, True])
async def test_whole_file_option_reaches_the_push(tmp_path: Path, whole_file: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray(random.Random(7).randbytes(100_000))
    (src / "big.bin").write_bytes(data)
    async with (
        SyncReceiver(tmp_path / "dst", key=KEY) as r,
        SyncWatcher(src, [r.address], key=KEY, watch=False, whole_file=whole_file) as w,
    ):
        data[50_000] ^= 0xFF
        (src / "big.bin").write_bytes(data)
        os.utime(src / "big.bin", ns=(1, 1))  # a new mtime, for the quick check
        rnd = await w.sync_once(["big.bin"])
        assert rnd.ok and (tmp_path / "dst" / "big.bin").read_bytes() == data
        if whole_file:
            assert rnd.stats[0].matched_bytes == 0
        else:
            assert rnd.stats[0].literal_bytes < 2_000 < rnd.stats[0].matched_bytes
