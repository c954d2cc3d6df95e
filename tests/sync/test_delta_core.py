"""signature -> delta -> patch round trips, streaming, wire encodings and bad input."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.sync.delta import (
    LITERAL_MAX,
    Copy,
    DeltaStats,
    Literal,
    OpDecoder,
    Signature,
    block_size_for,
    decode_ops,
    decode_signature,
    delta,
    encode_ops,
    encode_signature,
    file_digest,
    patch,
    signature,
)
from pylamp.sync.rolling import weak_of_blocks

# ---------------------------------------------------------------------------------------------
# helpers


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut into chunks of the given sizes (cycled), including empty chunks."""
    out: list[bytes] = []
    at = 0
    i = 0
    while at < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        out.append(data[at : at + size])
        at += size
        i += 1
    return out


def _apply(old: bytes, sig: Signature, ops: list[Copy | Literal]) -> bytes:
    return b"".join(patch(lambda off, size: old[off : off + size], ops, sig))


def _roundtrip(old: bytes, new: bytes, block: int | None, chunks: list[int]) -> list:
    sig = signature(_split(old, chunks), block_size=block or block_size_for(len(old)))
    stats = DeltaStats()
    ops = list(delta(sig, _split(new, chunks), stats=stats))
    assert _apply(old, sig, ops) == new
    assert stats.total_bytes == len(new)
    assert stats.literal_bytes == sum(len(op.data) for op in ops if isinstance(op, Literal))
    assert decode_ops(encode_ops(ops)) == ops
    for op in ops:
        if isinstance(op, Literal):
            assert 0 < len(op.data) <= LITERAL_MAX
    return ops


# Data with lots of repetition (small alphabet, repeated runs) and edits that shift it.
_byte_runs = st.lists(
    st.tuples(st.binary(min_size=1, max_size=40), st.integers(1, 8)), max_size=12
).map(lambda runs: b"".join(chunk * times for chunk, times in runs))


@st.composite
def _edited(draw: st.DrawFn) -> tuple[bytes, bytes]:
    old = draw(st.one_of(st.binary(max_size=3000), _byte_runs))
    new = bytearray(old)
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["insert", "delete", "overwrite", "move", "dup"]))
        at = draw(st.integers(0, len(new)))
        size = draw(st.integers(0, 200))
        if kind == "insert":
            new[at:at] = draw(st.binary(min_size=size, max_size=size))
        elif kind == "delete":
            del new[at : at + size]
        elif kind == "overwrite":
            piece = draw(st.binary(min_size=size, max_size=size))
            new[at : at + len(piece)] = piece
        elif kind == "move":
            piece = new[at : at + size]
            del new[at : at + size]
            to = draw(st.integers(0, len(new)))
            new[to:to] = piece
        else:
            new[at:at] = new[at : at + size]
    return old, bytes(new)


_blocks = st.one_of(st.none(), st.integers(1, 80))
_chunkings = st.lists(st.integers(1, 500), max_size=4)


# ---------------------------------------------------------------------------------------------
# block size


def test_block_size_is_rsyncs() -> None:
    assert block_size_for(0) == 700
    assert block_size_for(490_000) == 700
    assert block_size_for(490_001) == 696 or block_size_for(490_001) == 700
    assert block_size_for(1_000_000) == 1000
    assert block_size_for(512 * 1024 * 1024) == 23168
    assert block_size_for(2 * 1024**3) % 8 == 0
    assert block_size_for(1 << 40) == 128 * 1024
    with pytest.raises(ValueError):
        block_size_for(-1)


def test_block_size_never_below_700() -> None:
    # isqrt(490_001) is 700, rounded down to a multiple of 8 is 696: rsync keeps 700.
    assert block_size_for(490_001) == 700


# ---------------------------------------------------------------------------------------------
# round trips


