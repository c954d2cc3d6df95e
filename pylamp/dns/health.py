"""Health-aware answers: which addresses of a load-balanced name are alive.

Two layers, as everywhere in pylamp:

* :class:`HealthState` is the pure core for one name. It is fed check results
  (:class:`CheckResult`) and says which addresses the answers may carry (:meth:`HealthState.live`).
  Rules, per address:

  - the first check of an address sets its state directly (up if it passed, down if not): there
    is nothing earlier to smooth over;
  - after that an up address goes down after ``fall`` consecutive failed checks, and a down one
    comes back after ``rise`` consecutive passed checks;
  - until every address has been checked once, the name is answered from the zone as written
    (``live()`` gives ``None``); when every address is down all of them are given (``None`` too),
    as a hardware balancer that would rather send traffic somewhere than nowhere;
  - with ``order="least-loaded"`` the live addresses come in ascending order of the load each
    web server last reported (addresses with no figure last, zone order breaking ties), and the
    answerer gives exactly that order instead of rotating; while no live server reports a
    figure, the addresses rotate as with ``"cyclic"``.

* :class:`HealthMonitor` is the asyncio shell: it runs the checks (HTTP GET of a path with aiohttp,
  or a bare TCP connect), each with a timeout, in background tasks off the query path, and pushes
  every change into the answerer with ``set_live``. :meth:`HealthMonitor.check_health` runs one
  round of every check and is what the loop and the tests call.

The load contract of an HTTP check (the web tier's ``/server-status`` serves it): a response with
status 2xx or 3xx means up, anything else, a timeout or a refused connection means down. The load
figure is the ``X-Load`` response header if present, else the ``"load"`` member of a JSON object
body (``{"load": 0.42}``); it is a finite decimal number where lower means less loaded (the web
tier reports requests in flight per worker, but any consistent scale works). A response without a
readable figure still counts as up; it just sorts last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import aiohttp
from yarl import URL

__all__ = [
    "LOAD_HEADER",
    "CheckKind",
    "CheckResult",
    "HealthConfig",
    "HealthMonitor",
    "HealthState",
    "HealthTarget",
    "Live",
    "LiveSink",
    "Order",
    "parse_load",
]

log = logging.getLogger(__name__)

CheckKind = Literal["http", "tcp"]
Order = Literal["cyclic", "least-loaded"]

#: Response header carrying a web server's load figure (takes precedence over a JSON body).
LOAD_HEADER = "X-Load"

_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class HealthTarget:
    """One address of a load-balanced name and where to check it.

    ``address`` is the A/AAAA address as written in the zone; the check connects to ``host``
    (default: the address itself) on ``port``.
    """

    address: str
    port: int
    host: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"health target {self.address}: port {self.port} out of range")

    @property
    def check_host(self) -> str:
        """The host the check connects to."""
        return self.host or self.address


@dataclass(frozen=True)
class HealthConfig:
    """Health checking of one load-balanced owner name (e.g. ``www.foo.com.``)."""

    name: str
    targets: tuple[HealthTarget, ...]
    kind: CheckKind = "http"
    path: str = "/server-status"
    interval: float = 5.0
    timeout: float = 2.0
    fall: int = 3
    rise: int = 2
    order: Order = "cyclic"

    def __post_init__(self) -> None:
        where = f"health check of {self.name!r}"
        if not self.targets:
            raise ValueError(f"{where}: no addresses to check")
        if len({t.address for t in self.targets}) != len(self.targets):
            raise ValueError(f"{where}: an address is listed twice")
        if self.kind not in ("http", "tcp"):
            raise ValueError(f"{where}: kind must be 'http' or 'tcp', not {self.kind!r}")
        if self.order not in ("cyclic", "least-loaded"):
            raise ValueError(f"{where}: order must be 'cyclic' or 'least-loaded'")
        if self.order == "least-loaded" and self.kind != "http":
            raise ValueError(f"{where}: order 'least-loaded' needs kind 'http' (loads are read)")
        if not self.path.startswith("/"):
            raise ValueError(f"{where}: path must start with '/'")
        if not (self.interval > 0 and self.timeout > 0):
            raise ValueError(f"{where}: interval and timeout must be positive")
        if self.fall < 1 or self.rise < 1:
            raise ValueError(f"{where}: fall and rise must be at least 1")

    @property
    def addresses(self) -> tuple[str, ...]:
        """The checked addresses in configuration order."""
        return tuple(t.address for t in self.targets)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check of one address."""

    address: str
    ok: bool
    load: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Live:
    """What the answers may carry: ``addresses=None`` means the zone as written."""

    addresses: tuple[str, ...] | None
    ordered: bool = False


