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

UDP is answered in batches by a thread calling ``recvmmsg``/``sendmmsg`` where the platform
has them (:mod:`pylamp.dns.udpbatch`); ``--no-udp-batch`` answers it on the event loop instead.

``--workers N`` (default 1) serves with N processes sharing the port through SO_REUSEPORT
(:mod:`pylamp.dns.workers`); the line is printed once all of them listen. Each process keeps its
own round-robin counters: one client (one source address and port) always reaches the same
process and sees an exact rotation; across clients the rotation is per process, as with NSD's
servers. Only the main process watches zone files and sends NOTIFY; it passes reloads (SIGHUP,
watched changes) on to the workers. Health checks run in every process. When a worker dies the
main stops the others and exits with status 1, for a supervisor to restart it. A secondary runs
as one process only.
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
from pylamp.dns.workers import (
    WORKER_FLAG,
    WorkerError,
    WorkerPool,
    reuse_port_supported,
    watch_main,
)
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
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving the port together (SO_REUSEPORT; default 1)",
    )
    parser.add_argument(
        "--no-udp-batch",
        dest="udp_batch",
        action="store_false",
        help="answer UDP on the event loop, not in batches from a recvmmsg/sendmmsg thread",
    )
    parser.add_argument(WORKER_FLAG, type=int, metavar="PID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1 and not reuse_port_supported():
        parser.error("--workers above 1 needs SO_REUSEPORT, which this platform does not have")
    if args.workers > 1 and args.secondary_of is not None:
        parser.error(_SECONDARY_REFUSED)
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


_SECONDARY_REFUSED = (
    "--workers above 1 is not supported for a secondary (its saved copy and SOA timers belong"
    " to one process); run it with --workers 1"
)


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


async def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    options: dict[str, Any] = {}
    if args.config is not None:
        zones, host, port, options = _from_config(args)
        zones = [*zones, *args.zone]
    else:
        zones, (host, port) = list(args.zone), args.listen or ("127.0.0.1", 5300)
    if args.listen is not None:
        host, port = args.listen
    options = _standalone_options(args, options)
    worker = args.worker_of is not None
    if args.workers > 1 and not worker and "primary" in options:
        log.error("%s", _SECONDARY_REFUSED)
        return 2
    if worker:
        options = _worker_options(options)
    reuse_port = worker or args.workers > 1
    async with DnsServer(
        zones=zones,
        host=host,
        port=port,
        reuse_port=reuse_port,
        udp_batch=args.udp_batch,
        **options,
    ) as server:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        pool = None
        if args.workers > 1 and not worker:
            pool = WorkerPool(argv, host, server.port, args.workers - 1)
            server.roles.on_file_loaded = lambda _zone: pool.reload()
        loop.add_signal_handler(signal.SIGHUP, lambda: _reload(server, pool))
        if not worker:
            for zone in server.answerer.zones():
                log.info("serving %s serial %d", zone.origin, zone.serial)
        try:
            if pool is not None:
                await pool.start()
            where = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
            print(f"listening on udp {where} tcp {where}", flush=True)
            status = await _serve(stop, pool, args.worker_of)
        except WorkerError as exc:
            log.error("%s", exc)
            status = 1
        finally:
            if pool is not None:
                await pool.stop()
        log.info("stopping")
    return status


def _reload(server: DnsServer, pool: WorkerPool | None) -> None:
    server.reload()
    if pool is not None:
        pool.reload()


async def _serve(stop: asyncio.Event, pool: WorkerPool | None, main_pid: int | None) -> int:
    """Wait for SIGINT/SIGTERM (0), a worker's death (1) or, in a worker, the main's end."""
    waits: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if main_pid is not None:
        waits.append(asyncio.create_task(watch_main(main_pid, stop)))
    died = asyncio.create_task(pool.first_exit()) if pool is not None else None
    if died is not None:
        waits.append(died)
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    if died is not None and died.done() and not died.cancelled() and not stop.is_set():
        pid, status = died.result()
        log.error(
            "worker %d exited with status %d; stopping the other workers and exiting with"
            " status 1 (restart the server)",
            pid,
            status,
        )
        return 1
    return 0


def _worker_options(options: dict[str, Any]) -> dict[str, Any]:
    """A worker lets the same hosts transfer, but neither sends NOTIFY nor watches files."""
    options = dict(options)
    secondaries = options.pop("secondaries", ())
    hosts = [host for host, _ in secondaries]
    if hosts or options.get("allow_transfer"):
        options["allow_transfer"] = [*options.get("allow_transfer", ()), *hosts]
    options.pop("watch", None)
    return options


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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _arguments(argv)
    who = " worker %(process)d" if args.worker_of is not None else ""
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s %(name)s{who} %(levelname)s %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(_run(args, argv))
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
