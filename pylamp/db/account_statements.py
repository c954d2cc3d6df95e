"""Account statements: CREATE/DROP/ALTER USER, SET PASSWORD, GRANT and REVOKE.

Parses the statement, checks the session's privileges, changes the account store
(:class:`~pylamp.db.accounts.Accounts`) and logs the statement to the binlog (a password as its
hash, never in clear) so that a replica and crash recovery apply the same change.
:func:`execute_account` takes the :class:`~pylamp.db.engine.Session` as its first argument.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pylamp.db import sql as sqlmod
from pylamp.db.accounts import (
    GLOBAL_ONLY,
    grant_database,
    native_password_hash,
    parse_account,
    parse_privileges,
    split_accounts,
)
from pylamp.db.results import Ok, SqlError

if TYPE_CHECKING:
    from pylamp.db.session import Session

__all__ = ["execute_account"]


def execute_account(session: Session, stmt: str) -> Ok:
    session._check_writable()
    session._implicit_commit()
    text = stmt.strip().rstrip(";").strip()
    logged = text
    m = re.fullmatch(
        r"CREATE\s+USER\s+(IF\s+NOT\s+EXISTS\s+)?(.+?)"
        r"(?:\s+IDENTIFIED\s+(?:WITH\s+\S+\s+)?(BY\s+PASSWORD|BY|AS)\s+('(?:[^'\\]|\\.)*'|\"[^\"]*\"))?",
        text,
        re.I | re.S,
    )
    if m:
        session._require_global("CREATE USER")
        account = parse_account(m.group(2))
        auth = ""
        if m.group(4):
            auth = _stored_auth(m.group(3), m.group(4))
            exists = "IF NOT EXISTS " if m.group(1) else ""
            logged = (
                f"CREATE USER {exists}{account} IDENTIFIED WITH mysql_native_password AS '{auth}'"
            )
        session.engine.accounts.create_user(account, auth, if_not_exists=m.group(1) is not None)
        _log_account(session, logged)
        return Ok()
    m = re.fullmatch(r"DROP\s+USER\s+(IF\s+EXISTS\s+)?(.+)", text, re.I | re.S)
    if m:
        session._require_global("CREATE USER")
        for part in split_accounts(m.group(2)):
            session.engine.accounts.drop_user(parse_account(part), if_exists=m.group(1) is not None)
        _log_account(session, logged)
        return Ok()
    m = re.fullmatch(
        r"(?:ALTER\s+USER\s+(.+?)\s+IDENTIFIED\s+(?:WITH\s+\S+\s+)?(BY\s+PASSWORD|BY|AS)"
        r"|SET\s+PASSWORD\s+FOR\s+(.+?)\s*=)"
        r"\s+('(?:[^'\\]|\\.)*'|\"[^\"]*\")",
        text,
        re.I | re.S,
    )
    if m:
        account = parse_account(m.group(1) or m.group(3))
        if account != session.account:
            session._require_global("CREATE USER")
        auth = _stored_auth(m.group(2) or "BY", m.group(4))  # SET PASSWORD ... = gives the password
        session.engine.accounts.set_password(account, auth)
        _log_account(
            session, f"ALTER USER {account} IDENTIFIED WITH mysql_native_password AS '{auth}'"
        )
        return Ok()
    m = re.fullmatch(
        r"(GRANT|REVOKE)\s+(.+?)\s+ON\s+(?:TABLE\s+)?(\S+)\s+(TO|FROM)\s+(.+?)"
        r"(\s+IDENTIFIED\s+BY\s+'(?:[^'\\]|\\.)*')?(\s+WITH\s+GRANT\s+OPTION)?",
        text,
        re.I | re.S,
    )
    if m:
        verb = m.group(1).upper()
        privs = parse_privileges(m.group(2))
        target = m.group(3)
        db = grant_database(target)
        if db != "*" and re.fullmatch(r"ALL(?:\s+PRIVILEGES)?", m.group(2).strip(), re.I):
            privs = [p for p in privs if p not in GLOBAL_ONLY]
        if m.group(7):
            privs.append("GRANT OPTION")
        for p in privs:
            if db != "*" and p in GLOBAL_ONLY:
                raise SqlError(1221, "Incorrect usage of DB GRANT and GLOBAL PRIVILEGES")
        if not session.replaying and not session._has("GRANT OPTION", None if db == "*" else db):
            raise SqlError(
                1044 if db != "*" else 1227,
                f"Access denied for user '{session.user}'@'{session.host}' to database '{db}'"
                if db != "*"
                else "Access denied; you need (at least one of) the GRANT OPTION "
                "privilege(s) for this operation",
            )
        for part in split_accounts(m.group(5)):
            account = parse_account(part)
            if not session.engine.accounts.exists(account):
                if verb == "GRANT":
                    raise SqlError(1133, "Can't find any matching row in the user table")
                raise SqlError(
                    1141,
                    f"There is no such grant defined for user "
                    f"'{account.user}' on host '{account.host}'",
                )
            if verb == "GRANT":
                session.engine.accounts.grant(account, db, privs)
            else:
                session.engine.accounts.revoke(account, db, privs)
        _log_account(session, logged if not m.group(6) else text.replace(m.group(6), ""))
        return Ok()
    raise sqlmod.syntax_error(text)


def _log_account(session: Session, text: str) -> None:
    if session.replaying:
        return
    with session._writer():
        session._log([(session.db or "", text)], ddl=True)


def _stored_auth(clause: str, quoted: str) -> str:
    """The hash to store for ``IDENTIFIED BY|AS|BY PASSWORD 'quoted'``: BY gives the password
    (hashed here); "AS '*HEX'" (how the binlog carries it) and "BY PASSWORD" give the hash."""
    secret = sqlmod.unescape_string(quoted[1:-1], quoted[0])
    return native_password_hash(secret) if clause.upper() == "BY" else secret
