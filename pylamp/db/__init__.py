"""pylamp.db: a MySQL-protocol SQL server over SQLite with a MySQL v4 binary log.

Run it with ``python -m pylamp.db`` or embed it: ``async with SqlServer(...) as db``
(:mod:`pylamp.db.server`).
"""

from pylamp.db.server import SqlServer

__all__ = ["SqlServer"]
