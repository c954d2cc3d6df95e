"""Users and privileges, kept in the system SQLite file (``mysql.sqlite``).

Passwords are stored only as MySQL's ``mysql_native_password`` hash: ``*`` followed by the
upper-case hex of SHA1(SHA1(password)), which is what the handshake's scramble check needs and
what MySQL itself stores.  Privileges are rows (user, host, db, privilege) where db ``*`` means
every database (``*.*``).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pylamp.db.mysql.auth import password_hash
from pylamp.db.results import SqlError
from pylamp.db.sql import syntax_error, unquote_ident

__all__ = [
    "ALL_PRIVILEGES",
    "GLOBAL_ONLY",
    "Account",
    "Accounts",
    "grant_database",
    "has_all_db_privileges",
    "native_password_hash",
    "parse_account",
    "parse_privileges",
    "split_accounts",
]

#: Privileges that can only be granted ON *.*.
GLOBAL_ONLY = frozenset(
    {
        "RELOAD",
        "PROCESS",
        "SUPER",
        "SHOW DATABASES",
        "REPLICATION SLAVE",
        "REPLICATION CLIENT",
        "CREATE USER",
        "FILE",
        "SHUTDOWN",
    }
)
#: Privileges ALL grants (GRANT OPTION is separate, as in MySQL); ON db.* only the first part.
ALL_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "REFERENCES",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "CREATE VIEW",
    "SHOW VIEW",
    "EVENT",
    "TRIGGER",
    *sorted(GLOBAL_ONLY),
)
_LOOPBACK = {"127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"}


def native_password_hash(password: str) -> str:
    """MySQL's stored form of a password: ``*`` + HEX(SHA1(SHA1(password))); '' for none.

    The login check (`pylamp.db.mysql.auth`) verifies against this same form, so both use
    its one definition.
    """
    return password_hash(password)


@dataclass(frozen=True)
class Account:
    """A user account: name and host pattern ('%' wildcards, 'localhost' = loopback)."""

    user: str
    host: str

    def __str__(self) -> str:
        return f"'{self.user}'@'{self.host}'"


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "localhost":
        return host in _LOOPBACK or host.startswith("127.")
    if pattern == "%":
        return True
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, host, re.I) is not None


class Accounts:
    """The user and grant tables; thread-safe."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS users (user TEXT, host TEXT, auth TEXT, "
            "PRIMARY KEY (user, host))"
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS grants (user TEXT, host TEXT, db TEXT, priv TEXT, "
            "PRIMARY KEY (user, host, db, priv))"
        )
        self.generation = 0
        """Bumped on every change, so sessions can cache their privileges."""

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _users(self) -> list[tuple[str, str, str]]:
        return self._conn.execute("SELECT user, host, auth FROM users").fetchall()

    def find(self, user: str, host: str) -> tuple[Account, str] | None:
        """The account a login from ``host`` as ``user`` uses, with its password hash.

        The most specific host pattern wins (exact name before wildcards), as in MySQL.
        """
        with self._lock:
            rows = [r for r in self._users() if r[0] == user and _host_matches(r[1], host)]
        if not rows:
            return None
        rows.sort(key=lambda r: (r[1] == "%", "%" in r[1] or "_" in r[1], -len(r[1])))
        u, h, auth = rows[0]
        return Account(u, h), auth

    def exists(self, account: Account) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM users WHERE user=? AND host=?", (account.user, account.host)
            ).fetchone()
        return row is not None

    def set_account(self, account: Account, auth: str) -> None:
        """Create or replace an account with a stored hash (used for root from the config)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO users VALUES (?, ?, ?)", (account.user, account.host, auth)
            )
            self.generation += 1

    def create_user(self, account: Account, auth: str, *, if_not_exists: bool) -> None:
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO users VALUES (?, ?, ?)", (account.user, account.host, auth)
                )
            except sqlite3.IntegrityError:
                if if_not_exists:
                    return
                raise SqlError(1396, f"Operation CREATE USER failed for {account}") from None
            self.generation += 1

    def drop_user(self, account: Account, *, if_exists: bool) -> None:
        with self._lock:
            cur = self._conn.execute(
                "DELETE FROM users WHERE user=? AND host=?", (account.user, account.host)
            )
            if cur.rowcount == 0 and not if_exists:
                raise SqlError(1396, f"Operation DROP USER failed for {account}")
            self._conn.execute(
                "DELETE FROM grants WHERE user=? AND host=?", (account.user, account.host)
            )
            self.generation += 1

    def set_password(self, account: Account, auth: str) -> None:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE users SET auth=? WHERE user=? AND host=?",
                (auth, account.user, account.host),
            )
            if cur.rowcount == 0:
                raise SqlError(1133, "Can't find any matching row in the user table")
            self.generation += 1

    def grant(self, account: Account, db: str, privileges: list[str]) -> None:
        with self._lock, self._transaction():
            self._conn.executemany(
                "INSERT OR IGNORE INTO grants VALUES (?, ?, ?, ?)",
                [(account.user, account.host, db, p) for p in privileges],
            )
            self.generation += 1

    def revoke(self, account: Account, db: str, privileges: list[str]) -> None:
        with self._lock, self._transaction():
            self._conn.executemany(
                "DELETE FROM grants WHERE user=? AND host=? AND db=? AND priv=?",
                [(account.user, account.host, db, p) for p in privileges],
            )
            self.generation += 1

    def privileges(self, account: Account) -> dict[str, set[str]]:
        """db ('*' for global) -> privileges of ``account``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT db, priv FROM grants WHERE user=? AND host=?",
                (account.user, account.host),
            ).fetchall()
        out: dict[str, set[str]] = {}
        for db, priv in rows:
            out.setdefault(db, set()).add(priv)
        return out