@settings(max_examples=150, deadline=None)
@given(_edited(), _blocks, _chunkings)
def test_roundtrip_edits(pair: tuple[bytes, bytes], block: int | None, chunks: list[int]) -> None:
    old, new = pair
    _roundtrip(old, new, block, chunks)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000), st.binary(max_size=2000), _blocks, _chunkings)
def test_roundtrip_arbitrary(old: bytes, new: bytes, block: int | None, chunks: list[int]) -> None:
    _roundtrip(old, new, block, chunks)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"", b""),
        (b"", b"new file"),
        (b"old file", b""),
        (b"short", b"short"),
        (b"short", b"xxshort"),
        (b"short", b"shortxx"),
        (b"a" * 2100, b"a" * 2100),
        (b"a" * 2100, b"a" * 1543),
        (b"a" * 2100, b"b" + b"a" * 2100),
    ],
)
def test_edge_cases(old: bytes, new: bytes) -> None:
    for block in (None, 1, 3, 700):
        for chunks in ([], [1], [7, 1000]):
            _roundtrip(old, new, block, chunks)


def test_unchanged_file_is_one_copy() -> None:
    old = random.Random(1).randbytes(100_000)
    ops = _roundtrip(old, old, None, [4096])
    assert ops == [Copy(0, -(-len(old) // 700))]


def test_short_file_matches_its_only_block() -> None:
    ops = _roundtrip(b"hello world", b"hello world", None, [])
    assert ops == [Copy(0, 1)]
    # The short last block is matched at the end after a shifted insert, as rsync does.
    ops = _roundtrip(b"hello world", b"well, hello world", None, [])
    assert ops == [Literal(b"well, "), Copy(0, 1)]


def test_shifted_insert_and_delete_only_send_the_edit() -> None:
    rng = random.Random(2)
    old = rng.randbytes(200_000)
    inserted = old[:50_000] + b"INSERTED" + old[50_000:150_000] + old[151_000:]
    stats = DeltaStats()
    sig = signature(old)
    ops = list(delta(sig, inserted, stats=stats))
    assert _apply(old, sig, ops) == inserted
    # Each edit costs at most one block plus itself.
    assert stats.literal_bytes <= 2 * 700 + len(b"INSERTED")


def test_repeated_blocks_prefer_the_next_block() -> None:
    old = b"z" * 7000  # ten identical blocks
    sig = signature(old)
    ops = list(delta(sig, b"y" + old))
    assert ops == [Literal(b"y"), Copy(0, 10)]


def test_literals_are_bounded_and_memory_streams() -> None:
    rng = random.Random(3)
    old = rng.randbytes(300_000)
    new = rng.randbytes(3 * LITERAL_MAX + 5)
    sig = signature(old)
    ops = list(delta(sig, _split(new, [65536])))
    assert all(isinstance(op, Literal) and len(op.data) <= LITERAL_MAX for op in ops)
    assert b"".join(op.data for op in ops if isinstance(op, Literal)) == new


def test_large_file_block_size_and_scattered_edits() -> None:
    rng = random.Random(4)
    old = rng.randbytes(3_000_000)  # block size 1728
    new = bytearray(old)
    for at in sorted(rng.sample(range(len(old) - 2000), 10), reverse=True):
        if at % 2:
            new[at : at + 500] = rng.randbytes(500)
        else:
            new[at:at] = rng.randbytes(300)
    sig = signature(_split(old, [1 << 16]), length=len(old))
    assert sig.block_size == 1728
    stats = DeltaStats()
    ops = list(delta(sig, _split(bytes(new), [1 << 16]), stats=stats))
    assert _apply(old, sig, ops) == bytes(new)
    assert stats.literal_bytes < 10 * (2 * 1728 + 500)


# ---------------------------------------------------------------------------------------------
# signatures


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4000), st.integers(1, 90), _chunkings)
def test_signature_any_chunking_equals_one_shot(data: bytes, block: int, chunks: list[int]) -> None:
    one = signature(data, block_size=block)
    streamed = signature(_split(data, chunks), block_size=block)
    assert streamed == one
    assert one.count == -(-len(data) // block)
    assert one.weak.tolist() == weak_of_blocks(data, block).tolist()
    assert decode_signature(encode_signature(one)) == one


def test_signature_of_stream_needs_a_length() -> None:
    with pytest.raises(ValueError, match="length"):
        signature(iter([b"abc"]))
    with pytest.raises(ValueError, match="expected 4"):
        signature(iter([b"abc"]), length=4)
    assert signature(iter([b"ab", b"c"]), length=3) == signature(b"abc")


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x02", b"\x01", b"\x01\x80", b"\x01\x00\x05", b"\x01\x04\x05" + b"\0" * 19],
)
def test_bad_signature_is_refused(blob: bytes) -> None:
    with pytest.raises(ValueError):
        decode_signature(blob)


def test_signature_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="blocks"):
        Signature(4, 9, np.zeros(2, dtype=np.uint32), b"\0" * 32)


