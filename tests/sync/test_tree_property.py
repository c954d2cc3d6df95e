"""Property: whatever the source tree and however it changes, a push makes the receiver equal
to it (contents, modes, mtimes, symlinks, type changes, deletions)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_trees import KEY, snapshot, temp_files

from pylamp.sync import SyncReceiver, SyncSession

_paths = st.lists(st.sampled_from(["a", "b", "c.html"]), min_size=1, max_size=3).map("/".join)
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("file"),
            _paths,
            st.binary(max_size=3000),
            st.sampled_from([0o644, 0o600, 0o755]),
            st.integers(1, 5),
        ),
        st.tuples(st.just("dir"), _paths, st.sampled_from([0o755, 0o700]), st.integers(1, 5)),
        st.tuples(
            st.just("link"),
            _paths,
            st.sampled_from(["a", "../x", "/nonexistent/pylamp", "b/c.html"]),
        ),
        st.tuples(st.just("rm"), _paths),
    ),
    max_size=12,
)


def _through_link_or_file(root: Path, rel: str) -> bool:
    """True when a parent of ``rel`` is a symlink or not a directory: the operation is
    skipped, so the generator never writes outside ``root``."""
    p = root
    for part in rel.split("/")[:-1]:
        p = p / part
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            return True
    return False


def _apply(root: Path, ops: list[tuple[object, ...]], base: int) -> None:
    """Apply ``ops``; files get mtimes from ``base`` (a new base per round, so a file that
    changes between pushes changes its mtime too: with the same size and mtime rsync's quick
    check, and ours, rightly skips it)."""
    for op in ops:
        kind, rel = op[0], str(op[1])
        if _through_link_or_file(root, rel):
            continue
        p = root / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        if kind == "rm":
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            p.write_bytes(op[2])  # type: ignore[arg-type]
            os.chmod(p, op[3])  # type: ignore[arg-type]
            t = base + int(op[4]) * 1_000_000_007  # type: ignore[call-overload]
            os.utime(p, ns=(t, t))
        elif kind == "dir":
            p.mkdir()
            os.chmod(p, op[2])  # type: ignore[arg-type]
        else:
            os.symlink(str(op[2]), p)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=_ops, second=_ops, session=st.booleans())
def test_push_makes_the_receiver_equal_the_source(
    first: list[tuple[object, ...]], second: list[tuple[object, ...]], session: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "src", Path(tmp) / "dst"
        src.mkdir()

        async def run() -> None:
            async with SyncReceiver(dst, key=KEY) as rx, SyncSession(rx.address, KEY) as s:
                _apply(src, first, 1_600_000_000_000_000_000)
                st1 = await s.push(src)
                assert st1.ok, st1.errors
                assert snapshot(dst) == snapshot(src)
                _apply(src, second, 1_700_000_000_000_000_000)
                # The second push either rescans everything or reuses the session's list.
                st2 = await s.push(src, refresh=not session)
                assert st2.ok, st2.errors
                assert snapshot(dst) == snapshot(src)
                assert temp_files(dst) == []

        asyncio.run(run())
