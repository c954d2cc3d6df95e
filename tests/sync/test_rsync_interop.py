"""Interoperability with real rsync: a tree pushed by pylamp and the same tree copied by
``rsync -a --delete`` are identical, and rsync finds nothing to change in pylamp's copy."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sync_trees import KEY, sample_tree, snapshot, symlink, write

from pylamp.sync import SyncReceiver, push


def rsync(src: Path, dst: Path, *extra: str) -> str:
    out = subprocess.run(
        ["rsync", "-a", "--delete", *extra, f"{src}/", f"{dst}/"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def edit(src: Path) -> None:
    write(src, "index.html", "<h1>changed</h1>\n", mtime_ns=1_800_000_000_000_000_001)
    os.chmod(src / "img/big.bin", 0o600)
    os.unlink(src / "cgi/run.sh")
    shutil.rmtree(src / "deep/a/b")
    os.unlink(src / "pictures")
    write(src, "pictures/new.png", b"\x89PNG" * 100, mode=0o664)
    symlink(src, "latest", "pictures/new.png", mtime_ns=1_800_000_000_000_000_002)
    os.rename(src / "img/logo.png", src / "logo-moved.png")
    # rsync compares directory times to the second: give the edited directories times in
    # other seconds than "now", as an editor's earlier save would.
    for i, d in enumerate(("cgi", "deep/a", "pictures", "img", ".")):
        os.utime(src / d, ns=(1_800_000_000_000_000_003 + i * 10**9,) * 2)


async def test_pylamp_push_and_rsync_copy_are_identical(tmp_path: Path) -> None:
    src, ours, theirs = tmp_path / "src", tmp_path / "ours", tmp_path / "theirs"
    sample_tree(src)
    theirs.mkdir()
    async with SyncReceiver(ours, key=KEY) as rx:
        for step in range(2):
            if step:
                edit(src)
            [st] = await push(src, [rx.address], key=KEY)
            assert st.ok, st
            rsync(src, theirs)
            # rsync leaves a directory with the time of a deletion it made inside it (its
            # --delete-during runs after the directory's time was set); a second run, with
            # nothing left to delete, settles it.
            rsync(src, theirs)
            assert snapshot(ours) == snapshot(theirs) == snapshot(src)
            # rsync's own quick check finds nothing to do in pylamp's copy.
            assert rsync(src, ours, "--dry-run", "--itemize-changes") == ""


async def test_pylamp_updates_a_tree_that_rsync_made(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    sample_tree(src)
    dst.mkdir()
    rsync(src, dst)
    async with SyncReceiver(dst, key=KEY) as rx:
        [same] = await push(src, [rx.address], key=KEY)
        assert same.ok and same.files_sent == 0 and same.literal_bytes == 0
        edit(src)
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok
    assert snapshot(dst) == snapshot(src)
