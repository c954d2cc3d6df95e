"""``python -m pylamp.sync``: run a receiver, or push a tree to receivers.

Receiver (one per secondary web server)::

    python -m pylamp.sync serve --root DIR --listen HOST:PORT --key FILE [--tls-cert C --tls-key K]
    python -m pylamp.sync serve --config cluster.toml --name web2

Once listening it prints ``listening on HOST:PORT`` (the real port when ``:0`` was asked).

Sender::

    python -m pylamp.sync push SRC HOST:PORT [HOST:PORT ...] --key FILE [--checksum]
        [--exclude PAT ...] [--no-compress] [--no-delete] [--json] [--tls-ca CA]
    python -m pylamp.sync push --config cluster.toml   # the primary's docroot to the secondaries

Watcher (push on change, debounced, plus a full scan every --interval seconds)::

    python -m pylamp.sync watch SRC HOST:PORT [HOST:PORT ...] --key FILE [--debounce 0.2]
        [--interval 60] [push options]

Exit status of ``push``: 0 when every receiver completed without error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pylamp.config import Topology, WebServerConfig, load_topology

from .sender import client_tls_context, parse_address, push
from .stats import Progress, SyncStats, format_stats, stats_json

__all__ = [
    "add_key_args",
    "add_push_args",
    "build_parser",
    "load_key",
    "main",
    "resolve_key",
    "resolve_targets",
    "tls_for_sender",
]

log = logging.getLogger("pylamp.sync")

Command = Callable[[argparse.Namespace], int]


def load_key(path: str | Path) -> bytes:
    """The shared key from a key file (surrounding whitespace ignored; at least 16 bytes)."""
    key = Path(path).read_bytes().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: the key must be at least 16 bytes")
    return key


def add_key_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that connect: the key, TLS and the topology."""
    p.add_argument("--key", metavar="FILE", help="file holding the shared key")
    p.add_argument("--tls-cert", metavar="FILE", help="TLS certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")
    p.add_argument("--tls-ca", metavar="FILE", help="CA to verify the peer against (PEM)")
    p.add_argument("--config", metavar="FILE", help="cluster topology (TOML)")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")


def add_push_args(p: argparse.ArgumentParser) -> None:
    """Options of what a push does (shared with ``watch``)."""
    p.add_argument("--checksum", "-c", action="store_true", help="compare whole-file hashes")
    p.add_argument(
        "--exclude", action="append", default=[], metavar="PAT", help="rsync-style pattern"
    )
    p.add_argument("--no-compress", action="store_true", help="send literal data uncompressed")
    p.add_argument("--no-delete", action="store_true", help="keep files gone at the source")
    p.add_argument(
        "--whole-file",
        "-W",
        action="store_true",
        help="send changed files whole, without the delta algorithm",
    )
    p.add_argument(
        "--no-delay-updates",
        action="store_true",
        help="rename each file into place as it arrives instead of all at the end",
    )


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The parser and its subcommand group (``watch`` adds itself here)."""
    parser = argparse.ArgumentParser(
        prog="python -m pylamp.sync", description="rsync-style content sync for pylamp."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a receiver")
    serve.add_argument("--root", metavar="DIR", help="directory to keep in sync")
    serve.add_argument("--listen", metavar="HOST:PORT", help="address (port 0: any free port)")
    serve.add_argument("--name", metavar="NAME", help="this web server's name in --config")
    serve.add_argument(
        "--fsync", action="store_true", help="flush each file to disk before renaming it"
    )
    add_key_args(serve)
    serve.set_defaults(func=_serve)

    p = sub.add_parser("push", help="push a tree to receivers")
    p.add_argument("src", nargs="?", help="source directory")
    p.add_argument("receivers", nargs="*", metavar="HOST:PORT")
    add_key_args(p)
    add_push_args(p)
    p.add_argument(
        "--dry-run", "-n", action="store_true", help="show what would be done, change nothing"
    )
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--timeout", type=float, default=10.0, help="connect timeout (s)")
    p.set_defaults(func=_push)

    w = sub.add_parser("watch", help="push on every change, plus a full scan every --interval")
    w.add_argument("src", nargs="?", help="source directory")
    w.add_argument("receivers", nargs="*", metavar="HOST:PORT")
    add_key_args(w)
    add_push_args(w)
    w.add_argument("--interval", type=float, help="seconds between full scans (default 60)")
    w.add_argument("--debounce", type=float, help="quiet seconds before a push (default 0.2)")
    w.add_argument("--timeout", type=float, default=10.0, help="connect timeout (s)")
    w.set_defaults(func=_watch)
    return parser, sub


def _topology(args: argparse.Namespace) -> Topology:
    return load_topology(args.config)


def resolve_key(args: argparse.Namespace) -> bytes:
    """The key from ``--key``, else the topology's key file."""
    if args.key:
        return load_key(args.key)
    if args.config:
        return load_key(_topology(args).sync_key_path())
    raise SystemExit("error: give --key FILE (or --config FILE)")


