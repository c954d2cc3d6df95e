"""Statistics of a push, reported like ``rsync --stats``, and a progress display.

:class:`SyncStats` is filled in by the sender for one receiver; :func:`format_stats` renders it
as text, :meth:`SyncStats.to_dict` as JSON-ready data; :class:`Progress` draws a bar on a
terminal and prints plain lines otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TextIO

__all__ = ["Progress", "SyncStats", "format_stats", "stats_json"]


@dataclass
class SyncStats:
    """What one push did at one receiver. ``error`` is set when the push to this receiver
    failed as a whole (receiver down, wrong key); ``errors`` lists single paths that failed
    while the rest of the push went on."""

    address: str = ""
    files_scanned: int = 0
    total_size: int = 0
    files_sent: int = 0
    files_moved: int = 0
    files_deleted: int = 0
    dirs_created: int = 0
    symlinks: int = 0
    meta_updates: int = 0
    unchanged: int = 0
    literal_bytes: int = 0
    matched_bytes: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    elapsed: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the push completed without any error."""
        return self.error is None and not self.errors

    @property
    def wire_bytes(self) -> int:
        """Bytes on the wire in both directions (framing included, TLS excluded)."""
        return self.bytes_sent + self.bytes_received

    @property
    def speedup(self) -> float:
        """rsync's speedup: total size of the tree divided by the bytes on the wire."""
        return self.total_size / self.wire_bytes if self.wire_bytes else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, including the derived figures."""
        d = asdict(self)
        d["errors"] = [{"path": p, "message": m} for p, m in self.errors]
        d["wire_bytes"] = self.wire_bytes
        d["speedup"] = round(self.speedup, 2)
        d["ok"] = self.ok
        return d


def _n(v: int) -> str:
    return f"{v:,}"


def format_stats(s: SyncStats) -> str:
    """The report for one receiver, laid out like ``rsync --stats``."""
    lines = [f"Receiver: {s.address}"]
    if s.error is not None:
        lines.append(f"ERROR: {s.error}")
        return "\n".join(lines)
    lines += [
        f"Number of files: {_n(s.files_scanned)}",
        f"Number of regular files transferred: {_n(s.files_sent)}",
        f"Number of files moved: {_n(s.files_moved)}",
        f"Number of deleted files: {_n(s.files_deleted)}",
        f"Number of created directories: {_n(s.dirs_created)}",
        f"Number of symlinks set: {_n(s.symlinks)}",
        f"Number of metadata-only updates: {_n(s.meta_updates)}",
        f"Total file size: {_n(s.total_size)} bytes",
        f"Literal data: {_n(s.literal_bytes)} bytes",
        f"Matched data: {_n(s.matched_bytes)} bytes",
        f"Total bytes sent: {_n(s.bytes_sent)}",
        f"Total bytes received: {_n(s.bytes_received)}",
        f"Elapsed: {s.elapsed:.3f} s",
        f"total size is {_n(s.total_size)}  speedup is {s.speedup:.2f}",
    ]
    for path, msg in s.errors:
        lines.append(f"error: {path}: {msg}")
    return "\n".join(lines)


def stats_json(results: Iterable[SyncStats]) -> str:
    """All receivers' statistics as one JSON document (``--json``)."""
    return json.dumps({"receivers": [s.to_dict() for s in results]}, indent=2)


class Progress:
    """Progress of a push: a redrawn status line when ``stream`` is a terminal (with a bar
    when the total is known), else one plain line per file. Call :meth:`update` with the
    receiver and the path just done."""

    def __init__(self, total_files: int | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty()
        self.total = total_files
        self.done = 0
        self.nbytes = 0

    def update(self, address: str, path: str, nbytes: int) -> None:
        """One file (or move, or deletion) finished at ``address``."""
        self.done += 1
        self.nbytes += nbytes
        if self.tty:
            if self.total:
                width = 30
                bar = "#" * int(min(self.done / self.total, 1.0) * width)
                head = f"[{bar:<{width}}] {self.done}/{self.total}"
            else:
                head = f"{self.done} done, {self.nbytes:,} bytes"
            self.stream.write(f"\r{head} {path[-50:]:<50}"[:120])
        else:
            self.stream.write(f"{address} {path} {nbytes}\n")
        self.stream.flush()

    def close(self) -> None:
        """Finish the status line (terminals only)."""
        if self.tty and self.done:
            self.stream.write("\n")
            self.stream.flush()
