"""Run every server of a topology as its own process, for a person or a test harness.

`async with Cluster(topology, data_dir) as cluster:` starts the servers in order, returns once
each accepts connections, and stops them all (SIGTERM, then SIGKILL after a grace period) on
exit. `stop(name)`, `start(name)` and `kill(name)` serve fault tests. Ports given as 0 in the
topology are resolved to free ports first, and the resolved topology is written to
`<data_dir>/cluster.toml`, which every child reads: so children need no way to report ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from pylamp.cluster.plan import Planned, plan
from pylamp.config import Topology, dump_topology

__all__ = ["Cluster", "ClusterError", "component_built"]

log = logging.getLogger("pylamp.cluster")


class ClusterError(RuntimeError):
    """A server could not be started, or did not become ready."""


def component_built(kind: str, role: str) -> str | None:
    """None when `python -m pylamp.<kind>` can run a server of `role`, else the reason not."""
    if importlib.util.find_spec(f"pylamp.{kind}.__main__") is None:
        return f"pylamp.{kind} is not built yet"
    if kind == "db" and role == "replica" and importlib.util.find_spec("pylamp.db.replica") is None:
        return "replication (pylamp.db.replica) is not built yet"
    return None


class Cluster:
    """The servers of `topology`, each in its own process, with state under `data_dir`."""

    def __init__(
        self,
        topology: Topology,
        data_dir: str | Path | None = None,
        *,
        log_level: str = "INFO",
        only: Sequence[str] = (),
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        output: Callable[[str, str], None] | None = None,
        built: Callable[[str, str], str | None] = component_built,
    ) -> None:
        base = Path(data_dir if data_dir is not None else topology.cluster.data_dir)
        self.data_dir = base.resolve()
        self._wanted = topology
        self._log_level = log_level
        self._only = tuple(only)
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._output = output or _print_child_line
        self._built = built
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self.topology = topology
        self.config_file = self.data_dir / "cluster.toml"
        self.planned: list[Planned] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.topology = _resolve_ports(self._wanted, self.data_dir)
        _ensure_sync_key(self.topology.sync_key_path(self.data_dir))
        temp = self.config_file.with_name(".cluster.toml.tmp")
        temp.write_text(dump_topology(self.topology), encoding="utf-8")
        temp.replace(self.config_file)
        self.planned = plan(
            self.topology,
            str(self.config_file),
            built=self._built,
            log_level=self._log_level,
            only=self._only,
        )
        try:
            for p in self.planned:
                if p.command is not None:
                    await self.start(p.name)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every running server, last started first."""
        for name in reversed(list(self._processes)):
            await self.stop(name)

    # -- one server -----------------------------------------------------------------------------

    def address(self, name: str) -> tuple[str, int]:
        """Where server `name` listens (its resolved host and port)."""
        server = self.topology.server(name)
        return server.host, server.port

    def running(self, name: str) -> bool:
        """Whether server `name`'s process is alive."""
        proc = self._processes.get(name)
        return proc is not None and proc.returncode is None

    async def start(self, name: str) -> None:
        """Start server `name` and return once it accepts connections."""
        planned = self._planned(name)
        if planned.command is None:
            raise ClusterError(f"{name} cannot be started: {planned.reason}")
        if self.running(name):
            return
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = await asyncio.create_subprocess_exec(
            *planned.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=self.data_dir,
            start_new_session=True,  # our signals reach it only when we send them
        )
        self._processes[name] = proc
        tail: list[str] = []
        self._pumps[name] = asyncio.create_task(self._pump(name, proc, tail))
        try:
            await self._wait_ready(planned, proc)
        except ClusterError:
            await self.kill(name)
            raise ClusterError(
                f"{name} did not start:\n" + "\n".join(f"  {line}" for line in tail[-20:])
            ) from None
        log.info("%s ready on %s:%d", name, planned.host, planned.port)

    async def stop(self, name: str) -> int | None:
        """Stop server `name` cleanly (SIGTERM, then SIGKILL after the grace period)."""
        proc = self._processes.get(name)
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self._stop_timeout)
            except TimeoutError:
                log.warning("%s did not stop within %.0fs; killing it", name, self._stop_timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._finish(name)
        return proc.returncode

    async def kill(self, name: str) -> None:
        """Kill server `name` at once (SIGKILL), as a crash would."""
        proc = self._processes.get(name)
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._finish(name)

    # -- helpers --------------------------------------------------------------------------------

    def _planned(self, name: str) -> Planned:
        for p in self.planned:
            if p.name == name:
                return p
        raise KeyError(f"{name} is not part of this cluster")

    async def _finish(self, name: str) -> None:
        self._processes.pop(name, None)
        pump = self._pumps.pop(name, None)
        if pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _pump(self, name: str, proc: asyncio.subprocess.Process, tail: list[str]) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            tail.append(line)
            del tail[:-50]
            self._output(name, line)

    async def _wait_ready(self, planned: Planned, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_timeout
        while True:
            if proc.returncode is not None:
                raise ClusterError(f"exited with status {proc.returncode}")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(planned.host, planned.port), 1.0
                )
            except (OSError, TimeoutError):
                if loop.time() > deadline:
                    raise ClusterError("not listening in time") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


def _print_child_line(name: str, line: str) -> None:
    print(f"{name:>5} | {line}", file=sys.stderr, flush=True)


def _resolve_ports(topology: Topology, data_dir: Path) -> Topology:
    """The topology with every port 0 replaced by a port free on that server's host."""

    taken: set[tuple[str, int]] = set()

    def free(host: str, udp_too: bool) -> int:
        while True:
            with socket.socket(_family(host), socket.SOCK_STREAM) as tcp:
                tcp.bind((host, 0))
                port = int(tcp.getsockname()[1])
                if (host, port) in taken:
                    continue
                if udp_too:
                    with socket.socket(_family(host), socket.SOCK_DGRAM) as udp:
                        try:
                            udp.bind((host, port))
                        except OSError:
                            continue
            taken.add((host, port))
            return port

    dns = tuple(
        dataclasses.replace(s, port=s.port or free(s.host, udp_too=True)) for s in topology.dns
    )
    web = tuple(
        dataclasses.replace(
            w,
            port=w.port or free(w.host, udp_too=False),
            sync_port=w.sync_port or free(w.host, udp_too=False),
        )
        for w in topology.web
    )
    db = tuple(
        dataclasses.replace(d, port=d.port or free(d.host, udp_too=False)) for d in topology.db
    )
    cluster = dataclasses.replace(topology.cluster, data_dir=str(data_dir))
    return dataclasses.replace(topology, cluster=cluster, dns=dns, web=web, db=db)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _ensure_sync_key(path: Path) -> None:
    """Create the shared content-sync key (random, owner-only) the first time."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    temp.replace(path)
