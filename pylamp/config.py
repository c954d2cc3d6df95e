"""The cluster topology: which servers exist, where they listen and how they relate.

One TOML file describes the whole cluster; every server reads the same file and picks its own
section by name (``--name web2``), so the cluster runs on one machine or on seven hosts
unchanged. The built-in default is the article's foo.com cluster (DESIGN.md section 1)::

    [cluster]          domain, data_dir, sync key file
    [dns.ns1]          host, port, role = "primary"
    [dns.ns2]          host, port, role = "secondary", primary = "ns1"
    [zones."foo.com"]  file (optional: generated from the topology when absent)
    [zones."foo.com".balance.www]   servers, check, path, interval, timeout, fall, rise, order
    [web.web1]         host, port, role = "primary", database = "db1"
    [web.web2]         host, port, role = "secondary", sync_port, database = "db2"
    [db.db1]           host, port, role = "master", server_id, log_bin
    [db.db2]           host, port, role = "replica", master = "db1", master_user, ...

`load_topology` refuses a bad file with a `ConfigError` naming the file, the key and what is
wrong; `dump_topology` writes TOML that loads back to an equal `Topology`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

__all__ = [
    "Balance",
    "ClusterSettings",
    "ConfigError",
    "DbServerConfig",
    "DnsServerConfig",
    "HealthCheck",
    "Topology",
    "WebServerConfig",
    "ZoneConfig",
    "default_topology",
    "dump_topology",
    "ensure_zone_file",
    "load_topology",
    "loads_topology",
    "zone_text",
]


class ConfigError(ValueError):
    """A topology that cannot be used; the message names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ClusterSettings:
    """Settings shared by every server of the cluster."""

    domain: str = "foo.com"
    data_dir: str = "pylamp-data"
    # Shared secret for content sync, relative to data_dir unless absolute. Created (random)
    # by the cluster supervisor on first start when missing.
    sync_key_file: str = "sync.key"
    sync_interval: float = 60.0
    sync_debounce: float = 0.2


@dataclass(frozen=True)
class DnsServerConfig:
    """An authoritative name server: the zone's primary, or a secondary of `primary`."""

    name: str
    host: str
    port: int = 5300
    role: Literal["primary", "secondary"] = "primary"
    primary: str | None = None


@dataclass(frozen=True)
class HealthCheck:
    """How the name servers decide whether a load-balanced address is alive.

    `kind` is "http" (GET `path`, alive on a 2xx answer) or "tcp" (a connect). An address goes
    down after `fall` failed checks in a row and comes back after `rise` good ones.
    """

    kind: Literal["http", "tcp"] = "http"
    path: str = "/server-status"
    interval: float = 2.0
    timeout: float = 1.0
    fall: int = 3
    rise: int = 2


@dataclass(frozen=True)
class Balance:
    """A name answered by several web servers in turn (round robin), with health checks.

    `order` is "cyclic" (BIND's rrset-order cyclic) or "least-loaded" (live addresses ordered
    by the load each web server reports at the check path).
    """

    name: str
    servers: tuple[str, ...]
    check: HealthCheck | None = field(default_factory=HealthCheck)
    order: Literal["cyclic", "least-loaded"] = "cyclic"


@dataclass(frozen=True)
class ZoneConfig:
    """A zone the name servers serve: from `file` (BIND master format) or generated."""

    origin: str
    file: str | None = None
    ttl: int = 300
    refresh: int = 10800
    retry: int = 3600
    expire: int = 86400
    minimum: int = 300
    balance: tuple[Balance, ...] = ()


@dataclass(frozen=True)
class WebServerConfig:
    """A web server; the primary's docroot is pushed to the secondaries' sync receivers."""

    name: str
    host: str
    port: int = 8080
    role: Literal["primary", "secondary"] = "secondary"
    sync_port: int = 8730
    database: str | None = None
    app: str = "pylamp.web.demo:create_app"