@dataclass
class _Address:
    up: bool | None = None  # None: not checked yet
    streak: int = 0  # consecutive results against the current state
    load: float | None = None


class HealthState:
    """Pure up/down bookkeeping for the addresses of one name (see the module doc)."""

    def __init__(
        self, addresses: Sequence[str], *, fall: int, rise: int, order: Order = "cyclic"
    ) -> None:
        if fall < 1 or rise < 1:
            raise ValueError("fall and rise must be at least 1")
        self.addresses = tuple(addresses)
        self.fall = fall
        self.rise = rise
        self.order: Order = order
        self._state = {a: _Address() for a in self.addresses}

    def record(self, result: CheckResult) -> bool:
        """Take one check result; return whether the address changed state (up/down)."""
        entry = self._state.get(result.address)
        if entry is None:
            raise KeyError(f"{result.address} is not a checked address")
        if result.ok:
            entry.load = result.load
        if entry.up is None:
            entry.up = result.ok
            entry.streak = 0
            return True
        if result.ok == entry.up:
            entry.streak = 0
            return False
        entry.streak += 1
        if entry.streak >= (self.rise if result.ok else self.fall):
            entry.up = result.ok
            entry.streak = 0
            return True
        return False

    def record_all(self, results: Iterable[CheckResult]) -> bool:
        """Take a round of results; return whether any address changed state."""
        changed = False
        for result in results:
            changed = self.record(result) or changed
        return changed

    def is_up(self, address: str) -> bool | None:
        """Current state of an address (None before its first check)."""
        return self._state[address].up

    def live(self) -> Live:
        """The addresses to answer with, in what order (see the module doc for the rules)."""
        if any(e.up is None for e in self._state.values()):
            return Live(None)
        up = [a for a in self.addresses if self._state[a].up]
        if not up:
            return Live(None)
        if self.order == "least-loaded" and any(self._state[a].load is not None for a in up):
            rank = {a: i for i, a in enumerate(self.addresses)}

            def key(a: str) -> tuple[bool, float, int]:
                load = self._state[a].load
                return (load is None, load if load is not None else 0.0, rank[a])

            return Live(tuple(sorted(up, key=key)), ordered=True)
        return Live(tuple(up))


def parse_load(headers: Mapping[str, str], body: bytes | None) -> float | None:
    """Read a load figure per the contract: ``X-Load`` header first, else JSON ``{"load": x}``."""
    raw: object = headers.get(LOAD_HEADER)
    if raw is None and body:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        raw = doc.get("load") if isinstance(doc, dict) else None
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class LiveSink(Protocol):
    """What the monitor feeds: the answerer's health filter."""

    def set_live(
        self, name: str, addresses: Sequence[str] | None, *, ordered: bool = False
    ) -> None: ...


@dataclass
class _Entry:
    config: HealthConfig
    state: HealthState
    pushed: Live | None = field(default=None)


