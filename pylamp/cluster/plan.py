"""Which processes a topology needs, and the command that starts each (pure: no I/O).

Every server runs as its own process, `python -m pylamp.<kind> --config FILE --name NAME`, the
same command an operator runs by hand on a separate host. A server whose component is not built
yet is reported rather than started.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pylamp.config import DbServerConfig, DnsServerConfig, Topology, WebServerConfig

__all__ = ["Planned", "describe", "kind_of", "plan"]


@dataclass(frozen=True)
class Planned:
    """One server of the topology: how to start it, or why it is not started."""

    name: str
    kind: str  # "dns", "web" or "db"
    role: str
    host: str
    port: int
    command: tuple[str, ...] | None  # None: not started
    reason: str = ""  # why not started


def kind_of(server: DnsServerConfig | WebServerConfig | DbServerConfig) -> str:
    """The component that runs `server`: "dns", "web" or "db"."""
    if isinstance(server, DnsServerConfig):
        return "dns"
    if isinstance(server, WebServerConfig):
        return "web"
    return "db"


def plan(
    topology: Topology,
    config_file: str,
    *,
    built: Callable[[str, str], str | None],
    log_level: str = "INFO",
    only: Sequence[str] = (),
    python: str = sys.executable,
) -> list[Planned]:
    """The servers to start, in start order (databases, web servers, name servers).

    `built(kind, role)` returns None when that component and role can run, or the reason it
    cannot (not built yet). `only` limits the plan to the named servers.
    """
    out = []
    for server in topology.servers():
        if only and server.name not in only:
            continue
        kind = kind_of(server)
        missing = built(kind, server.role)
        command = None
        if missing is None:
            command = (
                python,
                "-m",
                f"pylamp.{kind}",
                "--config",
                config_file,
                "--name",
                server.name,
                "--log-level",
                log_level,
            )
        out.append(
            Planned(
                server.name,
                kind,
                server.role,
                server.host,
                server.port,
                command,
                missing or "",
            )
        )
    return out


def describe(planned: Sequence[Planned], topology: Topology) -> str:
    """The table printed once the cluster is up, with a command to try for each kind."""
    rows = [("server", "kind", "role", "address", "state")]
    for p in planned:
        state = "running" if p.command else f"not started: {p.reason}"
        rows.append((p.name, p.kind, p.role, f"{p.host}:{p.port}", state))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ]
    tries = []
    for p in planned:
        if p.command is None:
            continue
        if p.kind == "dns":
            name = _balanced_name(topology)
            tries.append(f"dig @{p.host} -p {p.port} {name} +norec   # ask {p.name}")
        elif p.kind == "db":
            tries.append(f"mysql -h {p.host} -P {p.port} -u root   # {p.name}")
        elif p.kind == "web":
            tries.append(f"curl -i http://{p.host}:{p.port}/   # {p.name}")
    if tries:
        lines += ["", "Try:", *("  " + t for t in tries)]
    return "\n".join(lines)


def _balanced_name(topology: Topology) -> str:
    for zone in topology.zones:
        for balance in zone.balance:
            return f"{balance.name}.{zone.origin.rstrip('.')}"
    return topology.cluster.domain
