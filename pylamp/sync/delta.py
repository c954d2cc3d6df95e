"""rsync's delta algorithm as three pure, streaming steps: signature, delta, patch.

- :func:`signature` cuts the old file into blocks (size from :func:`block_size_for`, rsync's rule)
  and records each block's weak rolling checksum and strong hash (xxh3-128).
- :func:`delta` walks the new file and emits :class:`Copy` (a run of old blocks) and
  :class:`Literal` (new bytes). While blocks keep matching it only hashes the next expected
  block; when that fails it searches every byte offset at once with numpy (weak checksums by
  cumulative sums, a bitmap filter, then the strong hash in offset order) and goes back to
  sequential matching after the next hit.
- :func:`patch` rebuilds the new file from the old one (read through a callback, so the core
  opens no files) and the operations.

All three take data as ``bytes`` or as an iterable of chunks and hold a bounded window, so
memory stays bounded whatever the file size. The wire encodings (varints; literal bytes kept
contiguous so zstd compresses them well) live here too, next to the types they encode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import xxhash

from pylamp.sync.rolling import weak_at_every_offset, weak_of_blocks

__all__ = [
    "LITERAL_MAX",
    "MAX_BLOCK_SIZE",
    "Copy",
    "DeltaStats",
    "Literal",
    "Op",
    "OpDecoder",
    "Signature",
    "block_size_for",
    "decode_ops",
    "decode_signature",
    "delta",
    "encode_op",
    "encode_ops",
    "encode_signature",
    "file_digest",
    "patch",
    "signature",
]

DIGEST_SIZE = 16
"""Bytes of one strong (xxh3-128) hash."""
BLOCK_SIZE = 700
"""rsync's default block size, used for files up to ``BLOCK_SIZE ** 2`` bytes."""
MAX_BLOCK_SIZE = 128 * 1024
"""rsync's largest block size (protocol 30+)."""
LITERAL_MAX = 256 * 1024
"""Largest :class:`Literal` that :func:`delta` emits; bounds memory on both sides."""

_SIG_VERSION = 1
_OP_COPY = 0
_OP_LITERAL = 1
PATCH_PIECE = 1 << 20  # bytes per read_old call in patch, at most
_SIG_BATCH = 1 << 18  # bytes hashed per vectorised signature step
_WINDOW_MAX = 1 << 18  # offsets searched per numpy step, at most
_HASH_MULT = np.uint32(0x9E3779B1)  # Fibonacci hashing of weak sums into the filter bitmap

_strong = xxhash.xxh3_128_digest


def block_size_for(length: int) -> int:
    """rsync's block size for a file of ``length`` bytes.

    700 bytes up to 490,000 bytes; beyond, the square root rounded down to a multiple of 8,
    at most 128 KiB. A block of about sqrt(size) balances signature size against the literal
    data one changed byte costs.
    """
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    if length <= BLOCK_SIZE * BLOCK_SIZE:
        return BLOCK_SIZE
    return min(max(math.isqrt(length) & ~7, BLOCK_SIZE), MAX_BLOCK_SIZE)


