"""Tree semantics of a push (rsync -a --delete), through a real receiver on 127.0.0.1:0."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from sync_trees import KEY, sample_tree, snapshot, symlink, temp_files, write

from pylamp.sync import SyncError, SyncReceiver, SyncSession, format_stats, push
from pylamp.sync.stats import stats_json


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    return src, dst


async def test_round_trip_equals_source(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY, fsync=True) as rx:
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok, st
    assert snapshot(dst) == snapshot(src)
    assert os.path.islink(dst / "pictures") and os.readlink(dst / "pictures") == "img"
    assert st.files_sent == 6 and st.symlinks == 4 and st.literal_bytes == st.total_size
    assert temp_files(dst) == []


async def test_quick_check_skips_unchanged_and_checksum_catches_same_size_mtime(
    dirs: tuple[Path, Path],
) -> None:
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        [again] = await push(src, [rx.address], key=KEY)
        assert again.ok
        assert (again.files_sent, again.literal_bytes, again.meta_updates) == (0, 0, 0)
        assert again.unchanged == again.files_scanned
        # Same size, same mtime, other content: the quick check cannot see it...
        p = src / "index.html"
        st = p.stat()
        p.write_text("<h1>HELLO</h1>\n")
        os.utime(p, ns=(st.st_mtime_ns, st.st_mtime_ns))
        [quick] = await push(src, [rx.address], key=KEY)
        assert quick.files_sent == 0
        assert (dst / "index.html").read_text() == "<h1>hello</h1>\n"
        # ...--checksum compares whole-file hashes and sends it.
        [summed] = await push(src, [rx.address], key=KEY, checksum=True)
        assert summed.ok and summed.files_sent == 1
    assert snapshot(dst) == snapshot(src)


async def test_metadata_only_changes_are_not_resent(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        os.chmod(src / "img/big.bin", 0o600)
        os.utime(src / "cgi/run.sh", ns=(1_000_000_001, 1_000_000_001))
        os.utime(src / "home.html", ns=(2_000_000_002, 2_000_000_002), follow_symlinks=False)
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok and st.files_sent == 0 and st.literal_bytes == 0
    assert st.meta_updates >= 3
    assert snapshot(dst) == snapshot(src)


async def test_deletes_extraneous_files_and_dirs(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        write(dst, "stray.txt", "only at the receiver")
        os.unlink(src / "index.html")
        import shutil

        shutil.rmtree(src / "deep")
        os.unlink(src / "dangling")
        [st] = await push(src, [rx.address], key=KEY)
        assert st.ok and st.files_deleted == 4
        assert snapshot(dst) == snapshot(src)
        [kept] = await push(src, [rx.address], key=KEY, delete=False)
        assert kept.files_deleted == 0


async def test_excludes_follow_rsync_syntax(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    write(src, "page.html", "p")
    write(src, "scratch.tmp", "t")
    write(src, "sub/more.tmp", "t")
    write(src, "cache/x.html", "c")  # a directory called cache: excluded by "cache/"
    write(src, "sub/cache", "a file called cache: kept")
    write(src, "top.log", "anchored: excluded")
    write(src, "sub/top.log", "not at the root: kept")
    write(src, "a/b/c.bak", "**")
    write(dst, "keep.tmp", "excluded at the receiver too: protected from deletion")
    excludes = ["*.tmp", "cache/", "/top.log", "a/**.bak"]
    async with SyncReceiver(dst, key=KEY) as rx:
        [st] = await push(src, [rx.address], key=KEY, excludes=excludes)
    assert st.ok
    present = {p for p in snapshot(dst) if not os.path.isdir(dst / p)}
    assert present == {"page.html", "sub/cache", "sub/top.log", "keep.tmp"}


async def test_moved_file_is_moved_not_resent(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    big = secrets.token_bytes(300_000)
    write(src, "a/photo.jpg", big)
    write(src, "a/other.jpg", secrets.token_bytes(300_000))  # same size, other content
    write(src, "index.html", "x")
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        (src / "b").mkdir()
        os.rename(src / "a/photo.jpg", src / "b/renamed.jpg")
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok
    assert st.files_moved == 1 and st.files_sent == 0 and st.literal_bytes == 0
    assert st.bytes_sent < 5_000
    assert snapshot(dst) == snapshot(src)


async def test_edited_big_file_sends_only_the_difference(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    data = bytearray(secrets.token_bytes(2_000_000))
    write(src, "big.bin", bytes(data))
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        data[1_000_000:1_000_000] = b"inserted bytes shift the rest"
        data[1_500_000:1_500_100] = b"z" * 100
        write(src, "big.bin", bytes(data))
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok and st.files_sent == 1
    assert st.literal_bytes < 20_000 and st.matched_bytes > 1_900_000
    assert st.bytes_sent < 40_000
    assert (dst / "big.bin").read_bytes() == bytes(data)


async def test_type_changes(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    write(src, "f2d", "file, becomes a dir")
    write(src, "d2f/inner.txt", "dir, becomes a file")
    write(src, "f2l", "file, becomes a link")
    symlink(src, "l2d", "f2d")
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        os.unlink(src / "f2d")
        write(src, "f2d/now.txt", "inside")
        import shutil

        shutil.rmtree(src / "d2f")
        write(src, "d2f", "now a file")
        os.unlink(src / "f2l")
        symlink(src, "f2l", "d2f")
        os.unlink(src / "l2d")
        write(src, "l2d/x", "x")
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok, st.errors
    assert snapshot(dst) == snapshot(src)


async def test_session_keeps_connection_and_file_list(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx, SyncSession(rx.address, KEY) as s:
        first = await s.push(src)
        assert first.ok and first.files_sent == 6
        write(src, "img/new.png", "new")
        os.unlink(src / "empty")
        st = await s.push(src, paths=["img/new.png", "empty"])
        assert st.ok and st.files_sent == 1 and st.files_deleted == 1
        # The receiver's list was not fetched again: only a short reply came back.
        assert st.bytes_received < 200
        full = await s.push(src)
        assert full.ok and full.files_sent == 0 and full.files_deleted == 0
        assert rx.pushes == 3
    assert snapshot(dst) == snapshot(src)


async def test_stats_report_text_and_json(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx:
        results = await push(src, [rx.address], key=KEY)
    text = format_stats(results[0])
    assert "Number of regular files transferred: 6" in text
    assert "speedup is" in text and "Literal data:" in text
    import json

    doc = json.loads(stats_json(results))
    [r] = doc["receivers"]
    assert r["files_sent"] == 6 and r["ok"] is True
    assert r["wire_bytes"] == r["bytes_sent"] + r["bytes_received"] > 0


async def test_a_file_vanishing_at_the_source_is_reported_and_retried(
    dirs: tuple[Path, Path],
) -> None:
    from pylamp.sync.manifest import scan
    from pylamp.sync.sender import PushOptions

    src, dst = dirs
    write(src, "stays.html", "s")
    write(src, "vanishes.html", "v")
    tree = scan(src).entries
    os.unlink(src / "vanishes.html")  # gone between the scan and the send
    async with SyncReceiver(dst, key=KEY) as rx, SyncSession(rx.address, KEY) as s:
        st = await s.push_tree(str(src), tree, PushOptions())
        assert not st.ok and [p for p, _ in st.errors] == ["vanishes.html"]
        assert "cannot read" in st.errors[0][1]
        assert s.manifest is not None and "vanishes.html" not in s.manifest
        write(src, "vanishes.html", "back", mtime_ns=tree["vanishes.html"][3])
        again = await s.push(src, paths=["vanishes.html"])
        assert again.ok and again.files_sent == 1
    assert (dst / "vanishes.html").read_text() == "back"


async def test_dry_run_reports_and_changes_nothing(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        write(src, "img/new.png", "new")
        os.unlink(src / "index.html")
        (src / "newdir").mkdir()
        before = snapshot(dst)
        seen: list[str] = []
        [st] = await push(
            src, [rx.address], key=KEY, dry_run=True, progress=lambda a, p, n: seen.append(p)
        )
        assert st.ok and snapshot(dst) == before
        assert (st.files_sent, st.files_deleted, st.dirs_created) == (1, 1, 1)
        assert sorted(seen) == ["deleting index.html", "img/new.png", "newdir"]
        [real] = await push(src, [rx.address], key=KEY)
        assert (real.files_sent, real.files_deleted, real.dirs_created) == (1, 1, 1)
    assert snapshot(dst) == snapshot(src)


async def test_a_session_reconnects_after_the_receiver_restarts(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    write(src, "a.html", "a")
    async with SyncReceiver(dst, key=KEY) as rx:
        port = rx.address[1]
        assert rx.port == port != 0  # the bound port, as DnsServer and SqlServer report it
        s = SyncSession(rx.address, KEY)
        await s.connect()
        assert (await s.push(src)).ok
    async with SyncReceiver(dst, "127.0.0.1", port, key=KEY):
        write(src, "b.html", "b")
        with pytest.raises((OSError, SyncError)):
            await s.push(src)  # the old connection is gone
        await s.connect()
        st = await s.push(src)
        assert st.ok and st.files_sent == 1
        await s.close()
    assert snapshot(dst) == snapshot(src)


async def test_odd_file_names_round_trip(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    names = [b"caf\xe9 latin-1.html", "日本語.html".encode(), b"new\nline", b"-dash", b"sp ace"]
    for n in names:
        (src / os.fsdecode(n)).write_bytes(n)
    os.symlink(os.fsdecode(b"caf\xe9 latin-1.html"), src / "link-to-latin1")
    async with SyncReceiver(dst, key=KEY) as rx:
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok, st.errors
    assert sorted(os.listdir(os.fsencode(dst))) == sorted([*names, b"link-to-latin1"])
    assert snapshot(dst) == snapshot(src)


async def test_a_session_remembers_files_kept_by_no_delete(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    write(src, "a.html", "a")
    write(src, "b.html", "b")
    async with SyncReceiver(dst, key=KEY) as rx, SyncSession(rx.address, KEY) as s:
        await s.push(src)
        os.unlink(src / "b.html")
        kept = await s.push(src, delete=False)
        assert kept.files_deleted == 0 and (dst / "b.html").exists()
        gone = await s.push(src)  # the cached list still knows b.html is there
        assert gone.files_deleted == 1
    assert snapshot(dst) == snapshot(src)


async def test_a_file_swapped_for_a_symlink_after_the_scan_is_not_followed(
    tmp_path: Path,
) -> None:
    from pylamp.sync.manifest import scan
    from pylamp.sync.sender import PushOptions

    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "page.html", "public")
    write(tmp_path, "secret", "private")
    tree = scan(src).entries
    os.unlink(src / "page.html")
    os.symlink(tmp_path / "secret", src / "page.html")
    async with SyncReceiver(dst, key=KEY) as rx, SyncSession(rx.address, KEY) as s:
        st = await s.push_tree(str(src), tree, PushOptions())
    assert [p for p, _ in st.errors] == ["page.html"]
    assert not (dst / "page.html").exists()


async def test_session_paths_cover_directories_and_their_removal(dirs: tuple[Path, Path]) -> None:
    import shutil

    src, dst = dirs
    write(src, "keep.html", "k")
    write(src, "old/a.html", "a")
    write(src, "old/sub/b.html", "b")
    async with SyncReceiver(dst, key=KEY) as rx, SyncSession(rx.address, KEY) as s:
        await s.push(src)
        shutil.rmtree(src / "old")
        write(src, "new/x/y.html", "y")
        st = await s.push(src, paths=["old", "new"])
        assert st.ok and st.files_sent == 1 and st.files_deleted == 1 and st.dirs_created == 2
    assert snapshot(dst) == snapshot(src)


async def test_a_long_file_list_comes_in_several_messages(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pylamp.sync import receiver

    monkeypatch.setattr(receiver, "MANIFEST_ROWS", 3)
    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        [again] = await push(src, [rx.address], key=KEY)
    assert again.ok and again.files_sent == 0 and again.unchanged == again.files_scanned
    assert snapshot(dst) == snapshot(src)


async def test_large_plans_go_in_several_messages(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from pylamp.sync import sender

    monkeypatch.setattr(sender, "_BATCH", 2)
    src, dst = dirs
    sample_tree(src)
    for i in range(5):
        write(src, f"m/file{i}.bin", secrets.token_bytes(1000 + i))
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        for i in range(5):  # five moves, five new dirs, five symlinks, deletes, edits
            os.rename(src / f"m/file{i}.bin", src / f"moved{i}.bin")
            (src / f"dir{i}").mkdir()
            symlink(src, f"dir{i}/link", "../index.html")
            write(src, f"img/extra{i}.txt", f"{i}")
        shutil.rmtree(src / "deep")
        os.unlink(src / "empty")
        write(src, "img/big.bin", secrets.token_bytes(600_000))
        write(src, "index.html", "<h1>changed</h1>\n")
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok, st.errors
    assert st.files_moved == 5 and st.dirs_created == 5 and st.symlinks == 5
    assert snapshot(dst) == snapshot(src)


async def test_the_receiver_root_removed_while_serving_is_made_again(
    dirs: tuple[Path, Path],
) -> None:
    import shutil

    src, dst = dirs
    sample_tree(src)
    async with SyncReceiver(dst, key=KEY) as rx:
        await push(src, [rx.address], key=KEY)
        shutil.rmtree(dst)
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok, st
    assert snapshot(dst) == snapshot(src)
