"""rsync-style content sync: push a docroot to receivers, deltas only.

Library use::

    async with SyncReceiver(root, "127.0.0.1", port=0, key=KEY) as rx:
        stats = await push(src, [rx.address], key=KEY)

:class:`SyncSession` keeps one connection and the receiver's file list across pushes.
"""

from .manifest import Excluder, scan
from .protocol import AuthenticationError, ProtocolError
from .receiver import SyncReceiver, server_tls_context
from .sender import SyncError, SyncSession, client_tls_context, parse_address, push
from .stats import SyncStats, format_stats
from .watch import SyncWatcher

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
