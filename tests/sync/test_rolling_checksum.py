"""rsync's weak checksum: scalar reference, rolling update and the vectorised forms agree."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.sync.rolling import roll, weak, weak_at_every_offset, weak_of_blocks


def _reference(block: bytes) -> int:
    """rsync's get_checksum1 loop, byte by byte (CHAR_OFFSET 0)."""
    s1 = s2 = 0
    for b in block:
        s1 += b
        s2 += s1
    return (s1 & 0xFFFF) | (s2 & 0xFFFF) << 16


def test_known_values() -> None:
    assert weak(b"") == 0
    assert weak(b"\x01") == 1 | 1 << 16
    # s1 = 1+2+3 = 6, s2 = 1 + 3 + 6 = 10
    assert weak(b"\x01\x02\x03") == 6 | 10 << 16
    big = b"\xff" * 100_000
    assert weak(big) == _reference(big)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000))
def test_weak_matches_reference(data: bytes) -> None:
    assert weak(data) == _reference(data)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=2, max_size=600), st.integers(1, 64))
def test_roll_slides_window(data: bytes, block: int) -> None:
    if block >= len(data):
        block = len(data) - 1
    value = weak(data[:block])
    for k in range(len(data) - block):
        value = roll(value, data[k], data[k + block], block)
        assert value == weak(data[k + 1 : k + 1 + block])


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 300))
def test_every_offset_matches_scalar(data: bytes, block: int) -> None:
    got = weak_at_every_offset(data, block)
    assert got.dtype == np.uint32
    want = [_reference(data[k : k + block]) for k in range(len(data) - block + 1)]
    assert got.tolist() == want


def test_every_offset_large_block_wraps_correctly() -> None:
    data = bytes(range(256)) * 1200  # s1 and s2 overflow 16 bits many times
    block = 70_000
    got = weak_at_every_offset(data, block)
    for k in (0, 1, 12345, len(data) - block):
        assert int(got[k]) == _reference(data[k : k + block])


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 400))
def test_blocks_match_scalar(data: bytes, block: int) -> None:
    got = weak_of_blocks(data, block).tolist()
    want = [_reference(data[i : i + block]) for i in range(0, len(data), block)]
    assert got == want


def test_bad_block_size_is_refused() -> None:
    for f in (weak_at_every_offset, weak_of_blocks):
        try:
            f(b"abc", 0)
        except ValueError as e:
            assert "block size" in str(e)
        else:
            raise AssertionError(f"{f.__name__} accepted block size 0")
