"""A secondary zone: pulled from the primary by AXFR, kept fresh by the SOA timers, saved on disk.

:class:`SecondaryZone` is the asyncio shell around :class:`~pylamp.dns.transfer.SecondaryState`.
Its one-shot :meth:`SecondaryZone.refresh` asks the primary for the zone's SOA (UDP, TCP when the
reply is truncated or UDP gets nothing), and when the primary's serial is newer (RFC 1982)
transfers the zone by AXFR over TCP, checks it as a zone file is checked, serves it, and saves it
as ``<data_dir>/<origin>.zone`` (temp file, then rename). The background loop only sleeps until
the state machine's next action (refresh, retry or expire) or a NOTIFY, then calls ``refresh()``.

The saved copy is loaded at start, so a restarted secondary serves while its primary is down.
Its file modification time records the last contact with the primary (touched at every
successful check, as BIND does), so the expire timer runs across restarts; once expire passes
without contact the zone answers SERVFAIL until the primary is reached again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from dnslib import OPCODE, QTYPE, RCODE, DNSError, DNSLabel, DNSRecord

from pylamp.dns.exchange import host_key, tcp_stream, udp_exchange
from pylamp.dns.transfer import (
    AxfrReader,
    SecondaryState,
    TransferError,
    axfr_query,
    notify_reply,
    parse_notify,
    soa_query,
    soa_serial,
    soa_timers,
)
from pylamp.dns.zone import Zone, ZoneError, load_zone, serial_gt, zone_to_text

__all__ = ["RefreshResult", "SecondaryZone", "ZoneSink", "saved_zone_path"]

log = logging.getLogger(__name__)

# The shell never checks more often than this, whatever the SOA says (a refresh or retry of 0
# would otherwise spin); the SOA's own values are honoured exactly above it.
_MIN_INTERVAL = 0.05


class ZoneSink(Protocol):
    """What a secondary zone needs from the server: the answerer's zone hooks."""

    def set_zone(self, zone: Zone) -> None: ...

    def zone(self, origin: str) -> Zone | None: ...

    def set_expired(self, origin: str, expired: bool) -> None: ...


@dataclass(frozen=True)
class RefreshResult:
    """What one :meth:`SecondaryZone.refresh` did."""

    outcome: Literal["transferred", "current", "failed"]
    serial: int | None
    error: str = ""


def saved_zone_path(data_dir: Path, origin: str) -> Path:
    """Where a secondary keeps its copy of ``origin``: ``<data_dir>/<origin>.zone``."""
    name = origin.lower().rstrip(".") or "root"
    return data_dir / f"{name}.zone"


