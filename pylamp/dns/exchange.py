"""Small asyncio DNS client pieces the name servers use to talk to each other.

A secondary asks its primary for the SOA (UDP, TCP when truncated) and pulls the zone over TCP;
a primary sends NOTIFY over UDP. ``source`` binds the local address, as BIND's
``transfer-source``/``notify-source``: a server on 127.0.1.2 must be seen as 127.0.1.2 by a
primary that allows transfers by address, not as the kernel's default 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from collections.abc import AsyncIterator

__all__ = ["TcpStream", "host_key", "tcp_stream", "udp_exchange"]


def host_key(host: str) -> str:
    """A host in one canonical spelling, for comparing peers with configured addresses.

    IP addresses are normalised (``::ffff:127.0.0.1`` is ``127.0.0.1``, ``0:0::1`` is ``::1``);
    names are lower-cased.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


class _Waiter(asyncio.DatagramProtocol):
    def __init__(self, qid: bytes) -> None:
        self.qid = qid
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data[:2] == self.qid and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def udp_exchange(
    message: bytes, server: tuple[str, int], *, timeout: float, source: str | None = None
) -> bytes:
    """Send one UDP message to ``server`` and return the first reply carrying its id.

    Raises ``TimeoutError`` when none comes within ``timeout`` seconds, ``OSError`` when the
    network says no (e.g. ICMP port unreachable).
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Waiter(message[:2]),
        remote_addr=server,
        local_addr=(source, 0) if source else None,
    )
    try:
        transport.sendto(message)
        async with asyncio.timeout(timeout):
            return await protocol.reply
    finally:
        transport.close()


class TcpStream:
    """DNS messages over one TCP connection, each with its 2-byte length prefix (RFC 1035 4.2.2)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, message: bytes) -> None:
        """Write one message."""
        self._writer.write(struct.pack("!H", len(message)) + message)
        await self._writer.drain()

    async def receive(self, timeout: float) -> bytes:
        """Read one message; ``asyncio.IncompleteReadError`` if the peer closed, or a timeout."""
        async with asyncio.timeout(timeout):
            (length,) = struct.unpack("!H", await self._reader.readexactly(2))
            return await self._reader.readexactly(length)


@contextlib.asynccontextmanager
async def tcp_stream(
    server: tuple[str, int], *, timeout: float, source: str | None = None
) -> AsyncIterator[TcpStream]:
    """Open a TCP connection to ``server`` (within ``timeout``) and close it afterwards."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            server[0], server[1], local_addr=(source, 0) if source else None
        )
    try:
        yield TcpStream(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