@dataclass(frozen=True)
class DbServerConfig:
    """A SQL server speaking the MySQL protocol: the master, or a replica of `master`."""

    name: str
    host: str
    port: int = 3306
    role: Literal["master", "replica"] = "master"
    server_id: int = 1
    log_bin: str | None = None
    root_password: str | None = None
    sync_binlog: int = 1
    max_binlog_size: int = 1 << 30
    master: str | None = None
    master_user: str = "copy"
    master_password: str = "copypass"
    master_connect_retry: float = 15.0


@dataclass(frozen=True)
class Topology:
    """The whole cluster: every server by kind, the zones, and shared settings."""

    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    dns: tuple[DnsServerConfig, ...] = ()
    zones: tuple[ZoneConfig, ...] = ()
    web: tuple[WebServerConfig, ...] = ()
    db: tuple[DbServerConfig, ...] = ()

    def servers(self) -> list[DnsServerConfig | WebServerConfig | DbServerConfig]:
        """Every server, in start order: databases, web servers, then name servers."""
        return [*self.db, *self.web, *self.dns]

    def server(self, name: str) -> DnsServerConfig | WebServerConfig | DbServerConfig:
        """The server called `name`; KeyError names the ones that exist."""
        for server in self.servers():
            if server.name == name:
                return server
        known = ", ".join(s.name for s in self.servers())
        raise KeyError(f"no server {name!r} in the topology (servers: {known})")

    def data_dir_of(self, name: str, base: Path | None = None) -> Path:
        """The folder that holds server `name`'s state: <data_dir>/<name>."""
        root = Path(self.cluster.data_dir) if base is None else base
        return root / name

    def sync_key_path(self, base: Path | None = None) -> Path:
        """Where the shared content-sync key lives."""
        key = Path(self.cluster.sync_key_file)
        if key.is_absolute():
            return key
        root = Path(self.cluster.data_dir) if base is None else base
        return root / key

    def secondaries_of(self, primary: str) -> list[DnsServerConfig]:
        """The name servers that transfer their zones from `primary`."""
        return [s for s in self.dns if s.role == "secondary" and s.primary == primary]

    def replicas_of(self, master: str) -> list[DbServerConfig]:
        """The SQL servers that replicate from `master`."""
        return [s for s in self.db if s.role == "replica" and s.master == master]

    def web_primary(self) -> WebServerConfig | None:
        """The web server whose docroot is the source of content sync."""
        return next((w for w in self.web if w.role == "primary"), None)

    def web_secondaries(self) -> list[WebServerConfig]:
        """The web servers that receive content from the primary."""
        return [w for w in self.web if w.role == "secondary"]

    def db_master(self) -> DbServerConfig | None:
        """The SQL server that takes writes."""
        return next((d for d in self.db if d.role == "master"), None)


def default_topology() -> Topology:
    """The article's foo.com cluster: ns1/ns2, web1-3, db1/db2, one loopback address each."""
    webs = ("web1", "web2", "web3")
    return Topology(
        cluster=ClusterSettings(),
        dns=(
            DnsServerConfig("ns1", "127.0.1.1", 5300, "primary"),
            DnsServerConfig("ns2", "127.0.1.2", 5300, "secondary", primary="ns1"),
        ),
        zones=(ZoneConfig("foo.com", balance=(Balance("www", webs),)),),
        web=(
            WebServerConfig("web1", "127.0.2.1", 8080, "primary", database="db1"),
            WebServerConfig("web2", "127.0.2.2", 8080, "secondary", database="db2"),
            WebServerConfig("web3", "127.0.2.3", 8080, "secondary", database="db2"),
        ),
        db=(
            DbServerConfig("db1", "127.0.3.1", 3306, "master", server_id=1, log_bin="db1"),
            DbServerConfig(
                "db2", "127.0.3.2", 3306, "replica", server_id=2, log_bin="db2", master="db1"
            ),
        ),
    )


# -- loading ------------------------------------------------------------------------------------

_KINDS: dict[str, type] = {"dns": DnsServerConfig, "web": WebServerConfig, "db": DbServerConfig}


