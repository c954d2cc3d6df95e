"""The primary's side of zone transfer: who may transfer, the AXFR answers, and NOTIFY.

:class:`Primary` is given the zones (the answerer), the secondaries' addresses and how to
reach them. Its :meth:`Primary.transfer_handler` answers AXFR (and IXFR, with the whole zone in
AXFR form, RFC 1995 section 4) for the listed hosts only, REFUSED for everyone else, as BIND's
``allow-transfer``. :meth:`Primary.notify` sends NOTIFY for a zone to every secondary in the
background, retrying as BIND does (a few times, waiting longer each time) until each answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from typing import Protocol

from dnslib import QTYPE, RCODE, DNSError, DNSHeader, DNSRecord

from pylamp.dns.exchange import host_key, udp_exchange
from pylamp.dns.transfer import DEFAULT_MESSAGE_SIZE, axfr_response, is_notify_ack, notify_query
from pylamp.dns.zone import Zone

__all__ = ["NOTIFY_ATTEMPTS", "NOTIFY_TIMEOUT", "Primary", "ZoneSource"]

log = logging.getLogger(__name__)

#: How many times a NOTIFY is sent to a secondary that does not answer (BIND: 5).
NOTIFY_ATTEMPTS = 5
#: Seconds to wait for the first answer; each further attempt waits twice as long.
NOTIFY_TIMEOUT = 1.0


class ZoneSource(Protocol):
    """Where the primary finds the zones it serves (the answerer)."""

    def zone(self, origin: str) -> Zone | None: ...


class Primary:
    """Zone transfers to, and NOTIFY of, a primary's secondaries.

    ``allow_transfer`` are the hosts that may transfer; ``notify`` the (host, port) pairs told
    about changes (their hosts may transfer too). ``source`` is the local address NOTIFY is sent
    from, so secondaries that check who notifies them see the primary's own address.
    """

    def __init__(
        self,
        zones: ZoneSource,
        *,
        allow_transfer: Iterable[str] = (),
        notify: Sequence[tuple[str, int]] = (),
        source: str | None = None,
        notify_attempts: int = NOTIFY_ATTEMPTS,
        notify_timeout: float = NOTIFY_TIMEOUT,
        max_message_size: int = DEFAULT_MESSAGE_SIZE,
    ) -> None:
        self._zones = zones
        self.notify_targets = tuple(notify)
        self.allowed = frozenset(host_key(h) for h in (*allow_transfer, *(h for h, _ in notify)))
        self.source = source
        self.notify_attempts = notify_attempts
        self.notify_timeout = notify_timeout
        self.max_message_size = max_message_size
        self._tasks: dict[str, asyncio.Task[dict[tuple[str, int], bool]]] = {}

    def add_secondary(self, host: str, port: int) -> None:
        """Allow and notify one more secondary (e.g. one that bound port 0 after we started)."""
        self.notify_targets = (*self.notify_targets, (host, port))
        self.allowed = self.allowed | {host_key(host)}

    def may_transfer(self, peer_host: str) -> bool:
        """Whether ``peer_host`` is listed as a secondary."""
        return host_key(peer_host) in self.allowed

    def transfer_handler(self, query: bytes, peer_host: str, tcp: bool) -> list[bytes] | None:
        """The reply messages to an AXFR/IXFR query; None means REFUSED.

        Refused: hosts not listed, zones we do not serve. Over UDP an AXFR gets FORMERR
        (RFC 5936 section 4.2) and an IXFR just the SOA, telling the client to use TCP.
        """
        if not self.may_transfer(peer_host):
            log.warning("zone transfer refused to %s (not a listed secondary)", peer_host)
            return None
        try:
            request = DNSRecord.parse(query)
        except (DNSError, ValueError, IndexError):
            return None
        if len(request.questions) != 1:
            return None
        question = request.questions[0]
        zone = self._zones.zone(str(question.qname))
        if zone is None:
            return None
        if not tcp:
            if question.qtype == QTYPE.IXFR:
                return [_reply(request, RCODE.NOERROR, zone)]
            return [_reply(request, RCODE.FORMERR)]
        log.info("zone transfer of %s serial %d to %s", zone.origin, zone.serial, peer_host)
        return axfr_response(request, zone, max_size=self.max_message_size)

    # -- NOTIFY ---------------------------------------------------------------------------

    def notify(self, origin: str) -> None:
        """Tell every secondary about ``origin`` now, in the background (replaces a run for it)."""
        if not self.notify_targets:
            return
        previous = self._tasks.pop(origin, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self.notify_now(origin), name=f"notify {origin}")
        self._tasks[origin] = task
        task.add_done_callback(lambda t: self._forget(origin, t))

    def _forget(self, origin: str, task: asyncio.Task[dict[tuple[str, int], bool]]) -> None:
        if self._tasks.get(origin) is task:
            del self._tasks[origin]
        if not task.cancelled() and task.exception() is not None:
            log.error("NOTIFY for %s failed: %s", origin, task.exception())

    async def notify_now(self, origin: str) -> dict[tuple[str, int], bool]:
        """Send NOTIFY for ``origin`` to every secondary; return which ones acknowledged."""
        zone = self._zones.zone(origin)
        if zone is None:
            raise KeyError(origin)
        results = await asyncio.gather(*(self._notify_one(zone, t) for t in self.notify_targets))
        return dict(zip(self.notify_targets, results, strict=True))

    async def _notify_one(self, zone: Zone, target: tuple[str, int]) -> bool:
        timeout = self.notify_timeout
        for attempt in range(1, self.notify_attempts + 1):
            qid = secrets.randbelow(0x10000)
            message = notify_query(zone.origin, qid=qid, soa=zone.soa)
            try:
                reply = await udp_exchange(message, target, timeout=timeout, source=self.source)
            except (OSError, TimeoutError) as exc:
                log.debug("NOTIFY %s to %s, attempt %d: %r", zone.origin, target, attempt, exc)
                # A refused port answers at once; wait out the interval anyway.
                if isinstance(exc, OSError):
                    await asyncio.sleep(timeout)
                timeout *= 2
                continue
            if is_notify_ack(reply, qid):
                rcode = reply[3] & 0x0F
                if rcode != RCODE.NOERROR:
                    log.warning("%s answered NOTIFY for %s with %s", target, zone.origin, rcode)
                return rcode == RCODE.NOERROR
        log.warning(
            "NOTIFY for %s to %s: no answer after %d attempts",
            zone.origin,
            target,
            self.notify_attempts,
        )
        return False

    async def close(self) -> None:
        """Stop NOTIFY runs still retrying."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


def _reply(request: DNSRecord, rcode: int, zone: Zone | None = None) -> bytes:
    header = DNSHeader(id=request.header.id, qr=1, aa=1, rd=request.header.rd, rcode=rcode)
    reply = DNSRecord(header, questions=request.questions[:1], rr=[zone.soa] if zone else [])
    return bytes(reply.pack())
