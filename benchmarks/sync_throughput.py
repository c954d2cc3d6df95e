"""Sync throughput: pylamp.sync's push against rsync on the same data, back to back.

    .venv/bin/python benchmarks/sync_throughput.py            # A (docroot) and B (one big file)
    .venv/bin/python benchmarks/sync_throughput.py --quick    # small version, a few seconds
    .venv/bin/python benchmarks/sync_throughput.py --tree DIR [--old DIR]   # your own tree

Scenario A is a generated docroot (about 2,000 files, 200 MiB: many of 2-64 KiB, about 20 of
2-16 MiB) and a new version of it (about 2% of the files edited by overwrites, inserts and
deletes, 20 added, 20 deleted, a few only touched). Scenario B is one 512 MiB file with 200
scattered edits of about 1 KiB, half of them shifting the data after them. Both are made from
a seed, so every run sees the same bytes.

For each scenario both tools start from a fresh copy of the old tree: rsync pushes with
``rsync -a --delete --stats`` into an rsync daemon on 127.0.0.1, pylamp with ``push()`` into a
``SyncReceiver`` running in its own process. Then each pushes again with nothing changed.
Printed: wall time, bytes on the wire (rsync: "Total bytes sent/received" of --stats; pylamp:
its push statistics), the ratios and the targets, and the pure delta core's speed on B.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pylamp.sync.delta import DeltaStats, delta, signature  # noqa: E402

T_OLD = 1_700_000_000_000_000_000  # mtimes of the old version (ns)
T_NEW = T_OLD + 3600 * 10**9  # mtimes of edited files
MiB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Sizes:
    """How big the generated data is (full run or --quick)."""

    small_files: int
    big_files: int
    big_min: int
    big_max: int
    b_size: int
    b_edits: int
    added: int
    deleted: int
    touched: int


FULL = Sizes(1980, 20, 2 * MiB, 16 * MiB, 512 * MiB, 200, 20, 20, 5)
QUICK = Sizes(100, 2, 256 * 1024, 1 * MiB, 4 * MiB, 10, 5, 5, 2)


def _text_pool(rng: np.random.Generator, size: int) -> bytes:
    """HTML-ish text to cut pages from (compressible, like real pages)."""
    words = [
        b"<p>",
        b"</p>",
        b"<div class=item>",
        b"</div>",
        b"foo.com",
        b"cluster",
        b"the",
        b"of",
        b"and",
        b"server",
        b"load",
        b"balance",
        b"mysql",
        b"apache",
        b"<a href='/page",
        b"'>",
        b"</a>",
        b"web",
        b"replication",
        b"\n",
    ] + [bytes(rng.integers(97, 123, rng.integers(3, 10), dtype=np.uint8)) for _ in range(400)]
    picks = rng.integers(0, len(words), size // 4)
    return b" ".join(words[i] for i in picks)[:size]


def _content(rng: np.random.Generator, pool: bytes, size: int, text: bool) -> bytes:
    if text:
        at = int(rng.integers(0, len(pool) - size)) if len(pool) > size else 0
        return pool[at : at + size]
    return rng.bytes(size)


def _edit(rng: np.random.Generator, data: bytes, edits: int) -> bytes:
    """Apply ``edits`` edits of about 1 KiB at scattered places: overwrites, and inserts and
    deletes that shift everything after them. Built in one pass, so 512 MiB stays cheap."""
    n = len(data)
    if n < 4096:
        return rng.bytes(max(1, n // 2)) + data[n // 2 :]
    places = sorted(rng.choice(n - 2048, size=min(edits, n // 2048), replace=False).tolist())
    out: list[bytes] = []
    at = 0
    for i, p in enumerate(places):
        p = max(p, at)
        size = int(rng.integers(512, 1537))
        out.append(data[at:p])
        if i % 4 == 0:  # insert
            out.append(rng.bytes(size))
            at = p
        elif i % 4 == 1:  # delete
            at = min(p + size, n)
        else:  # overwrite
            out.append(rng.bytes(size))
            at = min(p + size, n)
    out.append(data[at:])
    return b"".join(out)


def _write(root: Path, files: dict[str, tuple[bytes, int]]) -> None:
    for rel, (data, mtime) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(mtime, mtime))


def generate_a(work: Path, seed: int, sz: Sizes) -> tuple[Path, Path, str]:
    """Old and new versions of a docroot; returns their paths and a one-line summary."""
    rng = np.random.default_rng(seed)
    pool = _text_pool(rng, 4 * MiB)
    old: dict[str, tuple[bytes, int]] = {}
    for i in range(sz.small_files):
        size = int(np.exp(rng.uniform(np.log(2048), np.log(64 * 1024))))
        kind = ("html", "css", "js", "jpg", "png")[i % 5]
        rel = f"s{i % 23:02d}/p{i % 7}/item{i:05d}.{kind}"
        old[rel] = (_content(rng, pool, size, kind in ("html", "css", "js")), T_OLD)
    for i in range(sz.big_files):
        size = int(rng.integers(sz.big_min, sz.big_max + 1))
        old[f"media/v{i:02d}.mp4"] = (rng.bytes(size), T_OLD)
    new = dict(old)
    names = sorted(old)
    order = rng.permutation(len(names)).tolist()
    edited = max(1, len(names) // 50)
    for j in order[:edited]:
        rel = names[j]
        data = old[rel][0]
        edits = 5 if len(data) > MiB else int(rng.integers(1, 4))
        new[rel] = (_edit(rng, data, edits), T_NEW)
    for j in order[edited : edited + sz.deleted]:
        del new[names[j]]
    for j in order[edited + sz.deleted : edited + sz.deleted + sz.touched]:
        new[names[j]] = (old[names[j]][0], T_NEW)
    for i in range(sz.added):
        size = int(rng.integers(2048, 64 * 1024))
        new[f"s{i % 23:02d}/new/added{i:03d}.html"] = (_content(rng, pool, size, True), T_NEW)
    a_old, a_new = work / "A-old", work / "A-new"
    _write(a_old, old)
    _write(a_new, new)
    total = sum(len(d) for d, _ in old.values())
    summary = (
        f"{len(old)} files, {total / MiB:.1f} MiB; new version: {edited} edited, "
        f"{sz.added} added, {sz.deleted} deleted, {sz.touched} touched"
    )
    return a_old, a_new, summary


def generate_b(work: Path, seed: int, sz: Sizes) -> tuple[Path, Path, str]:
    """One big file and its edited version, each alone in a directory."""
    rng = np.random.default_rng(seed + 1)
    old = rng.bytes(sz.b_size)
    new = _edit(rng, old, sz.b_edits)
    b_old, b_new = work / "B-old", work / "B-new"
    _write(b_old, {"big.bin": (old, T_OLD)})
    _write(b_new, {"big.bin": (new, T_NEW)})
    summary = f"1 file, {sz.b_size / MiB:.0f} MiB, {sz.b_edits} edits of ~1 KiB, half shifting"
    return b_old, b_new, summary


def tree_digest(root: Path) -> dict[str, tuple[int, str]]:
    """Relative path -> (mtime in seconds, content hash) for every file and link."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = (0, "-> " + os.readlink(path))
                continue
            h = xxhash.xxh3_128()
            with open(path, "rb") as f:
                while chunk := f.read(MiB):
                    h.update(chunk)
            out[rel] = (int(path.stat().st_mtime), h.hexdigest())
    return out