# ---------------------------------------------------------------------------------------------
# patch and operation decoding


def test_patch_refuses_copies_past_the_old_file() -> None:
    old = b"x" * 1000
    sig = signature(old)
    assert sig.count == 2
    with pytest.raises(ValueError, match=r"blocks 1\.\.2"):
        list(patch(lambda o, s: old[o : o + s], [Copy(1, 2)], sig))
    with pytest.raises(ValueError, match="expected"):
        list(patch(lambda o, s: b"", [Copy(0, 1)], sig))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(Copy, st.integers(0, 1 << 40), st.integers(1, 1 << 20)),
            st.builds(Literal, st.binary(min_size=1, max_size=300)),
        ),
        max_size=20,
    ),
    st.lists(st.integers(1, 50), max_size=3),
)
def test_op_decoder_any_feeding(ops: list[Copy | Literal], cuts: list[int]) -> None:
    wire = encode_ops(ops)
    dec = OpDecoder()
    got: list[Copy | Literal] = []
    for piece in _split(wire, cuts):
        got.extend(dec.feed(piece))
    dec.close()
    assert got == ops


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x07", "tag"),
        (b"\x00\x01", "inside"),
        (b"\x01\x05ab", "inside"),
        (b"\x00\x01\x00", "zero"),
    ],
)
def test_bad_ops_are_refused(wire: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_ops(wire)


def test_op_decoder_bounds_literals() -> None:
    dec = OpDecoder(max_literal=10)
    with pytest.raises(ValueError, match="exceeds"):
        dec.feed(b"\x01\x0b")


def test_file_digest_streams() -> None:
    data = random.Random(5).randbytes(10_000)
    assert file_digest(data) == file_digest(_split(data, [333]))
    assert file_digest(data) != file_digest(data[:-1])
    assert len(file_digest(b"")) == 16


def test_memory_stays_bounded_whatever_the_file_size() -> None:
    """Signature and delta of a 32 MiB file read in 1 MiB chunks hold a few MiB at a time."""
    mib = 1 << 20
    chunks = 32

    def stream(edited: set[int]) -> Iterator[bytes]:
        for i in range(chunks):
            data = np.random.default_rng(i).bytes(mib)
            if i in edited:  # a shifted rewrite in the middle of the chunk
                data = data[: mib // 2] + np.random.default_rng(1000 + i).bytes(mib // 3)
            yield data

    tracemalloc.start()
    try:
        sig = signature(stream(set()), length=chunks * mib)
        _, peak_sig = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        stats = DeltaStats()
        for _op in delta(sig, stream({5, 17}), stats=stats):
            pass
        _, peak_delta = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.literal_bytes >= 2 * (mib // 3)
    assert stats.matched_bytes > 28 * mib
    assert peak_sig < 12 * mib, peak_sig
    assert peak_delta < 12 * mib, peak_delta