class SecondaryZone:
    """One zone served as a secondary of ``primary`` (host, port).

    ``source`` is the local address to send from (the server's own address, so the primary
    recognises it); ``timeout`` bounds each query and each message of a transfer.
    ``clock`` (monotonic seconds) is injectable for tests of the loop.
    """

    def __init__(
        self,
        origin: str,
        sink: ZoneSink,
        *,
        primary: tuple[str, int],
        data_dir: Path | str,
        source: str | None = None,
        timeout: float = 3.0,
        initial_retry: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.origin = str(DNSLabel(origin)).lower()
        self.primary = primary
        self.data_dir = Path(data_dir)
        self.source = source
        self.timeout = timeout
        self._sink = sink
        self._clock = clock
        self.state = SecondaryState(now=clock(), initial_retry=initial_retry)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._expired: bool | None = None
        host, port = primary
        self._where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def path(self) -> Path:
        """The saved copy."""
        return saved_zone_path(self.data_dir, self.origin)

    # -- life cycle ---------------------------------------------------------------------

    def load_saved(self) -> bool:
        """Serve the saved copy if there is a readable one; return whether one was loaded.

        Without one, the zone answers SERVFAIL (as BIND's does) until the first transfer.
        """
        if self._sink.zone(self.origin) is None:
            self._sink.set_expired(self.origin, True)
        try:
            text = self.path.read_text(encoding="utf-8")
            contact_wall = self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("cannot read saved copy %s: %s", self.path, exc)
            return False
        try:
            zone = load_zone(text, origin=self.origin, filename=str(self.path))
        except ZoneError as exc:
            log.error("ignoring bad saved copy: %s", exc)
            return False
        now = self._clock()
        contact = now - max(0.0, time.time() - contact_wall)
        self.state.load(soa_timers(zone.soa), contact=contact, now=now)
        self._sink.set_zone(zone)
        self._expired = None
        self._publish(now)
        log.info("%s: serving saved copy, serial %d", self.origin, zone.serial)
        return True

    def start(self) -> None:
        """Start the background loop (after :meth:`load_saved`)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"secondary {self.origin}")

    async def close(self) -> None:
        """Stop the background loop."""
        # The flag ends the loop even if a cancellation is lost (asyncio.wait_for before
        # Python 3.12 can swallow one that races with a result).
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- NOTIFY ---------------------------------------------------------------------------

    def notify(self, query: bytes, peer_host: str) -> bytes:
        """Answer a NOTIFY for this zone: accepted from the primary only (RFC 1996 3.10)."""
        try:
            message = parse_notify(query)
        except TransferError:
            return notify_reply(query, RCODE.FORMERR)
        if host_key(peer_host) != host_key(self.primary[0]):
            log.warning("%s: NOTIFY from %s refused (not the primary)", self.origin, peer_host)
            return notify_reply(query, RCODE.REFUSED)
        log.info("%s: NOTIFY from %s (serial %s)", self.origin, peer_host, message.serial)
        self.state.on_notify(self._clock())
        self._wake.set()
        return notify_reply(query)

    # -- refresh ------------------------------------------------------------------------

    async def refresh(self) -> RefreshResult:
        """Check the primary's serial now and transfer the zone if it is newer."""
        async with self._lock:
            self.state.begin_check()
            try:
                result = await self._check()
            except (OSError, TimeoutError, TransferError, asyncio.IncompleteReadError) as exc:
                reason = _describe(exc)
                now = self._clock()
                self.state.on_failure(now)
                level = logging.INFO if self.state.timers is None else logging.WARNING
                log.log(
                    level,
                    "%s: refresh from %s failed: %s",
                    self.origin,
                    self._where,
                    reason,
                )
                result = RefreshResult("failed", self.state.serial, reason)
            self._publish(self._clock())
            return result

    async def _check(self) -> RefreshResult:
        serial = await self._primary_serial()
        if not self.state.on_soa(serial, self._clock()):
            self._touch()
            if self.state.serial is not None and serial_gt(self.state.serial, serial):
                log.warning(
                    "%s: primary's serial %d is older than ours (%d)",
                    self.origin,
                    serial,
                    self.state.serial,
                )
            return RefreshResult("current", self.state.serial)
        zone = await self._transfer()
        ours = self.state.serial
        if ours is not None and not serial_gt(zone.serial, ours):
            raise TransferError(f"transferred serial {zone.serial} is not newer than {ours}")
        self._sink.set_zone(zone)
        self._expired = None
        self.state.on_transfer(soa_timers(zone.soa), self._clock())
        self._save(zone)
        log.info("%s: transferred serial %d from %s", self.origin, zone.serial, self._where)
        return RefreshResult("transferred", zone.serial)

    async def _primary_serial(self) -> int:
        qid = secrets.randbelow(0x10000)
        query = soa_query(self.origin, qid=qid)
        data: bytes | None = None
        try:
            data = await udp_exchange(query, self.primary, timeout=self.timeout, source=self.source)
        except (OSError, TimeoutError):
            data = None  # try TCP before calling the primary unreachable
        if data is None or _truncated(data):
            async with tcp_stream(self.primary, timeout=self.timeout, source=self.source) as s:
                await s.send(query)
                data = await s.receive(self.timeout)
        return self._serial_from(data, qid)

    def _serial_from(self, data: bytes, qid: int) -> int:
        try:
            reply = DNSRecord.parse(data)
        except (DNSError, ValueError, IndexError) as exc:
            raise TransferError(f"unparseable SOA reply: {exc}") from exc
        if reply.header.id != qid or not reply.header.qr or reply.header.opcode != OPCODE.QUERY:
            raise TransferError("SOA reply does not match the query")
        if reply.header.rcode != RCODE.NOERROR:
            raise TransferError(
                f"primary answered the SOA query with {RCODE.get(reply.header.rcode)}"
            )
        if not reply.header.aa:
            raise TransferError("primary is not authoritative for the zone")
        origin = DNSLabel(self.origin)
        for rr in reply.rr:
            if rr.rtype == QTYPE.SOA and rr.rname == origin:
                return soa_serial(rr)
        raise TransferError("SOA reply carries no SOA record")

    async def _transfer(self) -> Zone:
        qid = secrets.randbelow(0x10000)
        reader = AxfrReader(self.origin, qid)
        async with tcp_stream(self.primary, timeout=self.timeout, source=self.source) as stream:
            await stream.send(axfr_query(self.origin, qid=qid))
            while not reader.feed(await stream.receive(self.timeout)):
                pass
        return reader.finish()

    # -- the saved copy -----------------------------------------------------------------

    def _save(self, zone: Zone) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        text = (
            f"; {self.origin} serial {zone.serial}, transferred from {self._where} "
            f"at {stamp}\n; the file time is the last contact with the primary\n"
            + zone_to_text(zone)
        )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            temp = self.path.with_name(f".{self.path.name}.tmp")
            with open(temp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except OSError as exc:  # still serving from memory; the next transfer tries again
            log.error("%s: cannot save the zone to %s: %s", self.origin, self.path, exc)

    def _touch(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            try:
                os.utime(self.path)
            except OSError as exc:
                log.warning("%s: cannot touch %s: %s", self.origin, self.path, exc)

    # -- the loop -------------------------------------------------------------------------

    def _publish(self, now: float) -> None:
        """Tell the answerer whether the zone is expired (SERVFAIL), when that changed."""
        expired = self.state.expired(now)
        if expired == self._expired or self._sink.zone(self.origin) is None:
            return
        self._sink.set_expired(self.origin, expired)
        if expired:
            log.error("%s: expired, no contact with %s: SERVFAIL", self.origin, self._where)
        elif self._expired:
            log.info("%s: no longer expired", self.origin)
        self._expired = expired

    async def _run(self) -> None:
        last_check = -float("inf")
        while not self._closing:
            now = self._clock()
            self._publish(now)
            action = self.state.next_action(now)
            at = (
                action.at if action.kind == "expire" else max(action.at, last_check + _MIN_INTERVAL)
            )
            if at > now:
                self._wake.clear()
                if self._closing:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(at - now):
                        await self._wake.wait()
                continue
            if action.kind == "refresh":
                last_check = now
                try:
                    await self.refresh()
                except Exception:  # a bug must not stop the secondary for good
                    log.exception("%s: refresh crashed", self.origin)
                    self.state.on_failure(self._clock())


def _truncated(data: bytes) -> bool:
    return len(data) >= 4 and bool(data[2] & 0x02)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed mid-message"
    return str(exc) or type(exc).__name__