def fresh_copy(src: Path | None, dst: Path) -> None:
    """``dst`` becomes a copy of ``src`` (mtimes kept), or an empty directory."""
    if dst.exists():
        shutil.rmtree(dst)
    if src is None:
        dst.mkdir(parents=True)
    else:
        shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)


# ---------------------------------------------------------------------------------------------
# rsync


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.02)


@contextlib.contextmanager
def rsync_daemon(path: Path) -> Iterator[str]:
    """An rsync daemon on 127.0.0.1 with a writable module ``bench`` at ``path``; yields the
    URL prefix ``rsync://127.0.0.1:PORT/bench``."""
    conf = path.parent / "rsyncd.conf"
    ident = f"uid = {os.getuid()}\ngid = {os.getgid()}\n" if os.getuid() == 0 else ""
    conf.write_text(
        f"pid file = {path.parent / 'rsyncd.pid'}\n"
        f"{ident}"
        "use chroot = no\nmunge symlinks = no\nmax connections = 0\n\n"
        f"[bench]\npath = {path}\nread only = no\n"
    )
    for _attempt in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [
                "rsync",
                "--daemon",
                "--no-detach",
                f"--config={conf}",
                "--address=127.0.0.1",
                f"--port={port}",
                f"--log-file={path.parent / 'rsyncd.log'}",
            ],
        )
        try:
            _wait_port(port, proc, time.monotonic() + 10)
        except RuntimeError:
            proc.kill()
            proc.wait()
            continue
        try:
            yield f"rsync://127.0.0.1:{port}/bench"
        finally:
            proc.terminate()
            proc.wait()
        return
    raise RuntimeError("could not start the rsync daemon")