@dataclass(frozen=True, eq=False)
class Signature:
    """The old file's blocks: weak checksums (``uint32``) and strong hashes (16 bytes each).

    Block ``i`` covers old bytes ``[i * block_size, min((i + 1) * block_size, length))``; the
    last block may be shorter.
    """

    block_size: int
    length: int
    weak: np.ndarray
    strong: bytes

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ValueError(f"block size must be positive, got {self.block_size}")
        if self.length < 0:
            raise ValueError(f"length must not be negative, got {self.length}")
        count = -(-self.length // self.block_size)
        if len(self.weak) != count or len(self.strong) != count * DIGEST_SIZE:
            raise ValueError(
                f"signature of {self.length} bytes in blocks of {self.block_size} needs "
                f"{count} blocks, got {len(self.weak)} weak and "
                f"{len(self.strong) // DIGEST_SIZE} strong sums"
            )

    @property
    def count(self) -> int:
        """Number of blocks."""
        return len(self.weak)

    def block_length(self, index: int) -> int:
        """Length in bytes of block ``index`` (the last one may be short)."""
        return min(self.block_size, self.length - index * self.block_size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return (
            self.block_size == other.block_size
            and self.length == other.length
            and self.strong == other.strong
            and np.array_equal(self.weak, other.weak)
        )

    __hash__ = None  # type: ignore[assignment]

    @cached_property
    def _strongs(self) -> list[bytes]:
        s = self.strong
        return [s[i : i + DIGEST_SIZE] for i in range(0, len(s), DIGEST_SIZE)]

    @cached_property
    def _index(self) -> dict[int, tuple[int, ...]]:
        """Weak sum -> indices of the full-size blocks having it, ascending."""
        full = self.length // self.block_size
        index: dict[int, list[int]] = {}
        for i, w in enumerate(self.weak[:full].tolist()):
            index.setdefault(w, []).append(i)
        return {w: tuple(v) for w, v in index.items()}

    @cached_property
    def _filter(self) -> tuple[np.ndarray, int, np.ndarray]:
        """A bitmap over hashed weak sums (a cheap vectorised "maybe"), its shift, and the
        sorted distinct weak sums (the exact check) of the full-size blocks."""
        full = self.length // self.block_size
        bits = min(max((max(full, 1) * 64 - 1).bit_length(), 10), 22)
        table = np.zeros(1 << bits, dtype=np.bool_)
        shift = np.uint32(32 - bits)
        weaks = self.weak[:full]
        table[(weaks * _HASH_MULT) >> shift] = True
        return table, 32 - bits, np.unique(weaks)


@dataclass(frozen=True, slots=True)
class Copy:
    """Copy ``count`` consecutive old blocks starting at block ``start_block``."""

    start_block: int
    count: int


@dataclass(frozen=True, slots=True)
class Literal:
    """New bytes the old file does not have."""

    data: bytes


Op = Copy | Literal


@dataclass
class DeltaStats:
    """What a delta consisted of: bytes sent literally and bytes matched in the old file."""

    literal_bytes: int = 0
    matched_bytes: int = 0
    literal_ops: int = 0
    copy_ops: int = 0

    @property
    def total_bytes(self) -> int:
        """Size of the new file."""
        return self.literal_bytes + self.matched_bytes

    def add(self, other: DeltaStats) -> None:
        """Accumulate another file's statistics into this one."""
        self.literal_bytes += other.literal_bytes
        self.matched_bytes += other.matched_bytes
        self.literal_ops += other.literal_ops
        self.copy_ops += other.copy_ops


def _chunks(
    data: bytes | bytearray | memoryview | Iterable[bytes] | Iterable[memoryview],
) -> Iterator[bytes | memoryview]:
    if isinstance(data, bytes | bytearray | memoryview):
        return iter((data,))  # type: ignore[arg-type]
    return iter(data)


def signature(
    data: bytes | bytearray | memoryview | Iterable[bytes] | Iterable[memoryview],
    *,
    block_size: int | None = None,
    length: int | None = None,
) -> Signature:
    """The signature of the old file, read as ``bytes`` or as an iterable of chunks.

    The block size is ``block_size`` or, by default, :func:`block_size_for` of the length; for
    an iterable pass ``length`` (or ``block_size``) since the length is not known in advance.
    A ``length`` that the data does not match raises :class:`ValueError` (file changed while
    read). Any chunking gives the same signature.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        if length is None:
            length = len(data)
    elif block_size is None and length is None:
        raise ValueError("signature of a chunk stream needs length= or block_size=")
    if block_size is None:
        assert length is not None
        block_size = block_size_for(length)
    if block_size <= 0:
        raise ValueError(f"block size must be positive, got {block_size}")
    bs = block_size
    batch = max(bs, _SIG_BATCH // bs * bs)
    weaks: list[np.ndarray] = []
    strongs: list[bytes] = []
    total = 0
    pending = b""

    def take(buf: bytes | memoryview, end: int) -> None:
        mv = memoryview(buf)
        for start in range(0, end, batch):
            stop = min(start + batch, end)
            weaks.append(weak_of_blocks(mv[start:stop], bs))
            strongs.extend(_strong(mv[i : min(i + bs, stop)]) for i in range(start, stop, bs))

    for chunk in _chunks(data):
        total += len(chunk)
        buf = pending + chunk if pending else chunk
        whole = len(buf) // bs * bs
        if whole:
            take(buf, whole)
        pending = bytes(buf[whole:])
    if pending:
        take(pending, len(pending))
    if length is not None and total != length:
        raise ValueError(f"data is {total} bytes, expected {length}")
    weak = np.concatenate(weaks) if weaks else np.zeros(0, dtype=np.uint32)
    return Signature(bs, total, weak, b"".join(strongs))


def delta(
    sig: Signature,
    new: bytes | bytearray | memoryview | Iterable[bytes],
    *,
    stats: DeltaStats | None = None,
) -> Iterator[Op]:
    """Instructions that turn the old file (described by ``sig``) into ``new``.

    ``new`` is ``bytes`` or an iterable of chunks; the generator holds at most a search window
    (up to 256K offsets plus a block), a pending literal (under :data:`LITERAL_MAX`) and one
    chunk. Consecutive copied blocks come as one :class:`Copy`; literals come in pieces of at
    most :data:`LITERAL_MAX` bytes. When several blocks share a checksum, the one after the
    previous match is preferred, so repeated content maps to a single long copy.
    ``stats``, if given, is updated as the operations are produced.
    """
    st = stats if stats is not None else DeltaStats()
    chunks = _chunks(new)
    bs = sig.block_size
    n = sig.count
    last_len = sig.block_length(n - 1) if n else 0
    full = sig.length // bs
    strongs = sig._strongs if n else []
    index = sig._index if full else {}
    first_window = bs + 4096

    buf = b""
    mv = memoryview(b"")
    pos = 0  # next byte of buf to match
    lit = 0  # start of the pending literal in buf (lit <= pos)
    eof = False
    run_start = 0
    run_count = 0  # pending Copy run, flushed before any literal
    expected = 0
    window = first_window

    def fill(need: int) -> None:
        nonlocal buf, mv, pos, lit, eof
        have = len(buf) - pos
        if have >= need or eof:
            return
        parts: list[bytes | memoryview] = [mv[lit:]]
        while have < need:
            try:
                chunk = next(chunks)
            except StopIteration:
                eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        if len(parts) == 2 and not parts[0] and isinstance(parts[1], bytes):
            buf = parts[1]  # a single whole chunk: no copy
        else:
            buf = b"".join(parts)
        mv = memoryview(buf)
        pos -= lit
        lit = 0

    def flush(upto: int, everything: bool) -> Iterator[Op]:
        """Emit the pending copy run and the literal ``buf[lit:upto]`` (whole pieces only
        unless ``everything``)."""
        nonlocal lit, run_count
        if upto - lit < (1 if everything else LITERAL_MAX):
            return
        if run_count:
            yield Copy(run_start, run_count)
            st.copy_ops += 1
            run_count = 0
        while upto - lit >= LITERAL_MAX or (everything and upto > lit):
            size = min(upto - lit, LITERAL_MAX)
            yield Literal(bytes(mv[lit : lit + size]))
            st.literal_ops += 1
            st.literal_bytes += size
            lit += size

    def matched(block: int, at: int) -> Iterator[Op]:
        """Record a match of ``block`` at ``buf[at:]``, after flushing the literal before it."""
        nonlocal run_start, run_count, pos, lit, expected, window
        yield from flush(at, True)
        if run_count and run_start + run_count == block:
            run_count += 1
        else:
            if run_count:
                yield Copy(run_start, run_count)
                st.copy_ops += 1
            run_start, run_count = block, 1
        size = bs if block < n - 1 else last_len
        st.matched_bytes += size
        pos = at + size
        lit = pos
        expected = block + 1
        window = first_window

    while True:
        # Fast path: the block after the previous match, where unchanged data continues.
        if expected < n:
            blen = bs if expected < n - 1 else last_len
            if len(buf) - pos < blen:
                fill(blen)
            if len(buf) - pos >= blen and _strong(mv[pos : pos + blen]) == strongs[expected]:
                if pos == lit and run_count and run_start + run_count == expected:
                    # The common case, kept tight: the copy run just grows by one block.
                    run_count += 1
                    st.matched_bytes += blen
                    pos += blen
                    lit = pos
                    expected += 1
                    window = first_window
                else:
                    yield from matched(expected, pos)
                continue
        # Search every offset of a window for any full-size block.
        fill(window + bs - 1)
        avail = len(buf) - pos
        if avail < bs:  # only at the end: the short last block may still match the tail
            end = len(buf)
            if (
                n
                and last_len < bs
                and avail >= last_len
                and _strong(mv[end - last_len : end]) == strongs[n - 1]
            ):
                yield from matched(n - 1, end - last_len)
            yield from flush(len(buf), True)
            break
        width = min(window, avail - bs + 1)
        hit = _search(sig, index, mv, pos, width, expected) if index else None
        if hit is not None:
            yield from matched(hit[1], hit[0])
            continue
        pos += width
        window = min(window * 4, _WINDOW_MAX)
        yield from flush(pos, False)
    if run_count:
        yield Copy(run_start, run_count)
        st.copy_ops += 1


def _search(
    sig: Signature,
    index: dict[int, tuple[int, ...]],
    mv: memoryview,
    pos: int,
    width: int,
    expected: int,
) -> tuple[int, int] | None:
    """First offset in ``[pos, pos + width)`` where a full block of ``sig`` starts, and which
    block (preferring ``expected``), or None."""
    bs = sig.block_size
    weaks = weak_at_every_offset(mv[pos : pos + width + bs - 1], bs)
    table, shift, distinct = sig._filter
    maybe = np.flatnonzero(table[(weaks * _HASH_MULT) >> np.uint32(shift)])
    if len(maybe):
        cand = weaks[maybe]
        at_table = np.searchsorted(distinct, cand)
        at_table[at_table == len(distinct)] = 0
        maybe = maybe[distinct[at_table] == cand]
    if not len(maybe):
        return None
    strongs = sig._strongs
    for k, w in zip(maybe.tolist(), weaks[maybe].tolist(), strict=True):
        blocks = index.get(w)
        if blocks is None:
            continue
        at = pos + k
        h = _strong(mv[at : at + bs])
        if expected in blocks and strongs[expected] == h:
            return at, expected
        for b in blocks:
            if strongs[b] == h:
                return at, b
    return None


def patch(
    read_old: Callable[[int, int], bytes | memoryview],
    ops: Iterable[Op],
    sig: Signature,
) -> Iterator[bytes | memoryview]:
    """The new file, in pieces, from the old one and ``ops``.

    ``read_old(offset, size)`` returns ``size`` bytes of the old file at ``offset`` (the caller
    supplies the file, so this stays pure); ``sig`` is the old file's signature, for its block
    size and length. Copies are read in pieces of at most 1 MiB (``PATCH_PIECE``), so
    ``read_old`` may return a view of a reused buffer of that size: each piece is consumed
    before the next one is read. An operation that refers past the
    old file, or a short read, raises :class:`ValueError`.
    """
    bs = sig.block_size
    piece = max(bs, PATCH_PIECE // bs * bs)
    for op in ops:
        if isinstance(op, Literal):
            if op.data:
                yield op.data
        elif isinstance(op, Copy):
            if op.start_block < 0 or op.count < 1 or op.start_block + op.count > sig.count:
                raise ValueError(
                    f"copy of blocks {op.start_block}..{op.start_block + op.count - 1} "
                    f"from an old file of {sig.count} blocks"
                )
            offset = op.start_block * bs
            end = min((op.start_block + op.count) * bs, sig.length)
            while offset < end:
                size = min(piece, end - offset)
                data = read_old(offset, size)
                if len(data) != size:
                    raise ValueError(
                        f"old file gave {len(data)} bytes at offset {offset}, expected {size}"
                    )
                yield data
                offset += size
        else:
            raise TypeError(f"not a delta operation: {op!r}")


def file_digest(data: bytes | bytearray | memoryview | Iterable[bytes]) -> bytes:
    """Whole-file xxh3-128 hash, for verifying a rebuilt file (and ``--checksum``)."""
    h = xxhash.xxh3_128()
    for chunk in _chunks(data):
        h.update(chunk)
    return h.digest()


# ---------------------------------------------------------------------------------------------
# Wire encoding


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes | bytearray | memoryview, at: int) -> tuple[int, int] | None:
    """(value, next offset), or None if ``data`` ends inside the varint."""
    value = 0
    shift = 0
    while at < len(data):
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")
    return None


def encode_signature(sig: Signature) -> bytes:
    """Wire form: version, varint block size, varint length, then the weak sums (little-endian
    uint32) and the strong hashes."""
    head = bytes((_SIG_VERSION,)) + _varint(sig.block_size) + _varint(sig.length)
    return head + sig.weak.astype("<u4").tobytes() + sig.strong


def decode_signature(data: bytes | bytearray | memoryview) -> Signature:
    """Inverse of :func:`encode_signature`; malformed input raises :class:`ValueError`."""
    mv = memoryview(data)
    if not len(mv) or mv[0] != _SIG_VERSION:
        raise ValueError("not a signature (bad version byte)")
    r1 = _read_varint(mv, 1)
    if r1 is None:
        raise ValueError("truncated signature header")
    block_size, at = r1
    r2 = _read_varint(mv, at)
    if r2 is None:
        raise ValueError("truncated signature header")
    length, at = r2
    if not 0 < block_size <= 1 << 30:
        raise ValueError(f"signature block size {block_size} out of range")
    count = -(-length // block_size)
    need = at + count * (4 + DIGEST_SIZE)
    if len(mv) != need:
        raise ValueError(f"signature of {count} blocks needs {need} bytes, got {len(mv)}")
    weak = np.frombuffer(mv, dtype="<u4", count=count, offset=at).astype(np.uint32)
    strong = bytes(mv[at + 4 * count :])
    return Signature(block_size, length, weak, strong)


def encode_op(op: Op) -> bytes:
    """One operation: ``0, varint start, varint count`` or ``1, varint size, bytes``."""
    if isinstance(op, Copy):
        return bytes((_OP_COPY,)) + _varint(op.start_block) + _varint(op.count)
    if isinstance(op, Literal):
        return bytes((_OP_LITERAL,)) + _varint(len(op.data)) + op.data
    raise TypeError(f"not a delta operation: {op!r}")


def encode_ops(ops: Iterable[Op]) -> bytes:
    """Operations back to back (see :func:`encode_op`)."""
    return b"".join(encode_op(op) for op in ops)


class OpDecoder:
    """Incremental decoder of :func:`encode_ops` output, fed bytes as they arrive.

    Literals longer than ``max_literal`` are refused with :class:`ValueError` so a hostile
    peer cannot make the receiver buffer without bound.
    """

    def __init__(self, max_literal: int = 16 * LITERAL_MAX) -> None:
        self._buf = bytearray()
        self._max_literal = max_literal

    def feed(self, data: bytes | bytearray | memoryview) -> list[Op]:
        """Add bytes; return the operations completed by them."""
        self._buf += data
        out: list[Op] = []
        buf = self._buf
        at = 0
        while at < len(buf):
            tag = buf[at]
            if tag == _OP_COPY:
                r1 = _read_varint(buf, at + 1)
                r2 = _read_varint(buf, r1[1]) if r1 is not None else None
                if r1 is None or r2 is None:
                    break
                if r2[0] < 1:
                    raise ValueError("copy of zero blocks")
                out.append(Copy(r1[0], r2[0]))
                at = r2[1]
            elif tag == _OP_LITERAL:
                r = _read_varint(buf, at + 1)
                if r is None:
                    break
                size, start = r
                if size > self._max_literal:
                    raise ValueError(f"literal of {size} bytes exceeds {self._max_literal}")
                if len(buf) < start + size:
                    break
                out.append(Literal(bytes(buf[start : start + size])))
                at = start + size
            else:
                raise ValueError(f"unknown delta operation tag {tag}")
        del buf[:at]
        return out

    def close(self) -> None:
        """Raise :class:`ValueError` if the stream stopped inside an operation."""
        if self._buf:
            raise ValueError(f"delta stream ends inside an operation ({len(self._buf)} bytes)")


def decode_ops(data: bytes | bytearray | memoryview) -> list[Op]:
    """Inverse of :func:`encode_ops`; malformed or truncated input raises :class:`ValueError`."""
    dec = OpDecoder()
    ops = dec.feed(data)
    dec.close()
    return ops
