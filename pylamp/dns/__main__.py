"""``python -m pylamp.dns``: run one authoritative DNS server.

Standalone: ``python -m pylamp.dns --zone foo.zone [--zone ...] --listen 127.0.0.1:5300``.
From the cluster topology: ``python -m pylamp.dns --config cluster.toml --name ns1``.
A secondary standalone: ``--secondary-of HOST:PORT --secondary-zone foo.com --data-dir DIR``;
a primary names its secondaries with ``--notify HOST:PORT`` (notified and allowed to transfer)
or ``--allow-transfer HOST``, and ``--watch`` reloads zone files when their serial goes up.

Once both sockets are bound it prints one line to stdout,
``listening on udp HOST:PORT tcp HOST:PORT`` (the real port when ``:0`` was asked; an IPv6
host in brackets), which supervisors and tests read. SIGHUP re-reads the zone files (a bad
file keeps the old zone); SIGINT and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from pylamp.config import ConfigError, DnsServerConfig, ensure_zone_file, load_topology
from pylamp.dns.roles import server_options
from pylamp.dns.server import DnsServer, ZoneSource
from pylamp.dns.zone import ZoneError

__all__ = ["main", "parse_listen"]

log = logging.getLogger("pylamp.dns")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6HOST]:PORT`` to (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pylamp.dns", description="Authoritative round-robin DNS server."
    )
    parser.add_argument(
        "--zone", action="append", default=[], metavar="FILE", help="zone file (repeatable)"
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="address for UDP and TCP (port 0: any free port)"
    )
    parser.add_argument("--config", metavar="FILE", help="cluster topology (TOML)")
    parser.add_argument("--name", metavar="NAME", help="this server's name in the topology")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument(
        "--secondary-of", metavar="HOST:PORT", help="be a secondary of this primary"
    )
    parser.add_argument(
        "--secondary-zone",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="zone to transfer from the primary (repeatable)",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="where a secondary saves its zones")
    parser.add_argument(
        "--allow-transfer",
        action="append",
        default=[],
        metavar="HOST",
        help="host that may transfer the zones (repeatable)",
    )
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="secondary to NOTIFY of changes; it may transfer too (repeatable)",
    )
    parser.add_argument(
        "--watch", action="store_true", help="reload zone files when their serial goes up"
    )
    args = parser.parse_args(argv)
    if args.config is None and not args.zone and not args.secondary_of:
        parser.error(
            "give --zone FILE (and --listen), --secondary-of HOST:PORT,"
            " or --config FILE --name NAME"
        )
    if args.secondary_of is not None and (not args.secondary_zone or not args.data_dir):
        parser.error("--secondary-of needs --secondary-zone ORIGIN and --data-dir DIR")
    try:
        args.notify = [parse_listen(n) for n in args.notify]
        if args.secondary_of is not None:
            args.secondary_of = parse_listen(args.secondary_of)
    except ValueError as exc:
        parser.error(str(exc))
    if args.config is not None and args.name is None:
        parser.error("--config needs --name")
    if args.listen is not None:
        try:
            args.listen = parse_listen(args.listen)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def _from_config(args: argparse.Namespace) -> tuple[list[ZoneSource], str, int, dict[str, Any]]:
    """Zone files, address and role options of name server ``args.name`` in the topology.

    A zone without a file gets one generated into the server's data directory (once; then
    it is an ordinary zone file to edit). Raises ConfigError or KeyError with the reason.
    """
    topology = load_topology(args.config)
    server = topology.server(args.name)
    if not isinstance(server, DnsServerConfig):
        raise ConfigError(args.config, f"{args.name}", "not a name server (not under [dns])")
    today = time.strftime("%Y%m%d", time.gmtime())
    directory = topology.data_dir_of(server.name)
    options = server_options(topology, server.name, source=args.config)
    if server.role == "secondary":  # its zones come from the primary
        return [], server.host, server.port, options
    zones: list[ZoneSource] = [
        ensure_zone_file(topology, zone, directory, today) for zone in topology.zones
    ]
    return zones, server.host, server.port, options


async def _run(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.config is not None:
        zones, host, port, options = _from_config(args)
        zones = [*zones, *args.zone]
    else:
        zones, (host, port) = list(args.zone), args.listen or ("127.0.0.1", 5300)
    if args.listen is not None:
        host, port = args.listen
    options = _standalone_options(args, options)
    async with DnsServer(zones=zones, host=host, port=port, **options) as server:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, server.reload)
        for zone in server.answerer.zones():
            log.info("serving %s serial %d", zone.origin, zone.serial)
        where = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
        print(f"listening on udp {where} tcp {where}", flush=True)
        await stop.wait()
        log.info("stopping")
    return 0


def _standalone_options(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """Add the role flags given on the command line to the options from the topology."""
    options = dict(options)
    if args.notify:
        options["secondaries"] = [*options.get("secondaries", ()), *args.notify]
    if args.allow_transfer:
        options["allow_transfer"] = [*options.get("allow_transfer", ()), *args.allow_transfer]
    if args.watch:
        options["watch"] = True
    if args.secondary_of is not None:
        options["primary"] = args.secondary_of
        options["secondary_zones"] = args.secondary_zone
        options["data_dir"] = args.data_dir
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _arguments(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(_run(args))
    except (ZoneError, ConfigError) as exc:
        log.error("%s", exc)
        return 2
    except KeyError as exc:
        log.error("%s", exc.args[0])
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