def _rsync_version() -> str:
    first = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout
    return " ".join(first.split()[:3])


def rsync_push(src: Path, url: str) -> tuple[float, int]:
    """Wall time and bytes on the wire of one ``rsync -a --delete --stats`` run."""
    t0 = time.perf_counter()
    out = subprocess.run(
        ["rsync", "-a", "--delete", "--stats", f"{src}/", f"{url}/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - t0
    sent = re.search(r"Total bytes sent: ([\d,.]+)", out)
    received = re.search(r"Total bytes received: ([\d,.]+)", out)
    if not sent or not received:
        raise RuntimeError(f"no byte counts in rsync --stats output:\n{out}")
    wire = int(re.sub(r"[,.]", "", sent[1])) + int(re.sub(r"[,.]", "", received[1]))
    return wall, wire


# ---------------------------------------------------------------------------------------------
# pylamp

_RECEIVER = """
import asyncio, sys
from pylamp.sync.receiver import SyncReceiver
async def main():
    async with SyncReceiver(sys.argv[1], "127.0.0.1", 0, key=bytes.fromhex(sys.argv[2])) as r:
        print(r.address[1], flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


@contextlib.contextmanager
def pylamp_receiver(root: Path, key: bytes) -> Iterator[str]:
    """A ``SyncReceiver`` in its own process (as a secondary web server runs it); yields its
    address."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, str(root), key.hex()],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"receiver exited with status {proc.wait()}")
        yield f"127.0.0.1:{int(line)}"
    finally:
        proc.terminate()
        proc.wait()


def pylamp_pushes(src: Path, address: str, key: bytes) -> tuple[float, int, float, float]:
    """Wall time and bytes on the wire of one ``push()``, the wall time of a second, unchanged
    ``push()``, and that of an unchanged push through an open ``SyncSession`` (as the watcher
    keeps it)."""
    from pylamp.sync.sender import SyncSession, push

    async def once() -> tuple[float, int]:
        t0 = time.perf_counter()
        (st,) = await push(src, [address], key=key)
        wall = time.perf_counter() - t0
        if not st.ok:
            raise RuntimeError(f"push failed: {st.error or st.errors}")
        return wall, st.wire_bytes

    async def run() -> tuple[float, int, float, float]:
        wall, wire = await once()
        os.sync()  # as before rsync's unchanged run
        again, _ = await once()
        async with SyncSession(address, key) as session:
            await session.push(src)
            t0 = time.perf_counter()
            await session.push(src)
            kept = time.perf_counter() - t0
        return wall, wire, again, kept

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------
# Runs


@dataclass
class Row:
    label: str
    ours: float
    theirs: float
    unit: str
    target: float | None = None

    def line(self) -> str:
        ratio = self.ours / self.theirs if self.theirs else float("inf")
        if self.unit == "s":
            a, b = f"{self.ours:8.3f} s", f"{self.theirs:8.3f} s"
        else:
            a, b = f"{self.ours:>10,.0f}", f"{self.theirs:>10,.0f}"
        goal = ""
        if self.target is not None:
            goal = f"  (target <= {self.target:g}x: {'met' if ratio <= self.target else 'MISSED'})"
        return f"  {self.label:<22} {a:>13} {b:>13} {ratio:7.2f}x{goal}"


Targets = tuple[float | None, float | None, float | None]


def _median(rows: tuple[Row, ...]) -> Row:
    """One row with the median of each tool's figure over repeated runs."""
    return dataclasses.replace(
        rows[0],
        ours=statistics.median(r.ours for r in rows),
        theirs=statistics.median(r.theirs for r in rows),
    )


def compare(
    name: str,
    old: Path | None,
    new: Path,
    work: Path,
    url: str,
    rsync_root: Path,
    key: bytes,
    targets: Targets,
) -> list[Row]:
    """Push ``new`` over a fresh copy of ``old`` with both tools, then again unchanged."""
    # Each tool starts with no dirty pages left by the copies or by the other tool's run, so
    # neither pays for the other's disk writes.
    rsync_dst = rsync_root / name
    fresh_copy(old, rsync_dst)
    os.sync()
    r_wall, r_wire = rsync_push(new, f"{url}/{name}")
    os.sync()
    r_again, _ = rsync_push(new, f"{url}/{name}")
    ours_dst = work / f"{name}-pylamp"
    fresh_copy(old, ours_dst)
    with pylamp_receiver(ours_dst, key) as address:
        os.sync()
        o_wall, o_wire, o_again, o_kept = pylamp_pushes(new, address, key)
    want = tree_digest(new)
    for tool, dst in (("rsync", rsync_dst), ("pylamp", ours_dst)):
        if tree_digest(dst) != want:
            raise RuntimeError(f"{name}: {tool}'s copy differs from the source")
    for dst in (rsync_dst, ours_dst):
        shutil.rmtree(dst)
    return [
        Row(f"{name} push wall time", o_wall, r_wall, "s", targets[0]),
        Row(f"{name} bytes on the wire", o_wire, r_wire, "B", targets[1]),
        Row(f"{name} no-change push", o_again, r_again, "s", targets[2]),
        Row(f"{name} same, open session", o_kept, r_again, "s", targets[2]),
    ]


def _chunks(data: bytes, size: int = MiB) -> Iterator[memoryview]:
    mv = memoryview(data)
    for at in range(0, len(data), size):
        yield mv[at : at + size]


def core_speed(old_path: Path, new_path: Path, tries: int = 3) -> list[str]:
    """MB/s of the pure core on B: signature, delta unchanged, delta with the edits (the best
    of ``tries`` runs each; each delta gets a fresh signature, so building its index counts)."""
    old = old_path.read_bytes()
    new = new_path.read_bytes()

    def timed_signature() -> float:
        t0 = time.perf_counter()
        signature(_chunks(old), length=len(old))
        return time.perf_counter() - t0

    def timed_delta(data: bytes) -> tuple[float, DeltaStats]:
        sig = signature(_chunks(old), length=len(old))
        st = DeltaStats()
        t0 = time.perf_counter()
        for _op in delta(sig, _chunks(data), stats=st):
            pass
        return time.perf_counter() - t0, st

    t_sig = min(timed_signature() for _ in range(tries))
    lines = [f"  signature              {len(old) / t_sig / 1e6:8.0f} MB/s"]
    for label, data, target in (("delta, no change", old, 500), ("delta, with edits", new, 150)):
        secs, st = min((timed_delta(data) for _ in range(tries)), key=lambda r: r[0])
        rate = len(data) / secs / 1e6
        verdict = "met" if rate >= target else "MISSED"
        lines.append(
            f"  {label:<22} {rate:8.0f} MB/s  (target >= {target} MB/s: {verdict}; "
            f"literal {st.literal_bytes:,} B, matched {st.matched_bytes:,} B)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small data, a few seconds")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    p.add_argument("--tree", type=Path, help="push this tree instead of the generated ones")
    p.add_argument("--old", type=Path, help="with --tree: the receivers start from this tree")
    p.add_argument("--workdir", type=Path, help="where to put the data (default: a temp dir)")
    p.add_argument(
        "--repeat", type=int, default=1, help="run each push N times, print medians (default 1)"
    )
    p.add_argument("--only", choices=("A", "B"), help="run only this scenario (default: both)")
    args = p.parse_args(argv)
    if shutil.which("rsync") is None:
        print("rsync is not installed", file=sys.stderr)
        return 2
    sz = QUICK if args.quick else FULL
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="pylamp-sync-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        rsync_root = work / "rsync-module"
        rsync_root.mkdir()
        out: list[str] = [
            f"sync throughput ({'quick' if args.quick else 'full'}), {_rsync_version()}",
            f"  {'':<22} {'pylamp':>13} {'rsync':>13} {'ratio':>8}",
        ]
        with rsync_daemon(rsync_root) as url:

            def rows(name: str, old: Path | None, new: Path, targets: Targets) -> list[str]:
                runs = [
                    compare(name, old, new, work, url, rsync_root, key, targets)
                    for _ in range(args.repeat)
                ]
                return [_median(same).line() for same in zip(*runs, strict=True)]

            if args.tree:
                start = f"from {args.old}" if args.old else "empty"
                out.append(f"T: {args.tree} (receivers start {start})")
                out += rows("T", args.old, args.tree.resolve(), (None, None, None))
            if not args.tree and args.only != "B":
                a_old, a_new, a_sum = generate_a(work, args.seed, sz)
                out.append(f"A: {a_sum}")
                out += rows("A", a_old, a_new, (1.0, 1.1, 0.25))
                shutil.rmtree(a_old)
                shutil.rmtree(a_new)
            if not args.tree and args.only != "A":
                b_old, b_new, b_sum = generate_b(work, args.seed, sz)
                out.append(f"B: {b_sum}")
                out += rows("B", b_old, b_new, (1.5, 1.1, None))
                out.append("pure delta core on B (in memory, 1 MiB chunks):")
                out += core_speed(b_old / "big.bin", b_new / "big.bin")
        if args.repeat > 1:
            out.append(f"(push figures: medians of {args.repeat} runs)")
        print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
