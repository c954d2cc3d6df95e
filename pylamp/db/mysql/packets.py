"""MySQL packet framing and the protocol's basic data types, without I/O.

A MySQL packet is a 3-byte little-endian payload length, a 1-byte sequence id and the payload.
Payloads of 0xFFFFFF bytes or more are split into 0xFFFFFF-byte pieces followed by a shorter
(possibly empty) one, each piece taking the next sequence id. Length-encoded integers and strings
are the protocol's variable-width encodings ("lenenc"): one byte below 0xFB, else a 0xFC/0xFD/0xFE
prefix with 2, 3 or 8 bytes; 0xFB alone means NULL in a text row.
"""

from __future__ import annotations

import struct

__all__ = [
    "MAX_PAYLOAD",
    "NULL_MARKER",
    "PacketReader",
    "ProtocolError",
    "append_packet",
    "frame_packets",
    "lenenc_bytes",
    "lenenc_int",
    "next_seq",
    "read_fixed_int",
    "read_lenenc_bytes",
    "read_lenenc_int",
    "read_nul_bytes",
]

MAX_PAYLOAD = 0xFFFFFF
"""Largest payload of a single physical packet; longer payloads are split."""

NULL_MARKER = 0xFB
"""The byte that stands for NULL in a text result row."""

_HEADER = struct.Struct("<I")
# lenenc prefixes for short lengths, precomputed: one bytes object per value below 251.
_LEN1 = [bytes((n,)) for n in range(251)]


class ProtocolError(Exception):
    """The peer sent bytes that are not valid MySQL protocol here.

    ``errno`` and ``sqlstate`` are the MySQL error the server reports before it closes the
    connection (1835 ER_MALFORMED_PACKET unless a more precise one applies).
    """

    def __init__(self, message: str, errno: int = 1835, sqlstate: str = "HY000") -> None:
        super().__init__(message)
        self.errno = errno
        self.sqlstate = sqlstate


def lenenc_int(value: int) -> bytes:
    """Encode ``value`` (0 <= value < 2**64) as a length-encoded integer."""
    if value < 251:
        return _LEN1[value]
    if value < 0x10000:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 0x1000000:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def lenenc_bytes(value: bytes) -> bytes:
    """Encode ``value`` as a length-encoded string (lenenc length, then the bytes)."""
    n = len(value)
    if n < 251:
        return _LEN1[n] + value
    return lenenc_int(n) + value


def _need(buf: bytes, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise ProtocolError(f"packet truncated: need {n} bytes at offset {pos}, have {len(buf)}")


def read_fixed_int(buf: bytes, pos: int, size: int) -> tuple[int, int]:
    """Read a ``size``-byte little-endian integer at ``pos``; return it and the next offset."""
    _need(buf, pos, size)
    return int.from_bytes(buf[pos : pos + size], "little"), pos + size


def read_lenenc_int(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a length-encoded integer at ``pos``; return it and the next offset."""
    _need(buf, pos, 1)
    first = buf[pos]
    if first < 251:
        return first, pos + 1
    if first == 0xFC:
        return read_fixed_int(buf, pos + 1, 2)
    if first == 0xFD:
        return read_fixed_int(buf, pos + 1, 3)
    if first == 0xFE:
        return read_fixed_int(buf, pos + 1, 8)
    raise ProtocolError(f"invalid length-encoded integer prefix 0x{first:02x}")


def read_lenenc_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read a length-encoded string at ``pos``; return it and the next offset."""
    n, pos = read_lenenc_int(buf, pos)
    _need(buf, pos, n)
    return buf[pos : pos + n], pos + n


def read_nul_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read a NUL-terminated string at ``pos``; return it (without the NUL) and the next offset."""
    end = buf.find(b"\0", pos)
    if end < 0:
        raise ProtocolError("NUL-terminated string without its NUL")
    return buf[pos:end], end + 1


def append_packet(out: bytearray, payload: bytes, seq: int) -> int:
    """Append ``payload`` framed as packet(s) to ``out``; return the next sequence id."""
    n = len(payload)
    if n < MAX_PAYLOAD:
        out += _HEADER.pack(n | (seq << 24))
        out += payload
        return (seq + 1) & 0xFF
    pos = 0
    while True:
        piece = payload[pos : pos + MAX_PAYLOAD]
        out += _HEADER.pack(len(piece) | (seq << 24))
        out += piece
        seq = (seq + 1) & 0xFF
        pos += MAX_PAYLOAD
        if len(piece) < MAX_PAYLOAD:
            return seq


def next_seq(first_seq: int, payload_len: int) -> int:
    """Sequence id following a payload of ``payload_len`` bytes that started at ``first_seq``."""
    return (first_seq + payload_len // MAX_PAYLOAD + 1) & 0xFF


def frame_packets(payloads: list[bytes], seq: int) -> tuple[bytes, int]:
    """Frame several payloads with consecutive sequence ids; return the bytes and the next id."""
    out = bytearray()
    for payload in payloads:
        seq = append_packet(out, payload, seq)
    return bytes(out), seq


class PacketReader:
    """Reassembles logical packets (payload, first sequence id) from a byte stream.

    ``max_payload`` bounds a logical packet (MySQL's max_allowed_packet): a header announcing
    more raises :class:`ProtocolError` at once, before the bytes arrive, so a hostile length
    cannot make the server buffer without limit.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_payload: int = 64 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._max = max_payload

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""
        return len(self._buf)

    def next_packet(self) -> tuple[int, bytes] | None:
        """Return ``(first sequence id, payload)`` of the next complete packet, or None.

        A payload of ``n`` bytes arrived in ``n // MAX_PAYLOAD + 1`` pieces, so the sequence id
        that follows it is the first one plus that count (see :func:`next_seq`).
        """
        buf = self._buf
        if len(buf) < 4:
            return None
        header = _HEADER.unpack_from(buf, 0)[0]
        n = header & 0xFFFFFF
        if n < MAX_PAYLOAD:
            if n > self._max:
                raise ProtocolError(
                    f"packet of {n} bytes exceeds max_allowed_packet {self._max}", 1153, "08S01"
                )
            end = 4 + n
            if len(buf) < end:
                return None
            payload = bytes(buf[4:end])
            del buf[:end]
            return header >> 24, payload
        return self._next_split_packet()

    def _next_split_packet(self) -> tuple[int, bytes] | None:
        buf = self._buf
        pos = 0
        pieces: list[tuple[int, int]] = []
        total = 0
        first_seq = buf[3]
        expected = first_seq
        while True:
            if len(buf) < pos + 4:
                return None
            header = _HEADER.unpack_from(buf, pos)[0]
            n = header & 0xFFFFFF
            if header >> 24 != expected:
                raise ProtocolError("packets out of order", 1156, "08S01")
            total += n
            if total > self._max:
                raise ProtocolError(
                    f"packet of {total}+ bytes exceeds max_allowed_packet {self._max}",
                    1153,
                    "08S01",
                )
            if len(buf) < pos + 4 + n:
                return None
            pieces.append((pos + 4, pos + 4 + n))
            pos += 4 + n
            expected = (expected + 1) & 0xFF
            if n < MAX_PAYLOAD:
                break
        payload = b"".join(bytes(buf[a:b]) for a, b in pieces)
        del buf[:pos]
        return first_seq, payload
