"""Watch a primary's zone files and reload a zone when its serial goes up.

The rule, as BIND operators know it: a zone whose file changed is served anew only when the
SOA serial increased (RFC 1982 order); then the ``on_load`` callback runs (the server sends NOTIFY
to the secondaries). A changed file that keeps the old serial, or goes backwards, is not loaded:
the secondaries could never see that change, so the watcher warns and keeps the old zone. A file
that does not parse keeps the old zone too, with the error (file:line) in the log.

:func:`decide` is that rule as a pure function. :class:`ZoneWatcher` is the shell: a watchdog
observer on the zone files' folders hands events to the event loop, which waits a short quiet
period (editors write in several steps) and calls :meth:`ZoneWatcher.check`, the public one-shot
that tests call directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from pylamp.dns.zone import Zone, ZoneError, load_zone, serial_gt, zone_to_text

__all__ = ["Decision", "ReloadOutcome", "ZoneWatcher", "decide"]

log = logging.getLogger(__name__)

Decision = Literal["load", "unchanged", "same-serial", "older-serial"]


def decide(old: Zone | None, new: Zone) -> Decision:
    """Whether a freshly read zone replaces the served one (see the module doc)."""
    if old is None or serial_gt(new.serial, old.serial):
        return "load"
    if new.serial == old.serial:
        return "unchanged" if zone_to_text(new) == zone_to_text(old) else "same-serial"
    return "older-serial"


@dataclass(frozen=True)
class ReloadOutcome:
    """What :meth:`ZoneWatcher.check` did with one zone file."""

    origin: str
    path: Path
    decision: Decision | Literal["error"]
    serial: int | None = None
    error: str = ""


class ZoneHolder(Protocol):
    """The answerer's zone hooks the watcher needs."""

    def zone(self, origin: str) -> Zone | None: ...

    def set_zone(self, zone: Zone) -> None: ...


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ZoneWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for raw in paths:
            if raw:
                self._watcher._threadsafe_touched(Path(os.fsdecode(raw)))


class ZoneWatcher:
    """Reloads zones from their files when the files change and the serial goes up.

    ``files`` maps each origin to its file. ``on_load(zone)`` runs (in the event loop) after a
    zone with a higher serial is served. ``debounce`` is the quiet time after the last event.
    """

    def __init__(
        self,
        holder: ZoneHolder,
        files: Mapping[str, Path],
        *,
        on_load: Callable[[Zone], None] | None = None,
        debounce: float = 0.2,
    ) -> None:
        self._holder = holder
        self.files = {origin: Path(path) for origin, path in files.items()}
        self._by_path = {self._key(p): origin for origin, p in self.files.items()}
        self._on_load = on_load
        self.debounce = debounce
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    @staticmethod
    def _key(path: Path) -> str:
        return os.path.normcase(os.path.abspath(path))

    def check(self, origins: list[str] | None = None) -> list[ReloadOutcome]:
        """Re-read the files of ``origins`` (default: all) and apply :func:`decide` to each."""
        outcomes = []
        for origin in origins if origins is not None else list(self.files):
            outcomes.append(self._check_one(origin, self.files[origin]))
        return outcomes

    def _check_one(self, origin: str, path: Path) -> ReloadOutcome:
        try:
            new = load_zone(path.read_text(encoding="utf-8"), origin=origin, filename=str(path))
            if new.origin != origin:
                raise ZoneError(str(path), 0, f"zone is now {new.origin}, was {origin}")
        except ZoneError as exc:
            log.error("zone %s not reloaded, keeping the old one: %s", origin, exc)
            return ReloadOutcome(origin, path, "error", error=str(exc))
        except (OSError, UnicodeDecodeError) as exc:
            log.error("zone %s not reloaded, keeping the old one: %s: %s", origin, path, exc)
            return ReloadOutcome(origin, path, "error", error=f"{path}: {exc}")
        old = self._holder.zone(origin)
        decision = decide(old, new)
        if decision == "load":
            self._holder.set_zone(new)
            log.info("zone %s reloaded from %s, serial %d", origin, path, new.serial)
            if self._on_load is not None:
                self._on_load(new)
        elif decision != "unchanged":
            assert old is not None
            log.warning(
                "zone %s: %s changed but its serial %d is %s the served %d; keeping the old zone"
                " (raise the serial to publish the change)",
                origin,
                path,
                new.serial,
                "the same as" if decision == "same-serial" else "older than",
                old.serial,
            )
        return ReloadOutcome(origin, path, decision, new.serial)

    # -- watching -------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching the files' folders (call from the event loop)."""
        if self._observer is not None:
            return
        self._loop = asyncio.get_running_loop()
        observer = Observer()
        handler = _Handler(self)
        for folder in sorted({str(p.parent.resolve()) for p in self.files.values()}):
            observer.schedule(handler, folder, recursive=False)
        observer.daemon = True
        try:
            observer.start()
        except BaseException:  # e.g. a folder vanished: stop what the observer did start
            observer.stop()
            with contextlib.suppress(RuntimeError):  # never started its own thread
                observer.join(timeout=5)
            raise
        self._observer = observer

    def stop(self) -> None:
        """Stop watching."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def _threadsafe_touched(self, path: Path) -> None:
        origin = self._by_path.get(self._key(path))
        if origin is None or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._touched, origin)
        except RuntimeError:  # the loop closed while the observer was stopping
            pass

    def _touched(self, origin: str) -> None:
        self._pending.add(origin)
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer = self._loop.call_later(self.debounce, self._fire)

    def _fire(self) -> None:
        self._timer = None
        origins, self._pending = sorted(self._pending), set()
        try:
            self.check(origins)
        except Exception:  # a watcher bug must not take the server down
            log.exception("zone reload failed")