def load_topology(path: str | Path) -> Topology:
    """Read and check a topology file; a `ConfigError` names the file, key and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    topology = loads_topology(text, source=str(path))
    # A relative zone file is relative to the topology file, wherever the server is started.
    zones = tuple(
        dataclasses.replace(z, file=str(path.parent / z.file))
        if z.file is not None and not Path(z.file).is_absolute()
        else z
        for z in topology.zones
    )
    return dataclasses.replace(topology, zones=zones)


def loads_topology(text: str, *, source: str = "<topology>") -> Topology:
    """Parse and check topology TOML given as text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from exc
    return _Loader(source).topology(raw)


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def topology(self, raw: Mapping[str, Any]) -> Topology:
        self.unknown_keys(raw, "", {"cluster", "dns", "zones", "web", "db"})
        cluster = self.record(ClusterSettings, raw.get("cluster", {}), "cluster")
        servers: dict[str, tuple[Any, ...]] = {}
        for kind, cls in _KINDS.items():
            table = self.table(raw.get(kind, {}), kind)
            servers[kind] = tuple(
                self.record(cls, body, f"{kind}.{name}", name=name) for name, body in table.items()
            )
        zones_table = self.table(raw.get("zones", {}), "zones")
        zones = tuple(
            self.zone(origin, body, f"zones.{_key(origin)}") for origin, body in zones_table.items()
        )
        topology = Topology(
            cluster=cluster, dns=servers["dns"], zones=zones, web=servers["web"], db=servers["db"]
        )
        self.check(topology)
        return topology

    def zone(self, origin: str, body: Any, key: str) -> ZoneConfig:
        body = dict(self.table(body, key))
        balance_table = self.table(body.pop("balance", {}), f"{key}.balance")
        balance = []
        for name, entry in balance_table.items():
            entry_key = f"{key}.balance.{_key(name)}"
            entry = dict(self.table(entry, entry_key))
            check_raw = entry.pop("check", "http")
            check_fields = {
                f.name for f in dataclasses.fields(HealthCheck) if f.name != "kind"
            } & set(entry)
            check_body = {k: entry.pop(k) for k in check_fields}
            if check_raw == "none":
                if check_body:
                    raise self.error(
                        f"{entry_key}.{sorted(check_body)[0]}", "given, but check is 'none'"
                    )
                check = None
            else:
                check = self.record(
                    HealthCheck, {**check_body, "kind": check_raw}, entry_key, kind_key="check"
                )
            balance.append(self.record(Balance, {**entry, "check": check}, entry_key, name=name))
        return self.record(ZoneConfig, {**body, "balance": tuple(balance)}, key, origin=origin)

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {_describe(value)}")
        return value

    def unknown_keys(self, body: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        for name in body:
            if name not in allowed:
                where = f"{key}.{_key(name)}" if key else _key(name)
                raise self.error(
                    where, f"unknown key (expected one of: {', '.join(sorted(allowed))})"
                )

    def record(self, cls: type, body: Any, key: str, kind_key: str = "kind", **given: Any) -> Any:
        body = self.table(body, key)
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        settable = {name for name in fields if name not in given}
        self.unknown_keys({k: v for k, v in body.items() if k not in given}, key, settable)
        values: dict[str, Any] = dict(given)
        for name in settable:
            f = fields[name]
            if name in body:
                shown = kind_key if name == "kind" else name
                values[name] = self.value(body[name], hints[name], f"{key}.{shown}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error(f"{key}.{name}", "missing (required)")
        return cls(**values)

    def value(self, value: Any, hint: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:
                return self.value(value, options[0], key)
            if all(dataclasses.is_dataclass(a) for a in options) or value is None:
                return value
            raise self.error(key, "unsupported union")  # pragma: no cover - schema error
        if origin is Literal:
            if value not in args:
                choices = ", ".join(repr(a) for a in args)
                raise self.error(key, f"must be one of {choices}, got {value!r}")
            return value
        if origin is tuple:
            if dataclasses.is_dataclass(args[0]) and isinstance(value, tuple):
                return value  # built by the caller (balance entries)
            if not isinstance(value, list):
                raise self.error(key, f"expected a list, got {_describe(value)}")
            return tuple(self.value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if dataclasses.is_dataclass(hint):
            return value
        if hint is bool:
            if not isinstance(value, bool):
                raise self.error(key, f"expected true or false, got {_describe(value)}")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(key, f"expected an integer, got {_describe(value)}")
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(key, f"expected a number, got {_describe(value)}")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise self.error(key, f"expected a string, got {_describe(value)}")
            return value
        raise self.error(key, f"unsupported type {hint!r}")  # pragma: no cover - schema error

    def check(self, topology: Topology) -> None:
        """Cross-field rules: unique names, valid ports and addresses, references that exist."""
        seen: dict[str, str] = {}
        for server in topology.servers():
            kind = _kind_of(server)
            key = f"{kind}.{server.name}"
            if server.name in seen:
                raise self.error(key, f"name already used by {seen[server.name]}.{server.name}")
            seen[server.name] = kind
            self.address(server.host, f"{key}.host")
            self.port(server.port, f"{key}.port")
        listening: dict[tuple[str, int], str] = {}
        for server in topology.servers():
            ports = [server.port]
            if isinstance(server, WebServerConfig) and server.role == "secondary":
                ports.append(server.sync_port)
                self.port(server.sync_port, f"web.{server.name}.sync_port")
            for port in ports:
                if port == 0:
                    continue
                other = listening.get((server.host, port))
                if other is not None:
                    raise self.error(
                        f"{_kind_of(server)}.{server.name}.port",
                        f"{server.host}:{port} is already used by {other}",
                    )
                listening[(server.host, port)] = server.name
        dns = {s.name: s for s in topology.dns}
        for s in topology.dns:
            if s.role == "secondary":
                if s.primary is None:
                    raise self.error(f"dns.{s.name}.primary", "a secondary needs its primary")
                if s.primary not in dns or dns[s.primary].role != "primary":
                    raise self.error(
                        f"dns.{s.name}.primary", f"no primary name server {s.primary!r}"
                    )
            elif s.primary is not None:
                raise self.error(f"dns.{s.name}.primary", "only a secondary has a primary")
        dbs = {d.name: d for d in topology.db}
        ids: dict[int, str] = {}
        for d in topology.db:
            key = f"db.{d.name}"
            if d.server_id in ids:
                raise self.error(f"{key}.server_id", f"{d.server_id} is also {ids[d.server_id]}'s")
            ids[d.server_id] = d.name
            if d.server_id < 1:
                raise self.error(f"{key}.server_id", "must be a positive integer")
            if d.role == "replica":
                if d.master is None or d.master not in dbs:
                    raise self.error(f"{key}.master", f"no SQL server {d.master!r} to replicate")
            elif d.master is not None:
                raise self.error(f"{key}.master", "only a replica has a master")
        if len([d for d in topology.db if d.role == "master"]) > 1:
            raise self.error("db", "more than one master")
        webs = {w.name for w in topology.web}
        for w in topology.web:
            if w.database is not None and w.database not in dbs:
                raise self.error(f"web.{w.name}.database", f"no SQL server {w.database!r}")
            if ":" not in w.app:
                raise self.error(f"web.{w.name}.app", "expected 'module:factory'")
        if len([w for w in topology.web if w.role == "primary"]) > 1:
            raise self.error("web", "more than one primary web server")
        origins: set[str] = set()
        for z in topology.zones:
            key = f"zones.{_key(z.origin)}"
            if z.origin.rstrip(".").lower() in origins:
                raise self.error(key, "zone given twice")
            origins.add(z.origin.rstrip(".").lower())
            for b in z.balance:
                for name in b.servers:
                    if name not in webs:
                        raise self.error(
                            f"{key}.balance.{_key(b.name)}.servers", f"no web server {name!r}"
                        )
                if b.check is not None:
                    bkey = f"{key}.balance.{_key(b.name)}"
                    for attr in ("interval", "timeout"):
                        if getattr(b.check, attr) <= 0:
                            raise self.error(f"{bkey}.{attr}", "must be more than 0")
                    for attr in ("fall", "rise"):
                        if getattr(b.check, attr) < 1:
                            raise self.error(f"{bkey}.{attr}", "must be at least 1")

    def address(self, host: str, key: str) -> None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not host or any(c.isspace() for c in host):
                raise self.error(key, f"not an address or host name: {host!r}") from None

    def port(self, port: int, key: str) -> None:
        if not 0 <= port <= 65535:
            raise self.error(key, f"port must be 0-65535, got {port}")


def _kind_of(server: DnsServerConfig | WebServerConfig | DbServerConfig) -> str:
    return {DnsServerConfig: "dns", WebServerConfig: "web", DbServerConfig: "db"}[type(server)]


def _key(name: str) -> str:
    """A TOML key as written in a dotted path, quoted when it needs to be."""
    if name and all(c.isalnum() or c in "-_" for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{kinds.get(type(value), type(value).__name__)} {value!r}"


# -- dumping ------------------------------------------------------------------------------------


def dump_topology(topology: Topology) -> str:
    """The topology as TOML that `loads_topology` reads back to an equal value."""
    doc: dict[str, Any] = {"cluster": _fields(topology.cluster)}
    for kind in ("dns", "web", "db"):
        servers = getattr(topology, kind)
        if servers:
            doc[kind] = {s.name: _fields(s, skip=("name",)) for s in servers}
    if topology.zones:
        zones: dict[str, Any] = {}
        for z in topology.zones:
            body = _fields(z, skip=("origin", "balance"))
            if z.balance:
                body["balance"] = {b.name: _balance_fields(b) for b in z.balance}
            zones[z.origin] = body
        doc["zones"] = zones
    return tomli_w.dumps(doc)


def _fields(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or value is None:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _balance_fields(balance: Balance) -> dict[str, Any]:
    body: dict[str, Any] = {"servers": list(balance.servers), "order": balance.order}
    if balance.check is None:
        body["check"] = "none"
    else:
        body["check"] = balance.check.kind
        body.update(_fields(balance.check, skip=("kind",)))
    return body


# -- the generated zone -------------------------------------------------------------------------


def zone_text(topology: Topology, zone: ZoneConfig, serial: int = 1) -> str:
    """A BIND master file for `zone` built from the topology, for zones given without a file.

    Like the article's foo.com zone: SOA at ns1, NS records for every name server, one A record
    per server name, and one A record per web server under each load-balanced name.
    """
    origin = zone.origin.rstrip(".") + "."
    primary = next((s for s in topology.dns if s.role == "primary"), None)
    mname = f"{primary.name}.{origin}" if primary else f"ns1.{origin}"
    lines = [
        f"; {origin} generated by pylamp from the cluster topology",
        f"$ORIGIN {origin}",
        f"$TTL {zone.ttl}",
        f"@\tIN\tSOA\t{mname} hostmaster.{origin} (",
        f"\t\t{serial} ; serial",
        f"\t\t{zone.refresh} ; refresh",
        f"\t\t{zone.retry} ; retry",
        f"\t\t{zone.expire} ; expire",
        f"\t\t{zone.minimum} ) ; minimum (negative caching TTL)",
    ]
    lines += [f"@\tIN\tNS\t{s.name}.{origin}" for s in topology.dns]
    hosts = {s.name: s.host for s in topology.servers()}
    lines += [f"{name}\tIN\t{_a_or_aaaa(host)}\t{host}" for name, host in hosts.items()]
    for balance in zone.balance:
        lines += [
            f"{balance.name}\tIN\t{_a_or_aaaa(hosts[w])}\t{hosts[w]}" for w in balance.servers
        ]
    return "\n".join(lines) + "\n"


def _a_or_aaaa(host: str) -> str:
    try:
        return "AAAA" if ipaddress.ip_address(host).version == 6 else "A"
    except ValueError:
        return "A"


def ensure_zone_file(topology: Topology, zone: ZoneConfig, directory: Path, today: str) -> Path:
    """The zone file a primary name server serves for `zone`.

    A zone given with a file is served from that file. A zone given without one is generated
    from the topology once, into `directory`, with the serial `<today>01` (`today` as YYYYMMDD),
    and from then on is an ordinary zone file the operator edits (raising the serial) as with
    BIND; it is not regenerated while it exists.
    """
    if zone.file is not None:
        return Path(zone.file)
    path = directory / f"{zone.origin.rstrip('.')}.zone"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(zone_text(topology, zone, serial=int(today + "01")), encoding="utf-8")
        temp.replace(path)
    return path