# ---- account and privilege syntax (CREATE USER, GRANT, REVOKE) ----


def parse_account(text: str) -> Account:
    text = text.strip()
    m = re.fullmatch(
        r"('(?:[^']|'')*'|\"[^\"]*\"|`[^`]*`|[\w.$-]+)(?:\s*@\s*('(?:[^']|'')*'|\"[^\"]*\"|`[^`]*`|[\w.%:$-]+))?",
        text,
    )
    if not m:
        raise syntax_error(text)

    def unq(s: str) -> str:
        return s[1:-1] if s[:1] in "'\"`" else s

    return Account(unq(m.group(1)), unq(m.group(2)) if m.group(2) else "%")


def split_accounts(text: str) -> list[str]:
    return [p for p in re.split(r",(?=(?:[^']*'[^']*')*[^']*$)", text) if p.strip()]


def parse_privileges(text: str) -> list[str]:
    out: list[str] = []
    for part in text.split(","):
        name = " ".join(part.upper().split())
        name = re.sub(r"\s*\(.*\)", "", name)
        if name in ("ALL", "ALL PRIVILEGES"):
            out.extend(ALL_PRIVILEGES)
        elif name == "USAGE":
            continue
        elif name in ALL_PRIVILEGES or name == "GRANT OPTION":
            out.append(name)
        else:
            raise syntax_error(part)
    return out


def has_all_db_privileges(names: set[str]) -> bool:
    return set(ALL_PRIVILEGES) - GLOBAL_ONLY <= names


def grant_database(target: str) -> str:
    """The database of a GRANT's ``ON`` clause: ``*.*`` -> "*", ``db.*`` -> "db".

    Table-level grants (``db.t``) are refused rather than widened to the whole database.
    """
    parts = [unquote_ident(p) for p in target.split(".")]
    if parts[0] == "*":
        return "*"
    if len(parts) != 2 or parts[1] != "*":
        raise SqlError(1235, "Grants on single tables are not supported; use db.* or *.*")
    return parts[0]