class HealthMonitor:
    """Runs the health checks of some names and keeps the answerer's filter current.

    ``async with HealthMonitor(answerer, configs) as m:`` starts one background loop per name
    (a round of checks every ``interval`` seconds); ``await m.check_health()`` runs one round of
    every name at once, which tests call directly. Use ``start=False`` to get no loops.
    """

    def __init__(
        self, sink: LiveSink, configs: Sequence[HealthConfig], *, start: bool = True
    ) -> None:
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError("a name has two health checks")
        self._sink = sink
        self._entries = [
            _Entry(c, HealthState(c.addresses, fall=c.fall, rise=c.rise, order=c.order))
            for c in configs
        ]
        self._start = start
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()
        self._ready = asyncio.Event()
        self._rounds: dict[str, int] = {c.name: 0 for c in configs}

    @property
    def configs(self) -> tuple[HealthConfig, ...]:
        """The checked names' configurations."""
        return tuple(e.config for e in self._entries)

    async def wait_ready(self) -> None:
        """Wait until every name has had one complete round of checks."""
        await self._ready.wait()

    def rounds(self, name: str) -> int:
        """How many rounds of checks of ``name`` have completed."""
        return self._rounds[name]

    def state(self, name: str) -> HealthState:
        """The pure state of one checked name (for status pages and tests)."""
        for entry in self._entries:
            if entry.config.name == name:
                return entry.state
        raise KeyError(name)

    async def __aenter__(self) -> HealthMonitor:
        await self.start()
        return self

    async def start(self) -> None:
        """Open the HTTP client and start the background loops (unless ``start=False``)."""
        if self._session is not None:
            return
        self._closing.clear()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            auto_decompress=True,
        )
        if self._start:
            self._tasks = [
                asyncio.create_task(self._loop(e), name=f"health {e.config.name}")
                for e in self._entries
            ]

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the loops and close the HTTP client."""
        self._closing.set()  # ends a loop whose cancellation was lost (wait_for, Python < 3.12)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check_health(self) -> None:
        """Run one round of checks for every name and update the answerer."""
        await asyncio.gather(*(self._round(e) for e in self._entries))

    async def _loop(self, entry: _Entry) -> None:
        while not self._closing.is_set():
            try:
                await self._round(entry)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one round must not end the checks
                log.exception("health round for %s failed", entry.config.name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(entry.config.interval):
                    await self._closing.wait()

    async def _round(self, entry: _Entry) -> None:
        results = await asyncio.gather(
            *(self._check(entry.config, t) for t in entry.config.targets)
        )
        for result in results:
            before = entry.state.is_up(result.address)
            if entry.state.record(result) and before is not None:
                log.warning(
                    "%s %s is now %s (%s)",
                    entry.config.name,
                    result.address,
                    "up" if result.ok else "down",
                    result.detail or "ok",
                )
        live = entry.state.live()
        if live != entry.pushed:
            self._sink.set_live(entry.config.name, live.addresses, ordered=live.ordered)
            entry.pushed = live
        self._rounds[entry.config.name] += 1
        if all(self._rounds.values()):
            self._ready.set()

    async def _check(self, config: HealthConfig, target: HealthTarget) -> CheckResult:
        try:
            async with asyncio.timeout(config.timeout):
                if config.kind == "tcp":
                    return await self._check_tcp(target)
                return await self._check_http(config, target)
        except TimeoutError:
            return CheckResult(target.address, False, detail=f"timeout {config.timeout:g}s")
        except (OSError, aiohttp.ClientError) as exc:
            return CheckResult(target.address, False, detail=str(exc) or type(exc).__name__)

    @staticmethod
    async def _check_tcp(target: HealthTarget) -> CheckResult:
        _reader, writer = await asyncio.open_connection(target.check_host, target.port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return CheckResult(target.address, True)

    async def _check_http(self, config: HealthConfig, target: HealthTarget) -> CheckResult:
        if self._session is None:
            raise RuntimeError("HealthMonitor used outside 'async with'")
        url = URL.build(scheme="http", host=target.check_host, port=target.port)
        url = url.with_path(config.path.split("?", 1)[0])
        if "?" in config.path:
            url = url.with_query(config.path.split("?", 1)[1])
        async with self._session.get(url, allow_redirects=False) as response:
            body = await response.content.read(_MAX_BODY)
            ok = 200 <= response.status < 400
            load = parse_load(response.headers, body) if ok else None
            return CheckResult(target.address, ok, load, detail=f"HTTP {response.status}")
