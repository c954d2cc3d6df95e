"""``python -m pylamp.db``: run one SQL server (MySQL protocol, SQLite storage, binary log).

Standalone::

    python -m pylamp.db --data-dir DIR --listen 127.0.0.1:3306 --server-id 1 --log-bin db1

or as a server of the cluster topology (options given on the command line win)::

    python -m pylamp.db --config cluster.toml --name db1

Once listening it prints one line ``pylamp.db NAME listening on HOST:PORT`` (the bound port when
asked for port 0), and stops cleanly on SIGINT or SIGTERM (open transactions roll back, the
binary log is closed with a STOP event).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pylamp.db.dbfiles import PAGE_SIZES
from pylamp.db.server import SqlServer

__all__ = ["main", "parse_args"]

log = logging.getLogger("pylamp.db")


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pylamp.db",
        description="A MySQL-protocol SQL server over SQLite with a MySQL binary log.",
    )
    parser.add_argument("--config", type=Path, help="cluster topology file (TOML)")
    parser.add_argument("--name", help="this server's name in the topology (e.g. db1)")
    parser.add_argument("--data-dir", type=Path, help="where the databases and binlog live")
    parser.add_argument(
        "--listen", type=_listen, metavar="HOST:PORT", help="address to listen on (port 0: any)"
    )
    parser.add_argument("--server-id", type=int, help="server id written into the binlog")
    parser.add_argument("--log-bin", metavar="NAME", help="write the binlog as NAME-bin.000001...")
    parser.add_argument("--root-password", help="password of the root user")
    parser.add_argument("--max-binlog-size", type=int, metavar="BYTES", help="rotate after this")
    parser.add_argument(
        "--sync-binlog", type=int, metavar="N", help="fsync the binlog every N commits (0: never)"
    )
    parser.add_argument(
        "--read-only", action="store_true", default=None, help="refuse writes (error 1290)"
    )
    parser.add_argument("--max-connections", type=int, metavar="N", help="default 500")
    parser.add_argument(
        "--binlog-preallocate",
        type=int,
        metavar="BYTES",
        help="zeros kept ahead of the open binlog file's end (default 1 MiB; 0: off)",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        metavar="BYTES",
        help="SQLite page size of new databases (default 4096; 512-65536, a power of two)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[dict[str, Any], str, str]:
    """The command line (and the topology, if named) as SqlServer arguments, name, log level."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    settings: dict[str, Any] = {
        "data_dir": None,
        "host": "127.0.0.1",
        "port": 3306,
        "server_id": 1,
        "log_bin": None,
        "root_password": None,
        "max_binlog_size": 1 << 30,
        "sync_binlog": 1,
    }
    name = args.name or "db"
    if args.config is not None or args.name is not None:
        if args.config is None or args.name is None:
            parser.error("--config and --name go together")
        from pylamp.config import ConfigError, DbServerConfig, load_topology

        try:
            topology = load_topology(args.config)
            server = topology.server(args.name)
        except (ConfigError, KeyError, OSError) as exc:
            parser.error(str(exc))
        if not isinstance(server, DbServerConfig):
            parser.error(f"{args.name!r} is not a database server in {args.config}")
        settings.update(
            data_dir=topology.data_dir_of(args.name),
            host=server.host,
            port=server.port,
            server_id=server.server_id,
            log_bin=server.log_bin,
            root_password=server.root_password,
            max_binlog_size=server.max_binlog_size,
            sync_binlog=server.sync_binlog,
        )
        if server.role == "replica":
            log.warning("%s is a replica in the topology; replication is not built yet", name)
    if args.listen is not None:
        settings["host"], settings["port"] = args.listen
    options = ("data_dir", "server_id", "log_bin", "root_password", "max_binlog_size")
    for key in (*options, "read_only", "max_connections", "binlog_preallocate", "page_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.sync_binlog is not None:
        settings["sync_binlog"] = args.sync_binlog
    if settings["data_dir"] is None:
        parser.error("--data-dir (or --config and --name) is required")
    page_size = settings.get("page_size")
    if page_size is not None and page_size not in PAGE_SIZES:
        parser.error(f"--page-size must be a power of two from 512 to 65536, not {page_size}")
    return settings, name, str(args.log_level).upper()


async def _serve(settings: dict[str, Any], name: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with SqlServer(**settings) as server:
        host, port = server.address
        print(f"pylamp.db {name} listening on {host}:{port}", flush=True)
        await stop.wait()
        log.info("stopping")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; return the exit status."""
    settings, name, level = parse_args(argv)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(settings, name))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
