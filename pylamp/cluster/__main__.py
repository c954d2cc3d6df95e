"""`python -m pylamp.cluster`: start every server of the topology, each as its own process.

Prints where each server listens and a command to try, then runs until Ctrl-C or SIGTERM and
stops every server cleanly. `--print-config` writes the topology (the built-in foo.com cluster
unless `--config` names a file) as TOML to edit and pass back with `--config`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pylamp.cluster.plan import describe
from pylamp.cluster.supervisor import Cluster, ClusterError
from pylamp.config import ConfigError, default_topology, dump_topology, load_topology


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pylamp.cluster",
        description="Start the load-balanced LAMP cluster: every server as its own process.",
    )
    parser.add_argument("--config", metavar="FILE", help="topology file (default: foo.com)")
    parser.add_argument("--data-dir", metavar="DIR", help="state folder (default: from topology)")
    parser.add_argument(
        "--only", metavar="NAME", nargs="+", default=(), help="start only these servers"
    )
    parser.add_argument("--print-config", action="store_true", help="print the topology, exit")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser


async def _run(cluster: Cluster) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with cluster:
        print(f"pylamp cluster up; state in {cluster.data_dir}", flush=True)
        print(describe(cluster.planned, cluster.topology), flush=True)
        print("\nCtrl-C stops every server.", flush=True)
        await stop.wait()
        print("stopping...", flush=True)
    print("stopped.", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        topology = load_topology(args.config) if args.config else default_topology()
    except ConfigError as exc:
        print(f"pylamp.cluster: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(dump_topology(topology))
        return 0
    names = {s.name for s in topology.servers()}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"pylamp.cluster: no server {unknown[0]!r} in the topology", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir) if args.data_dir else None
    cluster = Cluster(topology, data_dir, log_level=args.log_level.upper(), only=args.only)
    try:
        asyncio.run(_run(cluster))
    except ClusterError as exc:
        print(f"pylamp.cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
