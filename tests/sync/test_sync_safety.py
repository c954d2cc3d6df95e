"""Safety of the receiver: confinement, authentication, atomic files, delayed publication,
failure isolation, and kill -9 of either side mid-push."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
from pathlib import Path

import xxhash
from sync_trees import (
    KEY,
    PYTHON,
    REPO,
    RawClient,
    file_event,
    hand_receiver,
    key_file,
    sample_tree,
    snapshot,
    start_serve,
    temp_files,
    write,
)

from pylamp.sync import SyncReceiver, push
from pylamp.sync import events as ev
from pylamp.sync.protocol import ProtocolError


async def started(address: tuple[str, int], *, delay_updates: bool = True) -> RawClient:
    """A hand-driven sender, authenticated, with a push begun."""
    rc = RawClient()
    await rc.connect(address)
    rc.send(ev.Begin(True, False, delay_updates, ()))
    assert isinstance(await rc.next(), ev.Manifest)
    return rc


async def test_hostile_paths_are_refused_by_name_and_the_push_goes_on(tmp_path: Path) -> None:
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    write(outside, "victim", "must survive")
    write(dst, "keep.txt", "old")
    os.symlink(outside, dst / "link")  # a symlinked directory leading outside the root
    os.symlink("/", dst / "rootlink")
    hostile = [
        "../escape",
        "a/../../escape",
        str(tmp_path / "absolute"),
        "nul\x00byte",
        "link/evil",
        "rootlink/tmp/evil",
        "",
        "./dot",
        "a//b",
    ]
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address)
        rc.send(
            ev.Mkdirs(
                (("../updir", "d", 0o755, 1, 0, "", ""), ("link/sub", "d", 0o755, 1, 0, "", ""))
            )
        )
        for p in hostile:
            rc.send(file_event(p, b"pwned"))
        rc.send(ev.FileBegin("../streamed", 0o644, 1, 3, False))
        rc.send(ev.FileData(b"abc"))
        rc.send(ev.FileEnd(xxhash.xxh3_128_hexdigest(b"abc")))
        rc.send(ev.Symlinks((("../sym", "l", 0o777, 1, 0, "/etc/passwd", ""),)))
        rc.send(ev.Moves((("../outside/victim", "stolen", "00", 0o644, 1, True),)))
        rc.send(file_event("fine.txt", b"the rest of the push goes on"))
        rc.send(ev.Delete(("../outside/victim", "link/victim", str(outside / "victim"), ".")))
        rc.send(ev.End())
        done, seen = await rc.until(ev.Done)
        await rc.close()
        # The receiver is still serving: a normal push works.
        [st] = await push(tmp_path / "outside", [rx.address], key=KEY, delete=False)
        assert st.ok
    errors = {e.path: e.message for e in seen if isinstance(e, ev.PathError)}
    moves_done = [e for e in seen if isinstance(e, ev.MovesDone)]
    refused = ["../updir", "link/sub", "../streamed", "../sym", "link/victim", "."]
    for p in [*hostile, *refused, str(outside / "victim")]:
        assert p in errors, p
        assert repr(p) in errors[p] or p in errors[p]
    assert moves_done == [ev.MovesDone(("stolen",))]
    assert (dst / "fine.txt").read_text() == "the rest of the push goes on"
    assert (outside / "victim").read_text() == "must survive"
    assert sorted(os.listdir(outside)) == ["victim"]
    assert not (tmp_path / "escape").exists() and not (tmp_path / "streamed").exists()
    assert not (tmp_path / "absolute").exists()
    assert not (tmp_path / "updir").exists() and not (tmp_path / "sym").exists()
    assert (dst / "keep.txt").read_text() == "old"
    assert set(done.failed) >= set(hostile)
    assert temp_files(dst) == []


async def test_wrong_key_is_refused_before_any_file_is_touched(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    sample_tree(src)
    write(dst, "old.html", "old content")
    write(dst, "img/logo.png", "old logo")
    before = snapshot(dst)
    async with SyncReceiver(dst, key=KEY) as rx:
        [st] = await push(src, [rx.address], key=b"not-the-key-0123456789")
        assert st.error is not None and "authentication failed" in st.error
        # Hand-driven: a wrong proof followed by file data never gets past authentication.
        rc = RawClient(key=b"also-wrong-key-0123456789")
        await rc.connect(rx.address, auth=False)
        rc.send(rc.conn.auth())
        reply = await rc.next()
        assert isinstance(reply, ev.Error) and "authentication failed" in reply.message
        await rc.close()
    assert snapshot(dst) == before
    assert temp_files(dst) == []


async def test_replayed_session_is_refused(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address)
        rc.send(file_event("page.html", b"pushed by the real sender"))
        rc.send(ev.End())
        await rc.until(ev.Done)
        await rc.close()
        assert (dst / "page.html").read_bytes() == b"pushed by the real sender"
        (dst / "page.html").write_text("edited since")
        # An eavesdropper replays every byte the sender sent.
        reader, writer = await asyncio.open_connection(*rx.address)
        writer.write(bytes(rc.sent))
        await writer.drain()
        reply = await reader.read()  # until the receiver closes
        writer.close()
    assert b"authentication failed" in reply
    assert (dst / "page.html").read_text() == "edited since"


async def test_updates_are_published_together_at_the_end_and_deletes_after(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst, "page.html", "old page")
    write(dst, "img.png", "old image")
    write(dst, "gone.html", "deleted at the end")
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address)
        rc.send(file_event("page.html", b"new page"))
        rc.send(file_event("img.png", b"new image"))
        rc.send(file_event("added.html", b"new file"))
        rc.send(ev.Delete(("gone.html",)))
        rc.send(ev.SigRequest(("page.html",), ("",)))  # a round trip: all of the above applied
        await rc.until(ev.Signature)
        # Written and verified, but nothing visible yet.
        assert (dst / "page.html").read_text() == "old page"
        assert (dst / "img.png").read_text() == "old image"
        assert not (dst / "added.html").exists()
        assert (dst / "gone.html").exists()
        assert len(temp_files(dst)) == 3
        rc.send(ev.End())
        done, _ = await rc.until(ev.Done)
        await rc.close()
    assert done.failed == ()
    assert (dst / "page.html").read_text() == "new page"
    assert (dst / "img.png").read_text() == "new image"
    assert (dst / "added.html").read_text() == "new file"
    assert not (dst / "gone.html").exists()
    assert temp_files(dst) == []


async def test_without_delay_updates_each_file_lands_as_it_arrives(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst, "page.html", "old page")
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address, delay_updates=False)
        rc.send(file_event("page.html", b"new page"))
        rc.send(ev.SigRequest(("page.html",), ("",)))
        await rc.until(ev.Signature)
        assert (dst / "page.html").read_text() == "new page"
        rc.send(ev.End())
        await rc.until(ev.Done)
        await rc.close()


async def test_corrupt_file_is_refused_and_never_visible(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst, "page.html", "old page")
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address)
        rc.send(ev.File("page.html", 0o644, 1, xxhash.xxh3_128_hexdigest(b"other"), b"new"))
        rc.send(ev.FileBegin("streamed.html", 0o644, 1, 3, False))
        rc.send(ev.FileData(b"abc"))
        rc.send(ev.FileEnd("00" * 16))
        rc.send(ev.End())
        done, seen = await rc.until(ev.Done)
        await rc.close()
    assert set(done.failed) == {"page.html", "streamed.html"}
    assert {e.path for e in seen if isinstance(e, ev.PathError)} == {"page.html", "streamed.html"}
    assert all("hash mismatch" in e.message for e in seen if isinstance(e, ev.PathError))
    assert (dst / "page.html").read_text() == "old page"
    assert not (dst / "streamed.html").exists()
    assert temp_files(dst) == []


async def test_sender_vanishing_mid_push_publishes_nothing(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst, "page.html", "old page")
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address)
        rc.send(file_event("page.html", b"new page"))
        rc.send(ev.FileBegin("half.bin", 0o644, 1, 10, False))
        rc.send(ev.FileData(b"12345"))
        await _until(lambda: len(temp_files(dst)) == 2)
        await rc.close()
        await asyncio.wait_for(_until(lambda: rx.failed_pushes == 1), 10)
        # Garbage from another client is refused; the receiver keeps serving.
        r, w = await asyncio.open_connection(*rx.address)
        w.write(b"GET / HTTP/1.0\r\n\r\n" * 100)
        await r.read()
        w.close()
        [st] = (
            await push(tmp_path / "empty", [rx.address], key=KEY, delete=False)
            if (tmp_path / "empty").mkdir() is None
            else []
        )
        assert st.ok
    assert (dst / "page.html").read_text() == "old page"
    assert not (dst / "half.bin").exists()
    assert temp_files(dst) == []


async def _until(pred: object) -> None:
    while not pred():  # type: ignore[operator]
        await asyncio.sleep(0.002)


async def test_a_receiver_that_is_down_fails_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    sample_tree(src)
    dsts = [tmp_path / "dst1", tmp_path / "dst2"]
    async with SyncReceiver(dsts[0], key=KEY) as r1, SyncReceiver(dsts[1], key=KEY) as r2:
        down = ("127.0.0.1", r2.address[1])
        await r2.close()
        async with SyncReceiver(dsts[1], key=KEY) as r3:
            results = await push(src, [r1.address, down, r3.address], key=KEY)
    ok1, bad, ok3 = results
    assert ok1.ok and ok3.ok
    assert bad.error is not None and "refused" in bad.error
    assert bad.address == f"127.0.0.1:{down[1]}"
    assert snapshot(dsts[0]) == snapshot(src) == snapshot(dsts[1])


def _two_versions(src: Path, n: int, size: int) -> tuple[dict[str, bytes], dict[str, bytes]]:
    old = {f"d{i % 7}/f{i}.bin": secrets.token_bytes(size) for i in range(n)}
    new = {p: secrets.token_bytes(size) for p in old}
    for p, data in old.items():
        write(src, p, data)
    return old, new


def _check_whole(dst: Path, old: dict[str, bytes], new: dict[str, bytes]) -> tuple[int, int]:
    """Every file is wholly old or wholly new; returns the counts."""
    n_old = n_new = 0
    for p in old:
        data = (dst / p).read_bytes()
        assert data in (old[p], new[p]), f"{p} is neither wholly old nor wholly new"
        n_old += data == old[p]
        n_new += data == new[p]
    return n_old, n_new


async def test_kill_9_of_the_sender_mid_push(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    old, new = _two_versions(src, 80, 128 * 1024)
    keyf = key_file(tmp_path)
    async with SyncReceiver(dst, key=KEY) as rx:
        [st] = await push(src, [rx.address], key=KEY, whole_file=True)
        assert st.ok
        for p, data in new.items():
            write(src, p, data)
        cmd = [PYTHON, "-m", "pylamp.sync", "push", str(src), f"{rx.address[0]}:{rx.address[1]}"]
        cmd += ["--key", str(keyf), "-q", "--no-compress"]
        sender = await asyncio.create_subprocess_exec(*cmd, cwd=REPO, stdout=subprocess.DEVNULL)
        try:
            await _until(lambda: temp_files(dst) or sender.returncode is not None)
            await asyncio.sleep(random.uniform(0, 0.01))
        finally:
            if sender.returncode is None:
                sender.send_signal(signal.SIGKILL)
            await sender.wait()
        assert sender.returncode == -signal.SIGKILL, "the push ended before it could be killed"
        # The receiver notices, drops its temp files and publishes nothing.
        await _until(lambda: rx.failed_pushes == 1)
        assert temp_files(dst) == []
        n_old, _ = _check_whole(dst, old, new)
        assert n_old == len(old), "a killed delay-updates push published something"
        [st] = await push(src, [rx.address], key=KEY, whole_file=True)
        assert st.ok
    assert _check_whole(dst, old, new) == (0, len(new))
    assert temp_files(dst) == []


async def test_kill_9_of_the_receiver_mid_push(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    old, new = _two_versions(src, 80, 128 * 1024)
    keyf = key_file(tmp_path)
    rx, port = start_serve(dst, keyf)
    try:
        [st] = await push(src, [("127.0.0.1", port)], key=KEY)
        assert st.ok
        for p, data in new.items():
            write(src, p, data)
        # Files land one by one here, so the kill leaves a mix: each must be whole.
        task = asyncio.create_task(
            push(
                src,
                [("127.0.0.1", port)],
                key=KEY,
                delay_updates=False,
                compress=False,
                whole_file=True,
            )
        )
        await _until(lambda: temp_files(dst) or task.done())
        await asyncio.sleep(random.uniform(0, 0.01))
        rx.send_signal(signal.SIGKILL)
        rx.wait()
        [failed] = await task
        assert failed.error is not None, "the push ended before the receiver was killed"
        _check_whole(dst, old, new)
        stale = temp_files(dst)
    finally:
        if rx.poll() is None:
            rx.send_signal(signal.SIGKILL)
            rx.wait()
    async with SyncReceiver(dst, key=KEY) as rx2:  # the receiver restarted
        [st] = await push(src, [rx2.address], key=KEY, whole_file=True)
    assert st.ok
    assert _check_whole(dst, old, new) == (0, len(new))
    assert temp_files(dst) == []
    assert all(not os.path.exists(t) for t in stale)


async def test_stale_temp_files_are_cleaned_by_the_next_push(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "a/page.html", "p")
    stale = [dst / ".~pylamp.deadbeef.tmp", dst / "a/.~pylamp.0123.tmp"]
    for t in stale:
        write(dst, str(t.relative_to(dst)), "left by a killed receiver")
    async with SyncReceiver(dst, key=KEY) as rx:
        [st] = await push(src, [rx.address], key=KEY)
    assert st.ok
    assert temp_files(dst) == []
    assert snapshot(dst) == snapshot(src)


def test_protocol_error_type_is_public() -> None:
    assert issubclass(ProtocolError, Exception)


async def test_a_hung_sender_does_not_hold_the_receiver(tmp_path: Path) -> None:
    dst, src = tmp_path / "dst", tmp_path / "src"
    write(src, "page.html", "new")
    async with SyncReceiver(dst, key=KEY, idle_timeout=0.3) as rx:
        rc = await started(rx.address)
        rc.send(file_event("half.html", b"never published"))
        # The sender goes quiet mid-push; a second push waits for the receiver's lock...
        second = asyncio.create_task(push(src, [rx.address], key=KEY))
        # ...until the receiver drops the hung one.
        err = await rc.next()
        assert isinstance(err, ev.Error) and "no data" in err.message
        [st] = await second
        await rc.close()
        assert st.ok and rx.failed_pushes == 1
    assert not (dst / "half.html").exists()
    assert (dst / "page.html").read_text() == "new"


async def test_a_delta_whose_basis_changed_is_asked_for_whole(tmp_path: Path) -> None:
    from pylamp.sync import delta as dl

    dst = tmp_path / "dst"
    old = secrets.token_bytes(50_000)
    new = old[:20_000] + b"an edit" + old[20_000:]
    write(dst, "page.bin", old)
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address)
        rc.send(ev.SigRequest(("page.bin",), ("",)))
        sig_msg, _ = await rc.until(ev.Signature)
        # Someone edits the receiver's copy after its signature was made.
        write(dst, "page.bin", secrets.token_bytes(50_000))
        ops = dl.encode_ops(dl.delta(dl.decode_signature(sig_msg.data), new))
        rc.send(ev.FileBegin("page.bin", 0o644, 1, len(new), True))
        rc.send(ev.FileData(ops))
        rc.send(ev.FileEnd(xxhash.xxh3_128_hexdigest(new)))
        rc.send(ev.End())
        done, seen = await rc.until(ev.Done)
        await rc.close()
    assert done.redo == ("page.bin",) and done.failed == ()
    assert not [e for e in seen if isinstance(e, ev.PathError)]
    assert (dst / "page.bin").read_bytes() != new  # nothing half-rebuilt was published
    assert temp_files(dst) == []


async def test_the_sender_resends_whole_what_the_receiver_could_not_rebuild(
    tmp_path: Path,
) -> None:
    """A hand-driven receiver (the server core over a socket) answers the first round with
    ``redo``; the sender must come back with the file whole."""
    import secrets as _s

    from pylamp.sync import delta as dl
    from pylamp.sync.protocol import encode_manifest

    src = tmp_path / "src"
    data = _s.token_bytes(30_000)
    write(src, "f.bin", data)
    rounds = 0

    def answer(e: ev.Event) -> list[ev.Event]:
        nonlocal rounds
        if isinstance(e, ev.Begin):
            row = ("f.bin", "f", 0o644, 1, len(data), "", "")
            return [ev.Manifest(True, False, encode_manifest([row] if not rounds else []))]
        if isinstance(e, ev.SigRequest):
            sig = dl.encode_signature(dl.signature(data))
            return [ev.Signature("f.bin", False, sig)]
        if isinstance(e, ev.End):
            rounds += 1
            return [ev.Done({}, (), ("f.bin",) if rounds == 1 else ())]
        return []

    async with hand_receiver(answer) as (address, got):
        [st] = await push(src, [address], key=KEY)
    assert st.ok, st
    begins = [e for e in got if isinstance(e, ev.Begin)]
    assert [b.want_manifest for b in begins] == [True, False]
    wholes = [e for e in got if isinstance(e, ev.File)]
    assert [(w.path, w.data) for w in wholes] == [("f.bin", data)]
    assert st.files_sent == 2


async def test_concurrent_pushes_to_one_receiver_do_not_interleave(tmp_path: Path) -> None:
    srcs = [tmp_path / "a", tmp_path / "b"]
    for i, src in enumerate(srcs):
        for n in range(40):
            write(src, f"d{n % 4}/f{n}.html", f"version {i} of file {n}\n" * 50)
        write(src, f"only-in-{i}.html", "x")
    dst = tmp_path / "dst"
    async with SyncReceiver(dst, key=KEY) as rx:
        results = await asyncio.gather(*(push(s, [rx.address], key=KEY) for s in srcs))
        assert all(r[0].ok for r in results)
        assert rx.pushes == 2
    final = snapshot(dst, times=False)
    assert final in (snapshot(srcs[0], times=False), snapshot(srcs[1], times=False))


async def test_messages_out_of_order_inside_a_file_end_the_push_cleanly(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst, "page.html", "old")
    async with SyncReceiver(dst, key=KEY) as rx:
        rc = await started(rx.address)
        rc.send(ev.FileBegin("a.html", 0o644, 1, 3, False))
        rc.send(ev.FileData(b"abc"))
        rc.send(file_event("page.html", b"new"))  # a whole file in the middle of another
        err, _ = await rc.until(ev.Error)
        await rc.close()
        assert "inside file 'a.html'" in err.message
        await _until(lambda: rx.failed_pushes == 1)
    assert (dst / "page.html").read_text() == "old"
    assert not (dst / "a.html").exists() and temp_files(dst) == []


def _deleted_files_open() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(" (deleted)"):
            out.append(target)
    return out


async def test_a_replaced_big_basis_is_closed_after_the_push(tmp_path: Path) -> None:
    # The receiver keeps a big replaced basis open until the push is answered (so freeing it
    # is off the sender's clock); it must then close it, not leak it.
    src, dst = tmp_path / "src", tmp_path / "dst"
    old = random.Random(7).randbytes(17 << 20)
    new = old[:5_000_000] + b"an edit" + old[5_000_000:]
    write(dst, "big.bin", old)
    write(src, "big.bin", new)
    async with SyncReceiver(dst, key=KEY) as rx:
        (st,) = await push(src, [rx.address], key=KEY)
        assert st.ok and st.matched_bytes > 0
        deadline = asyncio.get_running_loop().time() + 10
        while [p for p in _deleted_files_open() if "big.bin" in p]:
            assert asyncio.get_running_loop().time() < deadline, _deleted_files_open()
            await asyncio.sleep(0.01)
    assert (dst / "big.bin").read_bytes() == new
