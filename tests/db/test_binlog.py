"""Binlog files: appending, index, rotation, torn-tail recovery, purge/reset, mysqlbinlog."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.db.binlog import Binlog, BinlogError
from pylamp.db.binlog_events import (
    BINLOG_IN_USE,
    EventType,
    LoggedStatement,
    Position,
    Rotate,
    Stop,
    Xid,
)

T0 = 1_700_000_000.0


def _statements(binlog: Binlog, after: Position | None = None) -> list[tuple[str, ...]]:
    return [tuple(s.sql for s in t.statements) for t in binlog.transactions_after(after)]


def _fde_flags(path: Path) -> int:
    return path.read_bytes()[4 + 17]


def test_new_log_files_index_and_position(tmp_path: Path) -> None:
    with Binlog(tmp_path, "db1", 7) as b:
        assert b.position() == Position("db1-bin.000001", 256)
        assert b.index_path.read_text() == "./db1-bin.000001\n"
        assert _fde_flags(tmp_path / "db1-bin.000001") & BINLOG_IN_USE
        end = b.append_transaction("shop", ["INSERT INTO t VALUES (1)"], T0)
        assert end == b.position() and end.pos > 256
        assert b.files() == [("db1-bin.000001", end.pos)]
        events = [e.payload for _, e in b.read_events("db1-bin.000001")]
        assert [type(p).__name__ for p in events] == ["FormatDescription", "Query", "Query", "Xid"]
        assert all(e.header.server_id == 7 for _, e in b.read_events("db1-bin.000001"))
    data = (tmp_path / "db1-bin.000001").read_bytes()
    assert data[:4] == b"\xfebin"
    assert not _fde_flags(tmp_path / "db1-bin.000001") & BINLOG_IN_USE
    # a clean close ends the file with a STOP event
    with Binlog(tmp_path, "db1", 7) as b:
        events = [e.payload for _, e in b.read_events("db1-bin.000001")]
        assert isinstance(events[-1], Stop)
        # every open starts a new file, as MySQL does
        assert b.position() == Position("db1-bin.000002", 256)
        assert b.index_path.read_text() == "./db1-bin.000001\n./db1-bin.000002\n"


def test_transactions_after_and_ddl(tmp_path: Path) -> None:
    with Binlog(tmp_path, "m", 1) as b:
        ddl_end = b.append_transaction("a", ["CREATE TABLE t (x INT)"], T0, ddl=True)
        e1 = b.append_transaction("a", ["INSERT INTO t VALUES (1)", "UPDATE t SET x = 2"], T0 + 1)
        mixed = [LoggedStatement("a", "INSERT INTO t VALUES (3)"), LoggedStatement("b", "DO 1")]
        e2 = b.append_transaction("a", mixed, T0 + 2.5)
        txns = list(b.transactions_after(None))
        assert [t.end for t in txns] == [ddl_end, e1, e2]
        assert txns[0].xid is None and txns[1].xid is not None
        assert txns[2].statements == tuple(mixed)
        assert txns[2].timestamp == pytest.approx(T0 + 2.5)
        assert txns[1].start == ddl_end
        assert _statements(b, e1) == [("INSERT INTO t VALUES (3)", "DO 1")]
        assert _statements(b, e2) == []
        assert _statements(b, Position("m-bin.000000", 0)) == _statements(b)
        # a position that is no event boundary still works (the file is read from its start)
        assert _statements(b, Position(e1.file, e1.pos - 1)) == _statements(b, ddl_end)
        # a database ahead of the log's end has nothing to redo
        assert _statements(b, Position(e2.file, e2.pos + 1000)) == []
        with pytest.raises(ValueError):
            b.append_transaction("a", [], T0)


def test_reads_stop_at_the_last_complete_write(tmp_path: Path) -> None:
    with Binlog(tmp_path, "m", 1) as b:
        b.append_transaction("a", ["INSERT INTO t VALUES (1)"], T0)
        end = b.position()
        # bytes appended behind the log's back (a write in progress) are not read
        with open(tmp_path / end.file, "ab") as f:
            f.write(b"\x00" * 10)
        assert [p for p, _ in b.read_events(end.file)][-1] < end.pos
        assert len(list(b.transactions_after(None))) == 1
        with pytest.raises(BinlogError):
            list(b.read_events(end.file, end.pos + 1))
        with pytest.raises(BinlogError):
            list(b.read_events("m-bin.000099"))


def _write_two(tmp_path: Path) -> tuple[bytes, int, int]:
    """Two transactions in a log that is then abandoned as by kill -9: (bytes, end1, end2)."""
    src = tmp_path / "src"
    b = Binlog(src, "db", 1)
    end1 = b.append_transaction("s", ["INSERT INTO t VALUES (1)"], T0)
    end2 = b.append_transaction("s", ["INSERT INTO t VALUES (2)"], T0)
    data = (src / end1.file).read_bytes()
    b.close()
    return data, end1.pos, end2.pos


def test_torn_tail_cut_at_every_offset_of_last_transaction(tmp_path: Path) -> None:
    data, end1, end2 = _write_two(tmp_path)
    assert len(data) == end2
    for cut in range(end1, end2 + 1):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "db-bin.000001").write_bytes(data[:cut])
        (d / "db-bin.index").write_text("./db-bin.000001\n")
        with Binlog(d, "db", 1, sync=0) as b:
            expected = end2 if cut == end2 else end1
            assert (d / "db-bin.000001").stat().st_size == expected, cut
            assert b.truncated_bytes == cut - expected
            got = _statements(b)
            assert got[0] == ("INSERT INTO t VALUES (1)",)
            assert len(got) == (2 if cut == end2 else 1), cut
            assert b.position() == Position("db-bin.000002", 256)
            assert not _fde_flags(d / "db-bin.000001") & BINLOG_IN_USE
        shutil.rmtree(d)


def test_corrupt_tail_and_headerless_file(tmp_path: Path) -> None:
    data, _end1, end2 = _write_two(tmp_path)
    # a flipped byte inside the last transaction: cut back to the first one
    bad = bytearray(data)
    bad[end2 - 10] ^= 0xFF
    d = tmp_path / "flip"
    d.mkdir()
    (d / "db-bin.000001").write_bytes(bytes(bad))
    with Binlog(d, "db", 1) as b:
        assert _statements(b) == [("INSERT INTO t VALUES (1)",)]
    # a file cut inside its format description holds nothing: it is removed, numbering goes on
    d = tmp_path / "short"
    d.mkdir()
    (d / "db-bin.000001").write_bytes(data[:100])
    (d / "db-bin.index").write_text("./db-bin.000001\n")
    with Binlog(d, "db", 1) as b:
        assert b.files() == [("db-bin.000001", 256)]
        assert _statements(b) == []
    # a short file of garbage instead of a binlog: as a creation cut short
    d = tmp_path / "junk"
    d.mkdir()
    (d / "db-bin.000001").write_bytes(b"hello, this is not a binlog at all")
    with Binlog(d, "db", 1) as b:
        assert b.position() == Position("db-bin.000001", 256)
    # a long file with a broken header is someone's data: refuse to start, touch nothing
    d = tmp_path / "broken"
    d.mkdir()
    (d / "db-bin.000001").write_bytes(b"XXXX" + data[4:])
    with pytest.raises(BinlogError):
        Binlog(d, "db", 1)
    assert (d / "db-bin.000001").read_bytes() == b"XXXX" + data[4:]


def test_unindexed_newer_file_is_adopted(tmp_path: Path) -> None:
    with Binlog(tmp_path, "x", 1) as b:
        b.append_transaction("a", ["INSERT INTO t VALUES (1)"], T0)
        b.rotate()
        b.append_transaction("a", ["INSERT INTO t VALUES (2)"], T0)
    # as if the crash came between creating file 2 and rewriting the index
    (tmp_path / "x-bin.index").write_text("./x-bin.000001\n")
    with Binlog(tmp_path, "x", 1) as b:
        assert [n for n, _ in b.files()] == ["x-bin.000001", "x-bin.000002", "x-bin.000003"]
        assert len(_statements(b)) == 2


def test_rotation_at_max_size(tmp_path: Path) -> None:
    with Binlog(tmp_path, "r", 1, max_size=4096) as b:
        ends = [
            b.append_transaction("a", [f"INSERT INTO t VALUES ({i}, '{'x' * 100}')"], T0)
            for i in range(100)
        ]
        files = b.files()
        assert len(files) > 3
        names = [n for n, _ in files]
        assert names == [f"r-bin.{i:06d}" for i in range(1, len(files) + 1)]
        for (name, size), nxt in zip(files, names[1:], strict=False):
            assert size >= 4096
            last = list(b.read_events(name))[-1][1].payload
            assert last == Rotate(nxt, 4)
            # a transaction is never split: the file before the rotate ends on an XID
            assert isinstance(list(b.read_events(name))[-2][1].payload, Xid)
            assert not _fde_flags(tmp_path / name) & BINLOG_IN_USE
        got = list(b.transactions_after(None))
        assert [t.end for t in got] == ends
        assert [t.statements[0].sql for t in got] == [
            f"INSERT INTO t VALUES ({i}, '{'x' * 100}')" for i in range(100)
        ]
        # events_from crosses into later files
        start = Position(names[1], 4)
        seen_files = {p.file for p, _ in b.events_from(start)}
        assert seen_files == set(names[1:])
        assert b.index_path.read_text().splitlines() == [f"./{n}" for n in names]
    with pytest.raises(ValueError):
        Binlog(tmp_path, "r", 1, max_size=10)


def test_purge_and_reset(tmp_path: Path) -> None:
    with Binlog(tmp_path, "p", 1) as b:
        for i in range(3):
            b.append_transaction("a", [f"INSERT INTO t VALUES ({i})"], T0)
            b.rotate()
        assert len(b.files()) == 4
        with pytest.raises(BinlogError):
            b.purge_to("p-bin.000042")
        assert b.purge_to("p-bin.000003") == ["p-bin.000001", "p-bin.000002"]
        assert [n for n, _ in b.files()] == ["p-bin.000003", "p-bin.000004"]
        assert not (tmp_path / "p-bin.000001").exists()
        assert b.index_path.read_text() == "./p-bin.000003\n./p-bin.000004\n"
        assert _statements(b, Position("p-bin.000001", 300)) == [("INSERT INTO t VALUES (2)",)]
        with pytest.raises(BinlogError):
            list(b.events_from(Position("p-bin.000001", 4)))
        assert b.reset() == Position("p-bin.000001", 256)
        assert [n for n, _ in b.files()] == ["p-bin.000001"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p-bin.000001", "p-bin.index"]
        assert _statements(b) == []
        b.append_transaction("a", ["INSERT INTO t VALUES (9)"], T0)
        assert _statements(b) == [("INSERT INTO t VALUES (9)",)]
    with pytest.raises(BinlogError):
        b.append_transaction("a", ["INSERT INTO t VALUES (10)"], T0)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Binlog(tmp_path, "../evil", 1)
    with pytest.raises(ValueError):
        Binlog(tmp_path, "ok", 1, sync=-1)


def test_mysqlbinlog_reads_our_files(tmp_path: Path) -> None:
    with Binlog(tmp_path, "db1", 3) as b:
        b.append_transaction("", ["CREATE DATABASE shop"], T0, ddl=True)
        b.append_transaction("shop", ["CREATE TABLE t (id INT PRIMARY KEY, v TEXT)"], T0, ddl=True)
        b.append_transaction(
            "shop",
            ["INSERT INTO t VALUES (1, 'caf\u00e9')", "UPDATE t SET v = 'x' WHERE id = 1"],
            T0,
        )
        b.rotate()
        b.append_transaction("shop", ["DELETE FROM t WHERE id = 1"], T0 + 0.5)
    positions = [p.pos for p, _ in b.events_from(Position("db1-bin.000001", 4))]
    files = [str(tmp_path / n) for n in ("db1-bin.000001", "db1-bin.000002")]
    r = subprocess.run(
        ["mysqlbinlog", "--verify-binlog-checksum", *files],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out = r.stdout
    assert "ERROR" not in out and "Warning" not in out
    for stmt in (
        "CREATE DATABASE shop",
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
        "INSERT INTO t VALUES (1, 'caf\u00e9')",
        "UPDATE t SET v = 'x' WHERE id = 1",
        "DELETE FROM t WHERE id = 1",
        "use `shop`",
        "SET TIMESTAMP=1700000000",
        "SET TIMESTAMP=1700000000.500000",
        "Rotate to db1-bin.000002",
        "Stop",
    ):
        assert stmt in out, stmt
    assert "server id 3" in out
    printed = [int(x) for x in re.findall(r"^# at (\d+)$", out, re.M)]
    assert printed == positions
    assert out.count("Xid = ") == 2
    # a start position mid-log works too (positions are byte offsets)
    r = subprocess.run(
        ["mysqlbinlog", f"--start-position={positions[-4]}", files[1]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "DELETE FROM t WHERE id = 1" in r.stdout and "UPDATE" not in r.stdout


def test_failed_sync_takes_the_write_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pylamp.db.binlog as binlog_module

    with Binlog(tmp_path, "f", 1) as b:
        b.append_transaction("a", ["INSERT INTO t VALUES (1)"], T0)
        before = b.position()

        def broken(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(binlog_module.os, "fdatasync", broken)
        with pytest.raises(OSError):
            b.append_transaction("a", ["INSERT INTO t VALUES (2)"], T0)
        assert b.position() == before
        assert (tmp_path / before.file).stat().st_size == before.pos
        monkeypatch.undo()
        b.append_transaction("a", ["INSERT INTO t VALUES (3)"], T0)
        assert _statements(b) == [("INSERT INTO t VALUES (1)",), ("INSERT INTO t VALUES (3)",)]


@pytest.mark.parametrize(("sync", "expected"), [(1, 7), (3, 2), (0, 0)])
def test_sync_binlog_counts_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: int, expected: int
) -> None:
    import pylamp.db.binlog as binlog_module

    calls: list[int] = []
    real = binlog_module.os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    with Binlog(tmp_path, "s", 1, sync=sync) as b:
        monkeypatch.setattr(binlog_module.os, "fdatasync", counting)
        for i in range(7):
            b.append_transaction("a", [f"INSERT INTO t VALUES ({i})"], T0)
        monkeypatch.undo()
    assert len(calls) == expected


@settings(max_examples=25, deadline=None)
@given(
    txns=st.lists(
        st.lists(
            st.text(st.characters(codec="utf-8"), min_size=1, max_size=60), min_size=1, max_size=4
        ),
        min_size=1,
        max_size=6,
    ),
    ddl=st.lists(st.booleans(), min_size=6, max_size=6),
    cut=st.floats(0, 1),
)
def test_any_cut_keeps_exactly_the_complete_transactions(
    tmp_path_factory: pytest.TempPathFactory, txns: list[list[str]], ddl: list[bool], cut: float
) -> None:
    txns = [t[:1] if ddl[i] else t for i, t in enumerate(txns)]  # DDL: one statement
    src = tmp_path_factory.mktemp("src")
    b = Binlog(src, "h", 1)
    ends = [b.append_transaction("d", t, T0, ddl=ddl[i]) for i, t in enumerate(txns)]
    data = (src / "h-bin.000001").read_bytes()
    b.close()
    at = 256 + int(cut * (len(data) - 256))
    dst = tmp_path_factory.mktemp("dst")
    (dst / "h-bin.000001").write_bytes(data[:at])
    with Binlog(dst, "h", 1, sync=0) as r:
        kept = [e for e in ends if e.pos <= at]
        expected = [
            [(s,) for s in t] if ddl[i] else [tuple(t)] for i, t in enumerate(txns[: len(kept)])
        ]
        assert _statements(r) == [x for group in expected for x in group]
        assert (dst / "h-bin.000001").stat().st_size == (kept[-1].pos if kept else 256)


def test_preallocation(tmp_path: Path) -> None:
    src = tmp_path / "src"
    b = Binlog(src, "z", 1, preallocate=4096)
    ends = [b.append_transaction("a", [f"INSERT INTO t VALUES ({i})"], T0) for i in range(60)]
    path = src / ends[-1].file
    # zeros stand ahead of the end while the file is open; readers stop at the real end
    assert path.stat().st_size > ends[-1].pos
    assert len(list(b.transactions_after(None))) == 60
    crashed = path.read_bytes()
    b.close()
    assert path.stat().st_size == b.files()[0][1]
    r = subprocess.run(["mysqlbinlog", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "" and "INSERT INTO t VALUES (59)" in r.stdout
    # after a crash the zeros are a torn tail like any other
    d = tmp_path / "crashed"
    d.mkdir()
    (d / path.name).write_bytes(crashed)
    with Binlog(d, "z", 1, preallocate=4096) as again:
        assert again.truncated_bytes == len(crashed) - ends[-1].pos
        assert [t.end.pos for t in again.transactions_after(None)] == [e.pos for e in ends]


def test_wait_past(tmp_path: Path) -> None:
    with Binlog(tmp_path, "w", 1) as b:
        start = b.position()
        assert not b.wait_past(start, timeout=0.01)
        assert b.wait_past(Position(start.file, start.pos - 1), timeout=0)
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(b.wait_past(start, timeout=30)))
        waiter.start()
        b.append_transaction("a", ["INSERT INTO t VALUES (1)"], T0)
        waiter.join(30)
        assert woke == [True]
        end = b.position()
        waiter = threading.Thread(target=lambda: woke.append(b.wait_past(end, timeout=30)))
        waiter.start()
    waiter.join(30)  # closing the log wakes a waiter too
    assert woke == [True, True]


def test_readers_see_a_deferred_transaction_only_once_committed(tmp_path: Path) -> None:
    # append_transaction(rotate=False) is the engine's path: fsynced, but SQLite has not
    # committed yet (and may still fail and undo it), so no reader may see it
    with Binlog(tmp_path, "v", 1) as b:
        start = b.position()
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(b.wait_past(start, timeout=30)))
        waiter.start()
        end = b.append_transaction("a", ["INSERT INTO t VALUES (1)"], T0, rotate=False)
        assert end.pos > start.pos
        assert not b.wait_past(start, timeout=0)
        assert b.position() == start and b.files() == [(start.file, start.pos)]
        assert list(b.read_events(start.file, start.pos)) == []
        assert woke == []
        b.rotate_if_full()  # the caller committed
        waiter.join(30)
        assert woke == [True] and b.position() == end
        assert [e.header.type_code for _, e in b.read_events(start.file, start.pos)] == [
            EventType.QUERY,
            EventType.QUERY,
            EventType.XID,
        ]
        # an undone one never shows
        again = b.append_transaction("a", ["INSERT INTO t VALUES (2)"], T0, rotate=False)
        b.undo(again)
        b.rotate_if_full()
        assert b.position() == end and list(b.read_events(end.file, end.pos)) == []
