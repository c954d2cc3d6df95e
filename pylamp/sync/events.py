"""Messages of the sync protocol, as frozen dataclasses (h11's ``_events.py`` style).

Each message has a one-byte type code. On the wire its body is a JSON array of the fields that
are not ``bytes`` followed by the one ``bytes`` field, if any, raw (see :mod:`.protocol`).
Paths are relative POSIX strings; the rows of Mkdirs, Symlinks and Meta are
:class:`~.manifest.Entry` fields, while the receiver's file list (:class:`Manifest`) travels
as one ``bytes`` field in the columnar encoding of :func:`~.protocol.encode_manifest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "Auth",
    "AuthOk",
    "Begin",
    "Delete",
    "Done",
    "End",
    "Error",
    "Event",
    "File",
    "FileBegin",
    "FileData",
    "FileEnd",
    "HashRequest",
    "Hashes",
    "Hello",
    "Manifest",
    "Meta",
    "Mkdirs",
    "Moves",
    "MovesDone",
    "PathError",
    "SigRequest",
    "Signature",
    "Symlinks",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all messages."""

    code: ClassVar[int] = 0
    blob: ClassVar[str | None] = None  # name of the bytes field carried raw, if any


# --- handshake ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(Event):
    """Receiver -> sender, first message: protocol version and the receiver's fresh nonce."""

    code: ClassVar[int] = 1
    blob: ClassVar[str | None] = "nonce"
    version: int
    nonce: bytes


@dataclass(frozen=True, slots=True)
class Auth(Event):
    """Sender -> receiver: the sender's fresh nonce and its proof
    HMAC-SHA256(key, "pylamp-sync client" + receiver nonce + sender nonce)."""

    code: ClassVar[int] = 2
    blob: ClassVar[str | None] = "proof"
    nonce: str  # hex
    proof: bytes


@dataclass(frozen=True, slots=True)
class AuthOk(Event):
    """Receiver -> sender: the receiver's proof (role "server") over the same two nonces."""

    code: ClassVar[int] = 3
    blob: ClassVar[str | None] = "proof"
    proof: bytes


@dataclass(frozen=True, slots=True)
class Error(Event):
    """Either way: a fatal error; the connection closes after it."""

    code: ClassVar[int] = 4
    message: str


# --- push --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin(Event):
    """Sender -> receiver: start a push. ``want_manifest`` asks for the receiver's file list
    (a session that cached it says False); ``checksum`` asks for digests in it; ``excludes``
    are pruned from it (and so protected from deletion)."""

    code: ClassVar[int] = 10
    want_manifest: bool
    checksum: bool
    delay_updates: bool
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest(Event):
    """Receiver -> sender: its file list, ``rows`` in the compact encoding of
    :func:`~.protocol.encode_manifest`, or ``complete=False`` and no rows when it was not
    asked for. A long list comes in several messages, all but the last with ``more``."""

    code: ClassVar[int] = 11
    blob: ClassVar[str | None] = "rows"
    complete: bool
    more: bool = False
    rows: bytes = b""


@dataclass(frozen=True, slots=True)
class HashRequest(Event):
    """Sender -> receiver: whole-file digests wanted (move detection)."""

    code: ClassVar[int] = 12
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hashes(Event):
    """Receiver -> sender: ``[path, hex digest]`` pairs; unreadable files are left out."""

    code: ClassVar[int] = 13
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class SigRequest(Event):
    """Sender -> receiver: block signatures wanted for these basis files, in this order.
    ``digests`` (parallel to ``paths``, ``""`` when unknown) are the source files' whole-file
    hashes: a basis that already has that content is answered ``same`` instead (a file whose
    mtime alone changed costs no signature)."""

    code: ClassVar[int] = 14
    paths: tuple[str, ...]
    digests: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Signature(Event):
    """Receiver -> sender: one basis file's encoded signature (empty if it has none), or
    ``same`` when its content already has the digest the sender gave."""

    code: ClassVar[int] = 15
    blob: ClassVar[str | None] = "data"
    path: str
    same: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class Mkdirs(Event):
    """Sender -> receiver: directories to create (parents first), as Entry rows."""

    code: ClassVar[int] = 16
    rows: tuple[tuple[str, str, int, int, int, str, str], ...]


@dataclass(frozen=True, slots=True)
class Symlinks(Event):
    """Sender -> receiver: symlinks to create or replace, as Entry rows."""

    code: ClassVar[int] = 17
    rows: tuple[tuple[str, str, int, int, int, str, str], ...]


@dataclass(frozen=True, slots=True)
class File(Event):
    """Sender -> receiver: a whole small file in one message (literal bytes)."""

    code: ClassVar[int] = 18
    blob: ClassVar[str | None] = "data"
    path: str
    mode: int
    mtime_ns: int
    digest: str
    data: bytes


@dataclass(frozen=True, slots=True)
class FileBegin(Event):
    """Sender -> receiver: a file follows in FileData chunks; ``delta`` says the chunks are
    encoded delta ops against the basis file at the same path, else raw literal bytes."""

    code: ClassVar[int] = 19
    path: str
    mode: int
    mtime_ns: int
    size: int
    delta: bool


@dataclass(frozen=True, slots=True)
class FileData(Event):
    """Sender -> receiver: the next chunk of the current file."""

    code: ClassVar[int] = 20
    blob: ClassVar[str | None] = "data"
    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd(Event):
    """Sender -> receiver: the current file is complete; its whole-file digest."""

    code: ClassVar[int] = 21
    digest: str


@dataclass(frozen=True, slots=True)
class Moves(Event):
    """Sender -> receiver: Move rows (old, new, digest, mode, mtime_ns, consume)."""

    code: ClassVar[int] = 22
    rows: tuple[tuple[str, str, str, int, int, bool], ...]


@dataclass(frozen=True, slots=True)
class MovesDone(Event):
    """Receiver -> sender: the moves were staged; ``failed`` must be sent as files."""

    code: ClassVar[int] = 23
    failed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Meta(Event):
    """Sender -> receiver: mode/mtime updates for unchanged content (files, links, dirs),
    applied at the end, directories deepest first."""

    code: ClassVar[int] = 24
    rows: tuple[tuple[str, str, int, int, int, str, str], ...]


@dataclass(frozen=True, slots=True)
class Delete(Event):
    """Sender -> receiver: extraneous paths, deleted after the updates are published."""

    code: ClassVar[int] = 25
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class End(Event):
    """Sender -> receiver: nothing more in this push; publish and report."""

    code: ClassVar[int] = 26


@dataclass(frozen=True, slots=True)
class PathError(Event):
    """Receiver -> sender: one path was refused or failed; the push goes on."""

    code: ClassVar[int] = 27
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class Done(Event):
    """Receiver -> sender: the push is published. Counts of what the receiver did, the paths
    that failed, and ``redo``: files sent as deltas that did not rebuild to the sender's hash
    (the basis changed meanwhile), which the sender sends again whole."""

    code: ClassVar[int] = 28
    counts: dict[str, int]
    failed: tuple[str, ...]
    redo: tuple[str, ...] = ()
