"""What a :class:`~pylamp.dns.server.DnsServer` does beside answering: its roles.

* primary: answers zone transfers from the listed secondaries and sends them NOTIFY at start and
  whenever a zone is loaded with a higher serial (:mod:`pylamp.dns.primary`);
* secondary: pulls zones from its primary, keeps them by the SOA timers, accepts NOTIFY from the
  primary and keeps a saved copy (:mod:`pylamp.dns.secondary`);
* zone-file watching (:mod:`pylamp.dns.zonewatch`) and health-aware answers
  (:mod:`pylamp.dns.health`).

:class:`ServerRoles` builds the parts a server was asked for and starts and stops them with it;
the server keeps only a few lines of wiring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from dnslib import RCODE

from pylamp.config import ConfigError, DnsServerConfig, Topology
from pylamp.dns.answer import Answerer
from pylamp.dns.health import HealthConfig, HealthMonitor, HealthTarget
from pylamp.dns.primary import Primary
from pylamp.dns.secondary import RefreshResult, SecondaryZone
from pylamp.dns.transfer import TransferError, notify_reply, parse_notify
from pylamp.dns.zone import Zone, serial_gt
from pylamp.dns.zonewatch import ZoneWatcher

__all__ = ["ServerRoles", "health_configs", "server_options"]

log = logging.getLogger(__name__)

_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


class ServerRoles:
    """Primary, secondary, watching and health parts of one server (each only if asked).

    ``host`` is the server's address (the source of its NOTIFY and transfer queries);
    ``zone_files`` maps origins to the files the watcher watches. The server installs
    :attr:`transfer_handler` and :attr:`notify_handler` (None when not in that role).
    """

    def __init__(
        self,
        answerer: Answerer,
        *,
        host: str,
        zone_files: Mapping[str, Path],
        secondaries: Iterable[tuple[str, int]] = (),
        allow_transfer: Iterable[str] = (),
        primary: tuple[str, int] | None = None,
        secondary_zones: Iterable[str] = (),
        data_dir: str | Path | None = None,
        health: Iterable[HealthConfig] = (),
        watch: bool = False,
        transfer_timeout: float = 3.0,
    ) -> None:
        self._answerer = answerer
        source = None if host in _WILDCARD_HOSTS else host
        secondaries = tuple(secondaries)
        allow_transfer = tuple(allow_transfer)
        self.primary: Primary | None = None
        self.transfer_handler: Callable[[bytes, str, bool], list[bytes] | None] | None = None
        self.notify_handler: Callable[[bytes, str], bytes | None] | None = None
        if secondaries or allow_transfer:
            self.primary = Primary(
                answerer, allow_transfer=allow_transfer, notify=secondaries, source=source
            )
            self.transfer_handler = self.primary.transfer_handler
        self.secondary_zones: dict[str, SecondaryZone] = {}
        origins = tuple(secondary_zones)
        if origins and primary is None:
            raise ValueError("secondary zones need the primary's address (primary=(host, port))")
        if primary is not None:
            if not origins:
                raise ValueError("a secondary needs the names of its zones (secondary_zones=)")
            if data_dir is None:
                raise ValueError("a secondary needs a data directory (data_dir=)")
            for origin in origins:
                zone = SecondaryZone(
                    origin,
                    answerer,
                    primary=primary,
                    data_dir=Path(data_dir),
                    source=source,
                    timeout=transfer_timeout,
                )
                self.secondary_zones[zone.origin] = zone
            self.notify_handler = self._notify
        self.health = HealthMonitor(answerer, tuple(health)) if health else None
        #: Called after the watcher loaded a changed zone file (``--workers`` passes the
        #: reload on to the worker processes, which do not watch).
        self.on_file_loaded: Callable[[Zone], None] | None = None
        self.watcher: ZoneWatcher | None = None
        if watch:
            self.watcher = ZoneWatcher(answerer, zone_files, on_load=self._file_loaded)

    async def start(self) -> None:
        """Load saved copies, start the loops, send the start-up NOTIFY."""
        for secondary in self.secondary_zones.values():
            secondary.load_saved()
            secondary.start()
        if self.health is not None:
            await self.health.start()
        if self.watcher is not None:
            self.watcher.start()
        if self.primary is not None:
            for zone in self._answerer.zones():
                if zone.origin not in self.secondary_zones:
                    self.primary.notify(zone.origin)

    async def close(self) -> None:
        """Stop everything started by :meth:`start`."""
        if self.watcher is not None:
            self.watcher.stop()
        if self.health is not None:
            await self.health.close()
        for secondary in self.secondary_zones.values():
            await secondary.close()
        if self.primary is not None:
            await self.primary.close()

    async def refresh(self) -> dict[str, RefreshResult]:
        """Check every secondary zone with the primary now (transferring what is newer)."""
        return {origin: await zone.refresh() for origin, zone in self.secondary_zones.items()}

    async def check_health(self) -> None:
        """Run one round of health checks now."""
        if self.health is not None:
            await self.health.check_health()

    def zone_loaded(self, zone: Zone, old: Zone | None = None) -> None:
        """A zone file was (re)loaded: NOTIFY the secondaries if the serial went up."""
        if self.primary is None or zone.origin in self.secondary_zones:
            return
        if old is None or serial_gt(zone.serial, old.serial):
            self.primary.notify(zone.origin)

    def _file_loaded(self, zone: Zone) -> None:
        self.zone_loaded(zone)
        if self.on_file_loaded is not None:
            self.on_file_loaded(zone)

    def _notify(self, query: bytes, peer_host: str) -> bytes | None:
        """NOTIFY for one of our secondary zones goes to it; other zones get NOTAUTH."""
        try:
            origin = parse_notify(query).origin.lower()
        except TransferError:
            try:
                return notify_reply(query, RCODE.FORMERR)
            except TransferError:  # not even a header and a question: stay silent
                return None
        zone = self.secondary_zones.get(origin)
        if zone is None:
            return notify_reply(query, RCODE.NOTAUTH)
        return zone.notify(query, peer_host)

    @property
    def saved_copies(self) -> Mapping[str, Path]:
        """Where each secondary zone is saved."""
        return {origin: zone.path for origin, zone in self.secondary_zones.items()}


def server_options(topology: Topology, name: str, *, source: str = "topology") -> dict[str, Any]:
    """The role options of name server ``name`` of the topology, as DnsServer keywords.

    A primary lets its secondaries transfer, notifies them and watches its zone files; a
    secondary transfers every zone of the topology from its primary and keeps the copies in
    ``<data_dir>/<name>``. Both check the load-balanced names' web servers. Raises
    ``ConfigError`` for a balance entry the health checks cannot use.
    """
    server = topology.server(name)
    if not isinstance(server, DnsServerConfig):
        raise KeyError(f"{name!r} is not a name server")
    options: dict[str, Any] = {"health": health_configs(topology, source=source)}
    if server.role == "secondary":
        assert server.primary is not None  # the topology loader checks it
        primary = topology.server(server.primary)
        options["primary"] = (primary.host, primary.port)
        options["secondary_zones"] = [zone.origin for zone in topology.zones]
        options["data_dir"] = topology.data_dir_of(name)
    else:
        options["secondaries"] = [(s.host, s.port) for s in topology.secondaries_of(name)]
        options["watch"] = True
    return options


def health_configs(topology: Topology, *, source: str = "topology") -> list[HealthConfig]:
    """Health checks for every load-balanced name of the topology that has a check."""
    webs = {w.name: w for w in topology.web}
    configs = []
    for zone in topology.zones:
        origin = zone.origin.rstrip(".") + "."
        for balance in zone.balance:
            check = balance.check
            if check is None:
                continue
            if balance.name == "@":
                owner = origin
            elif balance.name.endswith("."):
                owner = balance.name
            else:
                owner = f"{balance.name}.{origin}"
            targets = tuple(HealthTarget(webs[w].host, webs[w].port) for w in balance.servers)
            try:
                configs.append(
                    HealthConfig(
                        owner,
                        targets,
                        kind=check.kind,
                        path=check.path,
                        interval=check.interval,
                        timeout=check.timeout,
                        fall=check.fall,
                        rise=check.rise,
                        order=balance.order,
                    )
                )
            except ValueError as exc:
                raise ConfigError(
                    "topology", f"zones.{zone.origin}.balance.{balance.name}", str(exc)
                ) from exc
    return configs