def resolve_targets(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Source and receivers from the arguments, else from the topology (the primary web
    server's docroot, pushed to every secondary's sync port)."""
    src, receivers = args.src, list(args.receivers)
    if (src is None or not receivers) and args.config:
        topo = _topology(args)
        primary = topo.web_primary()
        if src is None and primary is not None:
            src = str(topo.data_dir_of(primary.name) / "www")
        if not receivers:
            receivers = [f"{w.host}:{w.sync_port}" for w in topo.web_secondaries()]
    if src is None or not receivers:
        raise SystemExit("error: give SRC and HOST:PORT (or --config FILE)")
    return src, receivers


def _serve(args: argparse.Namespace) -> int:
    key = resolve_key(args)
    root, listen = args.root, args.listen
    if args.config:
        if not args.name:
            raise SystemExit("error: --config needs --name")
        topo = _topology(args)
        server = topo.server(args.name)
        if not isinstance(server, WebServerConfig):
            raise SystemExit(f"error: {args.name} is not a web server")
        root = root or str(topo.data_dir_of(server.name) / "www")
        listen = listen or f"{server.host}:{server.sync_port}"
    if not root or not listen:
        raise SystemExit("error: give --root DIR --listen HOST:PORT (or --config --name)")
    host, port = parse_address(listen)
    # Imported here: the receiver brings numpy, which a push with nothing to send never needs.
    from .receiver import SyncReceiver, server_tls_context

    tls = None
    if args.tls_cert:
        tls = server_tls_context(args.tls_cert, args.tls_key or args.tls_cert, args.tls_ca)

    async def run() -> None:
        async with SyncReceiver(root, host, port, key=key, tls=tls, fsync=args.fsync) as rx:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            h, p = rx.address
            print(f"listening on {h}:{p}", flush=True)
            await stop.wait()

    asyncio.run(run())
    return 0


def tls_for_sender(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client TLS context asked for by ``--tls-ca``/``--tls-cert``, or None."""
    if args.tls_ca or args.tls_cert:
        return client_tls_context(args.tls_ca, args.tls_cert, args.tls_key)
    return None


def _push(args: argparse.Namespace) -> int:
    key = resolve_key(args)
    src, receivers = resolve_targets(args)
    if not Path(src).is_dir():
        raise SystemExit(f"error: {src} is not a directory")
    tls = tls_for_sender(args)
    bar: Progress | None = None
    if not args.json and not args.quiet:
        bar = Progress()

    async def run() -> list[SyncStats]:
        return await push(
            src,
            receivers,
            key=key,
            checksum=args.checksum,
            excludes=args.exclude,
            compress=not args.no_compress,
            delete=not args.no_delete,
            delay_updates=not args.no_delay_updates,
            whole_file=args.whole_file,
            dry_run=args.dry_run,
            tls=tls,
            timeout=args.timeout,
            progress=bar.update if bar is not None else None,
        )

    results = asyncio.run(run())
    if bar is not None:
        bar.close()
    if args.json:
        print(stats_json(results))
    else:
        print("\n\n".join(format_stats(s) for s in results))
    return 0 if all(s.ok for s in results) else 1


def _watch(args: argparse.Namespace) -> int:
    key = resolve_key(args)
    src, receivers = resolve_targets(args)
    if not Path(src).is_dir():
        raise SystemExit(f"error: {src} is not a directory")
    cluster = _topology(args).cluster if args.config else None
    interval = args.interval or (cluster.sync_interval if cluster else 60.0)
    debounce = (
        args.debounce if args.debounce is not None else (cluster.sync_debounce if cluster else 0.2)
    )

    from .watch import SyncWatcher, format_round  # watchdog: only this command needs it

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with SyncWatcher(
            src,
            receivers,
            key=key,
            debounce=debounce,
            interval=interval,
            excludes=args.exclude,
            checksum=args.checksum,
            compress=not args.no_compress,
            delete=not args.no_delete,
            delay_updates=not args.no_delay_updates,
            whole_file=args.whole_file,
            tls=tls_for_sender(args),
            timeout=args.timeout,
            on_push=lambda rnd: print(format_round(rnd), flush=True),
        ):
            print(f"watching {src} -> {' '.join(receivers)}", flush=True)
            await stop.wait()

    asyncio.run(run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        return int(args.func(args))
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
