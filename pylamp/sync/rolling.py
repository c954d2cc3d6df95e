"""rsync's weak rolling checksum, scalar and numpy-vectorised.

The weak checksum of a block ``x[0:n]`` is rsync's ``get_checksum1`` with ``CHAR_OFFSET`` 0::

    s1 = sum(x[i])              mod 2**16
    s2 = sum((n - i) * x[i])    mod 2**16      (the sum of the running s1)
    weak = s1 | s2 << 16

It rolls: dropping the first byte and appending a new one updates both sums in O(1), which is
what lets the sender test every byte offset of a new file against the old file's blocks.

Everything here is pure arithmetic on bytes; the vectorised forms work in ``uint16`` so numpy's
wrap-around is exactly the ``mod 2**16`` rsync wants.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "roll",
    "weak",
    "weak_at_every_offset",
    "weak_of_blocks",
]

_MASK = 0xFFFF


def weak(block: bytes | bytearray | memoryview) -> int:
    """rsync's weak checksum of one block (``s1 | s2 << 16``)."""
    x = np.frombuffer(block, dtype=np.uint8)
    n = len(x)
    if n == 0:
        return 0
    s1 = int(x.sum(dtype=np.uint64)) & _MASK
    weights = np.arange(n, 0, -1, dtype=np.uint64)
    s2 = int(np.dot(x.astype(np.uint64), weights)) & _MASK
    return s1 | s2 << 16


def roll(checksum: int, out_byte: int, in_byte: int, block_len: int) -> int:
    """Slide a ``block_len``-byte window by one byte: drop ``out_byte``, append ``in_byte``.

    ``roll(weak(x[k:k+n]), x[k], x[k+n], n) == weak(x[k+1:k+n+1])``.
    """
    s1 = checksum & _MASK
    s2 = checksum >> 16
    s1 = (s1 - out_byte + in_byte) & _MASK
    s2 = (s2 - block_len * out_byte + s1) & _MASK
    return s1 | s2 << 16


def weak_at_every_offset(data: bytes | bytearray | memoryview, block: int) -> np.ndarray:
    """Weak checksums of ``data[k:k+block]`` for every ``k`` in ``0..len(data)-block``.

    Two cumulative sums replace the byte-by-byte roll: with ``C1[i] = sum(x[:i])`` and
    ``CC[i] = C1[0] + ... + C1[i]``, ``s1(k) = C1[k+block] - C1[k]`` and
    ``s2(k) = CC[k+block] - CC[k] - block * C1[k]``, all mod 2**16. Returns ``uint32``.
    """
    if block <= 0:
        raise ValueError(f"block size must be positive, got {block}")
    x = np.frombuffer(data, dtype=np.uint8)
    count = len(x) - block + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint32)
    c1 = np.empty(len(x) + 1, dtype=np.uint16)
    c1[0] = 0
    np.cumsum(x, dtype=np.uint16, out=c1[1:])
    cc = np.cumsum(c1, dtype=np.uint16)
    head = c1[:count]
    s1 = c1[block:] - head
    s2 = cc[block:] - cc[:count] - np.uint16(block & _MASK) * head
    out = s2.astype(np.uint32)
    out <<= 16
    out |= s1
    return out


def weak_of_blocks(data: bytes | bytearray | memoryview, block: int) -> np.ndarray:
    """Weak checksums of consecutive blocks ``data[0:block]``, ``data[block:2*block]``, ...

    The last block may be shorter; it gets the checksum of its own length, as rsync does.
    Used to build signatures: a row sum for s1 and one ``uint16`` dot product for s2.
    """
    if block <= 0:
        raise ValueError(f"block size must be positive, got {block}")
    x = np.frombuffer(data, dtype=np.uint8)
    full = len(x) // block
    tail = len(x) - full * block
    out = np.empty(full + (1 if tail else 0), dtype=np.uint32)
    if full:
        matrix = x[: full * block].reshape(full, block)
        weights = (np.arange(block, 0, -1, dtype=np.uint32) & _MASK).astype(np.uint16)
        s2 = np.einsum("ij,j->i", matrix, weights)  # uint16: wraps mod 2**16
        s1 = matrix.sum(axis=1, dtype=np.uint16)  # wraps mod 2**16
        out[:full] = s2
        out[:full] <<= 16
        out[:full] |= s1
    if tail:
        out[full] = weak(data[full * block :])
    return out
