"""The receiver's file list on the wire: the compact manifest encoding of :mod:`.protocol`,
its round trip, and what hostile or broken bytes do (a clear error, nothing touched)."""

from __future__ import annotations

import os
import random
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_trees import KEY, RawClient, hand_receiver, write

from pylamp.sync import events as ev
from pylamp.sync import push
from pylamp.sync.manifest import Row, compare, scan, sorted_rows
from pylamp.sync.protocol import (
    ProtocolError,
    decode_manifest,
    encode_manifest,
)

# Names as os.scandir gives them: any text without NUL or "/", including the lone surrogates
# that stand for bytes that are not UTF-8 (surrogateescape).
_char = st.one_of(
    st.characters(blacklist_characters="\0/"),  # no surrogates by default
    st.sampled_from([chr(c) for c in range(0xDC80, 0xDD00)]),
)
_name = st.text(_char, min_size=1, max_size=12)
_path = st.lists(_name, min_size=1, max_size=3).map("/".join)


@st.composite
def _rows(draw: st.DrawFn) -> list[Row]:
    paths = draw(st.lists(_path, max_size=40, unique=True))
    rows: list[Row] = []
    for p in paths:
        kind = draw(st.sampled_from("fdl"))
        rows.append(
            (
                p,
                kind,
                draw(st.integers(0, 0o7777)),
                draw(st.integers(-(2**63), 2**63 - 1)),
                draw(st.integers(0, 2**64 - 1)) if kind == "f" else 0,
                draw(st.text(_char, max_size=20)) if kind == "l" else "",
                draw(st.sampled_from(["", "0123456789abcdef" * 2])) if kind == "f" else "",
            )
        )
    return rows


@settings(max_examples=100, deadline=None)
@given(_rows())
def test_manifest_rows_round_trip(rows: list[Row]) -> None:
    data = encode_manifest(rows)
    assert decode_manifest(data) == {r[0]: r for r in rows}


@settings(max_examples=100, deadline=None)
@given(_rows(), st.randoms())
def test_equal_trees_encode_to_equal_bytes_whatever_their_order(
    rows: list[Row], rnd: random.Random
) -> None:
    """What the sender's shortcut rests on: sorted rows make the encoding canonical, and
    decoding it gives the tree back."""
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    mine, theirs = {r[0]: r for r in rows}, {r[0]: r for r in shuffled}
    data = encode_manifest(sorted_rows(theirs))
    assert encode_manifest(sorted_rows(mine)) == data
    assert decode_manifest(data) == mine


async def test_the_receiver_lists_its_rows_sorted_and_an_unchanged_push_needs_no_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pylamp.sync.sender as sender
    from pylamp.sync import SyncReceiver

    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ["z.html", "a/b.css", "m.js", "a/a.png", "B.txt", "é.html"]:
        write(src, name, name)
    async with SyncReceiver(dst, key=KEY) as rx:
        [first] = await push(src, [rx.address], key=KEY)
        assert first.ok and first.files_sent == 6
        rc = RawClient()
        await rc.connect(rx.address)
        rc.send(ev.Begin(True, False, True, ()))
        listed = await rc.next()
        assert isinstance(listed, ev.Manifest)
        paths = list(decode_manifest(listed.rows))
        assert paths == sorted(paths) and len(paths) == 8  # ".", "a" and the 6 files
        rc.send(ev.End())
        await rc.until(ev.Done)
        await rc.close()

        def refuse(data: bytes) -> dict[str, Row]:
            raise AssertionError("decoded a list equal to the tree")

        monkeypatch.setattr(sender, "decode_manifest", refuse)
        [again] = await push(src, [rx.address], key=KEY)
        assert again.ok and again.files_sent == 0 and again.unchanged == 8
        write(src, "m.js", "changed")  # now the lists differ: the push decodes the receiver's
        with pytest.raises(AssertionError, match="decoded a list"):
            await push(src, [rx.address], key=KEY)


