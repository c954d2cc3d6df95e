"""The DNS server: an asyncio shell around :class:`~pylamp.dns.answer.Answerer`.

UDP and TCP on the same port. Every microsecond counts on UDP: where the platform allows,
a thread answers it in batches with ``recvmmsg``/``sendmmsg`` (:mod:`pylamp.dns.udpbatch`:
~9 us of CPU per query under load instead of ~14), handing the queries without a stored reply
to the loop; elsewhere a bare ``DatagramProtocol`` (no streams) answers on the loop. TCP uses
streams (2-byte length prefix, several queries per connection, idle timeout, never
truncated).

Extension points (used by the zone-transfer and health code):

- ``server.answerer`` -- the :class:`Answerer`; its ``set_zone``/``set_expired``/
  ``set_live`` change answers at once.
- ``server.transfer_handler(query, peer_host, tcp) -> list[bytes] | None`` answers AXFR
  and IXFR queries: the messages to send, or None for REFUSED. Unset: REFUSED.
- ``server.notify_handler(query, peer_host) -> bytes | None`` answers NOTIFY (opcode 4):
  the reply, or None for REFUSED. Unset: NOTIMP.

Both handlers may also return an awaitable of the same, which the server awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from pylamp.dns.answer import EDNS_BUFFER_SIZE, RCODE_REFUSED, Answerer, build_error, query_kind
from pylamp.dns.health import HealthConfig
from pylamp.dns.roles import ServerRoles
from pylamp.dns.secondary import RefreshResult
from pylamp.dns.udpbatch import UdpBatchService, batch_available
from pylamp.dns.zone import Zone, ZoneError, load_zone

__all__ = ["DnsServer", "NotifyHandler", "TransferHandler", "ZoneSource"]

log = logging.getLogger("pylamp.dns")

#: A zone as given to :class:`DnsServer`: a parsed Zone, a path (``os.PathLike``, or a
#: ``str`` without a newline), or master-file text (a ``str`` with a newline).
ZoneSource = Zone | str | os.PathLike[str]
TransferHandler = Callable[[bytes, str, bool], "list[bytes] | Awaitable[list[bytes] | None] | None"]
NotifyHandler = Callable[[bytes, str], "bytes | Awaitable[bytes | None] | None"]

_UDP_RCVBUF = 4 << 20
_BIND_ATTEMPTS = 50


def _read_zone(source: ZoneSource) -> tuple[Zone, Path | None]:
    """Load one zone source; the path if it came from a file. Raises ZoneError (an
    unreadable file too, as ``file: reason``)."""
    if isinstance(source, Zone):
        return source, None
    if isinstance(source, str) and "\n" in source:
        return load_zone(source), None
    path = Path(source)
    return _read_zone_file(path), path


def _read_zone_file(path: Path) -> Zone:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ZoneError(str(path), 0, reason) from exc
    return load_zone(text, filename=str(path))


class _UdpProtocol(asyncio.DatagramProtocol):
    """Fast path inline: a stored reply goes straight back; the rest goes to the server."""

    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._cached = server.answerer.answer_cached
        self._limit = server.max_udp_size
        self._transport: asyncio.DatagramTransport | None = None
        #: Set once the socket is really closed (asyncio closes it a loop turn later).
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._sendto = self._transport.sendto  # type: ignore[union-attr]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        reply = self._cached(data, self._limit)
        if reply is not None:
            self._sendto(reply, addr)
            return
        self._server._answer_udp(data, addr, self._send)

    def _send(self, reply: bytes, addr: tuple[Any, ...]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.closed.set()


class DnsServer:
    """An authoritative DNS server for some zones, on UDP and TCP.

    ``async with DnsServer(zones=[...], host="127.0.0.1", port=0) as dns:`` binds both
    protocols on one port (port 0 picks a free one), and answers from the moment the block
    is entered; ``dns.port``, ``dns.udp_address`` and ``dns.tcp_address`` say where.
    ``zones`` takes :data:`ZoneSource` values; zones read from files can be re-read with
    :meth:`reload`. ``max_udp_size`` caps UDP replies (clients' limits also apply);
    ``tcp_idle_timeout`` closes quiet TCP connections.

    Roles (see :mod:`pylamp.dns.roles`): ``secondaries=[(host, port)]`` may transfer the
    zones and are sent NOTIFY (``allow_transfer=[host]`` may transfer only);
    ``primary=(host, port)`` with ``secondary_zones=[origin]`` and ``data_dir`` makes this a
    secondary of those zones (:meth:`refresh` checks them now); ``health=[HealthConfig]``
    filters load-balanced names by health checks (:meth:`check_health` runs a round now);
    ``watch=True`` reloads zone files when they change and their serial goes up.

    ``udp_batch=True`` (the default) answers UDP from a thread that reads and writes many
    datagrams per system call (:mod:`pylamp.dns.udpbatch`, Linux ``recvmmsg``/``sendmmsg``)
    where the platform has them, else, or with ``udp_batch=False``, on the event loop;
    ``udp_batching`` says which is running. Answers are the same either way.

    ``reuse_port=True`` binds both sockets with ``SO_REUSEPORT``, so several processes can
    serve the same port (``python -m pylamp.dns --workers N``); the kernel spreads clients
    over them by address, each client staying with one process.
    """

    def __init__(
        self,
        *,
        zones: Iterable[ZoneSource] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        max_udp_size: int = EDNS_BUFFER_SIZE,
        tcp_idle_timeout: float = 10.0,
        secondaries: Iterable[tuple[str, int]] = (),
        allow_transfer: Iterable[str] = (),
        primary: tuple[str, int] | None = None,
        secondary_zones: Iterable[str] = (),
        data_dir: str | os.PathLike[str] | None = None,
        health: Iterable[HealthConfig] = (),
        watch: bool = False,
        reuse_port: bool = False,
        udp_batch: bool = True,
    ) -> None:
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("reuse_port: this platform has no SO_REUSEPORT")
        self.host = host
        self.reuse_port = reuse_port
        self.udp_batch = udp_batch
        self.requested_port = port
        self.max_udp_size = max_udp_size
        self.tcp_idle_timeout = tcp_idle_timeout
        self.answerer = Answerer()
        self.transfer_handler: TransferHandler | None = None
        self.notify_handler: NotifyHandler | None = None
        #: origin -> file the zone was read from (what :meth:`reload` re-reads).
        self.zone_files: dict[str, Path] = {}
        for source in zones:
            zone, path = _read_zone(source)
            self.answerer.set_zone(zone)
            if path is not None:
                self.zone_files[zone.origin] = path
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _UdpProtocol | None = None
        self._udp_sock: socket.socket | None = None
        self._udp_service: UdpBatchService | None = None
        # Held while answering, by the batch thread per batch and by the loop per query,
        # so the round-robin counters count every answer once (else the two threads could
        # interleave a counter's read and write).
        self._answer_lock = threading.Lock()
        self._tcp: asyncio.AbstractServer | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._port = 0
        self.roles = ServerRoles(
            self.answerer,
            host=host,
            zone_files=self.zone_files,
            secondaries=secondaries,
            allow_transfer=allow_transfer,
            primary=primary,
            secondary_zones=secondary_zones,
            data_dir=None if data_dir is None else Path(data_dir),
            health=health,
            watch=watch,
        )
        self.transfer_handler = self.roles.transfer_handler
        self.notify_handler = self.roles.notify_handler

    # --- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (UDP and TCP alike); 0 before start."""
        return self._port

    @property
    def udp_batching(self) -> bool:
        """Whether UDP is answered by the batch thread (recvmmsg/sendmmsg) right now."""
        return self._udp_service is not None

    @property
    def udp_batches(self) -> tuple[int, int]:
        """(batches, datagrams) the batch thread has received so far: their ratio is the
        mean batch size. (0, 0) on the event-loop path."""
        service = self._udp_service
        return (0, 0) if service is None else (service.batches, service.datagrams)

    @property
    def udp_address(self) -> tuple[str, int]:
        """(host, port) the UDP socket is bound to."""
        return (self.host, self._port)

    @property
    def tcp_address(self) -> tuple[str, int]:
        """(host, port) the TCP listener is bound to."""
        return (self.host, self._port)

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind UDP and TCP on one port and start answering."""
        last_error: OSError | None = None
        for _ in range(_BIND_ATTEMPTS):
            sock = self._udp_socket(self.requested_port)
            port = sock.getsockname()[1]
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp,
                    self.host,
                    port,
                    reuse_address=True,
                    reuse_port=self.reuse_port or None,
                )
            except OSError as exc:
                sock.close()
                if self.requested_port != 0 or exc.errno != errno.EADDRINUSE:
                    raise
                last_error = exc
                continue
            await self._start_udp(sock)
            self._port = port
            log.debug(
                "dns bound udp+tcp %s:%d, udp %s",
                self.host,
                port,
                "in batches (recvmmsg/sendmmsg thread)" if self.udp_batching else "on the loop",
            )
            try:
                await self.roles.start()
            except BaseException:
                # e.g. a watched zone folder gone: free the port and the UDP thread again
                await self.close()
                raise
            return
        raise OSError(f"no port free for both UDP and TCP on {self.host}") from last_error

    async def _start_udp(self, sock: socket.socket) -> None:
        """Answer UDP on ``sock``: from the batch thread if we may, else on the loop."""
        loop = asyncio.get_running_loop()
        if self.udp_batch and batch_available():
            self._udp_sock = sock
            self._udp_service = UdpBatchService(
                sock,
                self.answerer.answer_cached,
                self.max_udp_size,
                self._udp_miss,
                self._answer_lock,
                loop,
            )
            self._udp_service.start()
        else:
            transport, self._udp_protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=sock
            )
            self._udp = transport

    def _udp_socket(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RCVBUF)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _UDP_RCVBUF)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def close(self) -> None:
        """Stop listening, close TCP connections and wait for their handlers."""
        await self.roles.close()
        if self._udp_service is not None:
            await self._udp_service.stop()
            self._udp_service = None
        if self._udp_sock is not None:
            self._udp_sock.close()
            self._udp_sock = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
            if self._udp_protocol is not None:
                await self._udp_protocol.closed.wait()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- zones -------------------------------------------------------------------------

    def reload(self) -> list[ZoneError]:
        """Re-read every zone file; a file that fails keeps its old zone being served.

        Returns the errors (empty when all loaded); each is also logged as file:line.
        """
        errors: list[ZoneError] = []
        for origin, path in list(self.zone_files.items()):
            try:
                zone = _read_zone_file(path)
                if zone.origin != origin:
                    raise ZoneError(str(path), 0, f"zone is now {zone.origin}, was {origin}")
            except ZoneError as exc:
                errors.append(exc)
            else:
                old = self.answerer.zone(origin)
                self.answerer.set_zone(zone)
                log.info("loaded zone %s serial %d from %s", origin, zone.serial, path)
                self.roles.zone_loaded(zone, old)
                continue
            log.error("zone %s not reloaded, keeping the old one: %s", origin, errors[-1])
        return errors

    def add_secondary(self, host: str, port: int) -> None:
        """On a primary: allow `host` to transfer our zones and send it NOTIFY on changes.

        For a secondary started after this server, e.g. one that bound port 0, so two
        servers on port 0 can be paired. ValueError on a server that is not a primary.
        """
        if self.roles.primary is None:
            raise ValueError("add_secondary: this server is not a primary")
        self.roles.primary.add_secondary(host, port)

    async def refresh(self) -> dict[str, RefreshResult]:
        """On a secondary: check every secondary zone's serial with the primary now, and
        transfer the zones that are newer. Returns what happened per zone."""
        return await self.roles.refresh()

    async def check_health(self) -> None:
        """Run one round of the health checks now (the background loop does it too)."""
        await self.roles.check_health()

    # --- dispatch ----------------------------------------------------------------------

    def _dispatch(
        self, data: bytes, peer: str, *, tcp: bool
    ) -> list[bytes] | Awaitable[list[bytes]]:
        """Replies for a query the fast path did not answer, routed by kind."""
        kind = query_kind(data)
        if kind == "transfer" and self.transfer_handler is not None:
            result: Any = self.transfer_handler(data, peer, tcp)
            return self._settle(result, data, tcp, lambda r: list(r))
        if kind == "notify" and self.notify_handler is not None:
            result = self.notify_handler(data, peer)
            return self._settle(result, data, tcp, lambda r: [r])
        with self._answer_lock:
            reply = self.answerer.answer(data, udp_limit=None if tcp else self.max_udp_size)
        return [] if reply is None else [reply]

    def _answer_udp(
        self, data: bytes, addr: tuple[Any, ...], send: Callable[[bytes, tuple[Any, ...]], None]
    ) -> None:
        """Answer a UDP query the fast path did not: now, or once its handler is done."""
        try:
            replies = self._dispatch(data, addr[0], tcp=False)
        except Exception:
            log.exception("error answering %d bytes from %s", len(data), addr[0])
            return
        if isinstance(replies, list):
            for reply in replies:
                send(reply, addr)
        else:
            self._spawn(self._send_later(replies, addr, send))

    @staticmethod
    async def _send_later(
        pending: Awaitable[list[bytes]],
        addr: tuple[Any, ...],
        send: Callable[[bytes, tuple[Any, ...]], None],
    ) -> None:
        for reply in await pending:
            send(reply, addr)

    def _udp_miss(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """On the loop: a query the batch thread had no stored reply for."""
        self._answer_udp(data, addr, self._udp_send)

    def _udp_send(self, reply: bytes, addr: tuple[Any, ...]) -> None:
        """Send from the loop on the batch thread's (blocking) socket, never waiting: a
        reply that finds the send buffer full is dropped, as a full network would."""
        sock = self._udp_sock
        if sock is not None:
            try:
                sock.sendto(reply, socket.MSG_DONTWAIT, addr)
            except OSError as exc:
                log.debug("udp send to %s failed: %s", addr[0], exc)

    def _settle(
        self, result: Any, data: bytes, tcp: bool, wrap: Callable[[Any], list[bytes]]
    ) -> list[bytes] | Awaitable[list[bytes]]:
        """Handler result to replies; None means REFUSED."""

        def finish(value: Any) -> list[bytes]:
            if value is None:
                reply = build_error(data, RCODE_REFUSED)
                return [] if reply is None else [reply]
            return wrap(value)

        if inspect.isawaitable(result):

            async def later() -> list[bytes]:
                return finish(await result)

            return later()
        return finish(result)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        peername = writer.get_extra_info("peername")
        peer = peername[0] if peername else "?"
        try:
            while True:
                async with asyncio.timeout(self.tcp_idle_timeout):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                replies = self._dispatch(data, peer, tcp=True)
                if not isinstance(replies, list):
                    replies = await replies
                if not replies:
                    break  # garbage: drop the connection, as BIND does
                for reply in replies:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("error on tcp connection from %s", peer)
        finally:
            self._tcp_writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
