"""rsync-style content sync: push a docroot to receivers, deltas only.

Library use::

    async with SyncReceiver(root, "127.0.0.1", port=0, key=KEY) as rx:
        stats = await push(src, [rx.address], key=KEY)

:class:`SyncSession` keeps one connection and the receiver's file list across pushes.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .manifest import Excluder, scan
    from .protocol import AuthenticationError, ProtocolError
    from .receiver import SyncReceiver, server_tls_context
    from .sender import SyncError, SyncSession, client_tls_context, parse_address, push
    from .stats import SyncStats, format_stats
    from .watch import SyncWatcher

# Names are imported on first use (PEP 562), so ``python -m pylamp.sync push`` does not pay for
# numpy (the receiver, deltas) or watchdog (the watcher) unless it needs them.
_WHERE = {
    "Excluder": "manifest",
    "scan": "manifest",
    "AuthenticationError": "protocol",
    "ProtocolError": "protocol",
    "SyncReceiver": "receiver",
    "server_tls_context": "receiver",
    "SyncError": "sender",
    "SyncSession": "sender",
    "client_tls_context": "sender",
    "parse_address": "sender",
    "push": "sender",
    "SyncStats": "stats",
    "format_stats": "stats",
    "SyncWatcher": "watch",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthenticationError",
    "Excluder",
    "ProtocolError",
    "SyncError",
    "SyncReceiver",
    "SyncSession",
    "SyncStats",
    "SyncWatcher",
    "client_tls_context",
    "format_stats",
    "parse_address",
    "push",
    "scan",
    "server_tls_context",
]