def test_a_scanned_tree_round_trips_with_links_digests_and_odd_names(tmp_path: Path) -> None:
    write(tmp_path, "d/page.html", "hello")
    write(tmp_path, "empty", "")
    os.symlink("d/page.html", tmp_path / "link")
    os.symlink("/nowhere/ünïcode", tmp_path / "dangling")
    (tmp_path / os.fsdecode(b"latin1-\xe9.html")).write_text("not UTF-8 as a name")
    os.utime(tmp_path / "empty", ns=(-(10**18), -(10**18)))  # before 1970
    found = scan(tmp_path, checksum=True).entries
    assert os.fsdecode(b"latin1-\xe9.html") in found
    decoded = decode_manifest(encode_manifest(list(found.values())))
    assert decoded == found
    assert all(type(r) is tuple for r in decoded.values())  # plain rows, as scan gives
    assert compare(found, decoded).empty


def test_an_empty_list_round_trips() -> None:
    assert decode_manifest(encode_manifest([])) == {}


def test_rows_that_do_not_fit_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_manifest([("a", "f", 0o644, 1, -1, "", "")])
    with pytest.raises(ValueError, match="out of range"):
        encode_manifest([("a", "f", 1 << 16, 1, 1, "", "")])
    with pytest.raises(ValueError, match="one character"):
        encode_manifest([("a", "file", 0o644, 1, 1, "", "")])


_GOOD = encode_manifest(
    [
        (".", "d", 0o755, 5, 0, "", ""),
        ("a.html", "f", 0o644, 7, 3, "", ""),
        ("l", "l", 0o777, 9, 0, "a.html", ""),
    ]
)


def _with_head(version: int, count: int, rest: bytes) -> bytes:
    return struct.pack("<BI", version, count) + rest


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated header"),
        (b"\x01\x03\x00", "truncated header"),
        (_with_head(2, 3, _GOOD[5:]), "unsupported encoding version 2"),
        (_with_head(1, 40, _GOOD[5:]), "too short for 40 rows"),
        (_with_head(1, 4, _GOOD[5:]), "unknown entry kind"),  # reads text as kinds
        (_with_head(1, 2**32 - 1, b""), "too short"),
        (_GOOD[:5] + b"x" + _GOOD[6:], "unknown entry kind"),
        (_GOOD[:5] + b"\xff" + _GOOD[6:], "unknown entry kind"),
        (_GOOD + b"\0extra", "10 strings for 3 rows"),
        (_GOOD[:-1], "8 strings for 3 rows"),
        (_GOOD.replace(b"a.html\0l", b"a.html\0a.html"), "listed twice"),
        (_with_head(1, 0, b"junk"), "bytes after an empty list"),
        (_GOOD.replace(b"a.html\0l", b"a.htm\xc3\0l"), "bad UTF-8"),
        (encode_manifest([("", "f", 0, 0, 0, "", "")]), "empty path"),
    ],
)
def test_malformed_manifests_are_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_manifest(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, len(_GOOD)))
def test_garbage_and_cut_manifests_never_raise_anything_else(junk: bytes, cut: int) -> None:
    for data in (junk, _GOOD[:cut], _GOOD[:cut] + junk, b"\x01" + junk):
        try:
            out = decode_manifest(data)
        except ProtocolError:
            continue
        assert all(type(r) is tuple and len(r) == 7 and r[1] in "fdl" for r in out.values())


async def test_a_receiver_sending_a_broken_manifest_fails_the_push_and_gets_nothing(
    tmp_path: Path,
) -> None:
    """A hand-driven receiver answers Begin with a malformed list: the push fails with an error
    that says so, and the sender sends it nothing of a file, no deletion, nothing at all."""
    src = tmp_path / "src"
    write(src, "page.html", "content")
    bad = _GOOD[:5] + b"?" + _GOOD[6:]

    def answer(e: ev.Event) -> list[ev.Event]:
        return [ev.Manifest(True, False, bad)] if isinstance(e, ev.Begin) else []

    async with hand_receiver(answer) as (address, got):
        [result] = await push(src, [address], key=KEY)
    assert not result.ok and "malformed manifest: unknown entry kind" in (result.error or "")
    assert [type(e) for e in got] == [ev.Auth, ev.Begin]
    assert (src / "page.html").read_text() == "content"


async def test_a_missing_source_still_fails_the_push_when_no_receiver_is_up(
    tmp_path: Path,
) -> None:
    """The source is scanned once a receiver has been asked for its list; with every receiver
    down the scan still runs, so a bad source is reported as before."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(FileNotFoundError):
        await push(tmp_path / "missing", [("127.0.0.1", port)], key=KEY)
