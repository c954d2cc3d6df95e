"""MySQL-dialect SQL text handling: split, classify, determinise, strip literals, transpile.

Everything here is pure: it takes text (and, for determinising, a time and random source passed
in) and returns text or values.  The engine (``engine.py``) runs the result on SQLite.

The hot path is :func:`strip_literals`: one regular-expression pass turns a statement into its
*shape* (literals replaced by ``:lN`` placeholders) plus the literal values, so the engine can
cache the SQLite translation per shape and bind the literals as SQLite parameters.  Clients like
PyMySQL interpolate values into the statement text, so without this every statement would pay
sqlglot's parse and generate cost (150-500 us).  The same pass replaces non-deterministic
functions (NOW(), RAND(), UUID(), ...) by literals, so a logged statement replays identically.
"""

from __future__ import annotations

import enum
import logging
import re
import time
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import sqlglot
from sqlglot import exp

from pylamp.db.results import SqlError

__all__ = [
    "AdminCommand",
    "Kind",
    "Literal",
    "NonDeterministic",
    "Shape",
    "classify",
    "first_word",
    "literal_sql",
    "parse_admin",
    "parse_mysql",
    "preprocess",
    "projection_texts",
    "restore",
    "split_statements",
    "strip_literals",
    "syntax_error",
    "unescape_string",
    "unquote_ident",
]

logging.getLogger("sqlglot").setLevel(logging.ERROR)


class Kind(enum.Enum):
    """What a statement does, which decides locking, logging and privileges."""

    READ = "read"  # SELECT and friends: no lock, never logged
    WRITE = "write"  # INSERT/UPDATE/DELETE/REPLACE: writer lock, logged in a transaction
    DDL = "ddl"  # CREATE/ALTER/DROP/TRUNCATE/RENAME: implicit commit, logged alone
    TRANSACTION = "transaction"  # BEGIN/START TRANSACTION/COMMIT/ROLLBACK
    ADMIN = "admin"  # binlog and replication statements (see AdminCommand)
    SET = "set"
    SHOW = "show"  # SHOW, DESCRIBE/DESC/EXPLAIN
    USE = "use"
    ACCOUNT = "account"  # CREATE/DROP USER, GRANT, REVOKE, SET PASSWORD: logged like DDL
    OTHER = "other"  # no-ops we accept (LOCK TABLES, ANALYZE, ...)


_KIND_BY_WORD = {
    "SELECT": Kind.READ,
    "WITH": Kind.READ,
    "VALUES": Kind.READ,
    "TABLE": Kind.READ,
    "INSERT": Kind.WRITE,
    "UPDATE": Kind.WRITE,
    "DELETE": Kind.WRITE,
    "REPLACE": Kind.WRITE,
    "CREATE": Kind.DDL,
    "ALTER": Kind.DDL,
    "DROP": Kind.DDL,
    "TRUNCATE": Kind.DDL,
    "RENAME": Kind.DDL,
    "BEGIN": Kind.TRANSACTION,
    "START": Kind.TRANSACTION,
    "COMMIT": Kind.TRANSACTION,
    "ROLLBACK": Kind.TRANSACTION,
    "SET": Kind.SET,
    "SHOW": Kind.SHOW,
    "DESCRIBE": Kind.SHOW,
    "DESC": Kind.SHOW,
    "EXPLAIN": Kind.SHOW,
    "USE": Kind.USE,
    "GRANT": Kind.ACCOUNT,
    "REVOKE": Kind.ACCOUNT,
}

_FIRST_WORD = re.compile(r"\s*\(*\s*([A-Za-z_]+)")


def first_word(sql: str) -> str:
    """The statement's first keyword, upper-cased ('' if there is none)."""
    m = _FIRST_WORD.match(sql)
    return m.group(1).upper() if m else ""


def classify(sql: str) -> Kind:
    """Classify one statement by its leading keywords (cheap: no parsing)."""
    if parse_admin(sql) is not None:
        return Kind.ADMIN
    word = first_word(sql)
    if word in ("CREATE", "DROP", "ALTER", "RENAME"):
        second = re.match(r"\s*\w+\s+(\w+)", sql)
        if second and second.group(1).upper() == "USER":
            return Kind.ACCOUNT
    if word == "SET":
        if re.match(r"\s*SET\s+PASSWORD\b", sql, re.I):
            return Kind.ACCOUNT
        if re.match(r"\s*SET\s+(?:SESSION\s+|GLOBAL\s+)?TRANSACTION\b", sql, re.I):
            return Kind.OTHER
    if word == "START" and not re.match(r"\s*START\s+TRANSACTION\b", sql, re.I):
        return Kind.OTHER
    return _KIND_BY_WORD.get(word, Kind.OTHER)


# ---------------------------------------------------------------------------------------------
# Admin statements: recognised before sqlglot, which mis-parses them.


@dataclass(frozen=True)
class AdminCommand:
    """A binlog or replication statement, parsed by us rather than sqlglot.

    ``kind`` is one of: ``show_master_status``, ``show_slave_status``, ``change_master``,
    ``start_slave``, ``stop_slave``, ``reset_slave``, ``flush_logs``, ``reset_master``,
    ``purge_binary_logs``, ``show_binary_logs``, ``show_binlog_events``.  ``options`` holds the
    statement's arguments: CHANGE MASTER TO's ``MASTER_HOST`` etc. (upper-case keys, values as
    str or int); PURGE's ``to`` or ``before``; SHOW BINLOG EVENTS' ``in``, ``from``,
    ``offset`` and ``limit``.
    """

    kind: str
    options: dict[str, str | int] = field(default_factory=dict)
    text: str = ""


_SIMPLE_ADMIN = [
    (re.compile(r"SHOW\s+MASTER\s+STATUS", re.I), "show_master_status"),
    (re.compile(r"SHOW\s+BINARY\s+LOG\s+STATUS", re.I), "show_master_status"),
    (re.compile(r"SHOW\s+(?:SLAVE|REPLICA)\s+STATUS", re.I), "show_slave_status"),
    (re.compile(r"START\s+(?:SLAVE|REPLICA)", re.I), "start_slave"),
    (re.compile(r"STOP\s+(?:SLAVE|REPLICA)", re.I), "stop_slave"),
    (re.compile(r"RESET\s+(?:SLAVE|REPLICA)(?:\s+ALL)?", re.I), "reset_slave"),
    (re.compile(r"FLUSH\s+(?:BINARY\s+)?LOGS", re.I), "flush_logs"),
    (re.compile(r"RESET\s+(?:MASTER|BINARY\s+LOGS\s+AND\s+GTIDS)", re.I), "reset_master"),
    (re.compile(r"SHOW\s+(?:BINARY|MASTER)\s+LOGS", re.I), "show_binary_logs"),
]
_PURGE = re.compile(
    r"PURGE\s+(?:BINARY|MASTER)\s+LOGS\s+(TO|BEFORE)\s+('(?:[^'\\]|\\.)*'|\"[^\"]*\")", re.I
)
_BINLOG_EVENTS = re.compile(
    r"SHOW\s+BINLOG\s+EVENTS(?:\s+IN\s+('(?:[^'\\]|\\.)*'|\"[^\"]*\"))?(?:\s+FROM\s+(\d+))?"
    r"(?:\s+LIMIT\s+(\d+)(?:\s*,\s*(\d+))?)?",
    re.I,
)
_CHANGE_MASTER = re.compile(r"CHANGE\s+(?:MASTER|REPLICATION\s+SOURCE)\s+TO\s+(.*)", re.I | re.S)
_OPTION = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.|'')*'|\"[^\"]*\"|[-\w.]+)\s*(,|$)", re.S)


def _strip_end(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def parse_admin(sql: str) -> AdminCommand | None:
    """Recognise a binlog/replication statement; None for anything else.

    Raises SqlError 1064 for a recognised statement with bad arguments.
    """
    text = _strip_end(sql)
    word = first_word(text)
    if word not in ("SHOW", "START", "STOP", "RESET", "FLUSH", "PURGE", "CHANGE"):
        return None
    for pattern, kind in _SIMPLE_ADMIN:
        if pattern.fullmatch(text):
            return AdminCommand(kind, {}, text)
    m = _PURGE.fullmatch(text)
    if m:
        return AdminCommand("purge_binary_logs", {m.group(1).lower(): _unquote(m.group(2))}, text)
    m = _BINLOG_EVENTS.fullmatch(text)
    if m:
        opts: dict[str, str | int] = {}
        if m.group(1):
            opts["in"] = _unquote(m.group(1))
        if m.group(2):
            opts["from"] = int(m.group(2))
        if m.group(4) is not None:
            opts["offset"] = int(m.group(3))
            opts["limit"] = int(m.group(4))
        elif m.group(3) is not None:
            opts["limit"] = int(m.group(3))
        return AdminCommand("show_binlog_events", opts, text)
    m = _CHANGE_MASTER.fullmatch(text)
    if m:
        rest = m.group(1)
        options: dict[str, str | int] = {}
        pos = 0
        while pos < len(rest):
            om = _OPTION.match(rest, pos)
            if om is None:
                raise syntax_error(rest[pos:])
            value = om.group(2)
            if value[0] in "'\"":
                options[om.group(1).upper()] = _unquote(value)
            else:
                options[om.group(1).upper()] = int(value) if value.isdigit() else value
            pos = om.end()
        if not options:
            raise syntax_error(rest)
        return AdminCommand("change_master", options, text)
    return None


def _unquote(token: str) -> str:
    if token[0] == "'":
        return unescape_string(token[1:-1], "'")
    return unescape_string(token[1:-1], '"')


# ---------------------------------------------------------------------------------------------
# Splitting a multi-statement string.

_SPLIT_RE = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`"
    r"|/\*.*?\*/|--[ \t][^\n]*|#[^\n]*|;",
    re.S,
)


def split_statements(text: str) -> list[str]:
    """Split a multi-statement string on ';' outside quotes and comments.

    Empty statements are dropped; each returned statement is stripped.
    """
    if ";" not in text:
        stripped = text.strip()
        return [stripped] if stripped else []
    out: list[str] = []
    start = 0
    for m in _SPLIT_RE.finditer(text):
        if m.group(0) == ";":
            piece = text[start : m.start()].strip()
            if piece:
                out.append(piece)
            start = m.end()
    piece = text[start:].strip()
    if piece:
        out.append(piece)
    return out


# ---------------------------------------------------------------------------------------------
# Literal stripping and determinising.


class Literal(NamedTuple):
    """One literal taken out of a statement: its MySQL source text and its Python value.

    A NamedTuple rather than a frozen dataclass: built for every literal of every statement,
    and a tuple is about 4x cheaper to make (0.15 against 0.6 us).
    """

    text: str
    value: Any


def _uuid1() -> str:
    return str(_uuid.uuid1())


class NonDeterministic(NamedTuple):
    """Where determinised values come from: time, random numbers, UUIDs, LAST_INSERT_ID().

    ``now`` is seconds since the epoch (passed in, never read here); ``random`` returns a float
    in [0, 1); ``uuid`` returns a UUID string. A NamedTuple: a session makes one for nearly
    every write (LAST_INSERT_ID() changes with each INSERT), 1.8 -> ~0.4 us.
    """

    now: float
    random: Callable[[], float]
    uuid: Callable[[], str] = _uuid1
    last_insert_id: int = 0
    per_row: bool = False
    """For reads: RAND(), UUID(), LAST_INSERT_ID(), USER() ... stay functions."""
    user: str = ""
    """USER()/CURRENT_USER() of the session, as 'name@host'."""
    connection_id: int = 0


class Shape(NamedTuple):
    """A statement with its literals replaced by ``:l0``, ``:l1``, ... placeholders.

    ``determinised`` says the statement to log is ``restore(shape)`` rather than the original
    text (a non-deterministic function or a binary string was replaced by a literal).
    A NamedTuple, like :class:`Literal`: one is made per statement.
    """

    text: str
    literals: list[Literal]
    determinised: bool = False
    user_vars: tuple[str, ...] = ()


# String and identifier bodies are written as "unrolled loops" ('[^'\\]*(?:(?:\\.|'')[^'\\]*)*'
# rather than '(?:[^'\\]|\\.|'')*'): the same language, but the engine takes a run of plain
# characters in one step instead of one alternation per character (a 40-character string
# literal: 4.6 -> 1.8 us).
_SQ = r"[^'\\]*(?:(?:\\.|'')[^'\\]*)*'"  # a '...' string after its opening quote
_DQ = r'[^"\\]*(?:(?:\\.|"")[^"\\]*)*"'
_NOT_AFTER_WORD = r"(?<!\w.)"  # after a token's first character: what \b before it says
_TIME_FNS = (
    "NOW", "SYSDATE", "CURDATE", "CURTIME", "UNIX_TIMESTAMP", "UTC_TIMESTAMP", "UTC_DATE",
    "UTC_TIME", "RAND", "UUID",
)  # fmt: skip
_SESSION_FNS = (
    "LAST_INSERT_ID", "USER", "CURRENT_USER", "SESSION_USER", "SYSTEM_USER", "CONNECTION_ID",
)  # fmt: skip
_BARE_FNS = ("CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME", "LOCALTIMESTAMP", "LOCALTIME")


def _after_first(names: tuple[str, ...]) -> str:
    return "|".join(f"(?<={n[0]}){n[1:]}" for n in names)


# Every token pattern starts with one character class, which the regex engine scans for in C;
# the alternatives then look behind at that first character (a leading lookahead instead made
# the engine try the whole alternation at each position: 12 -> 4 us for a short INSERT with
# NOW()). A letter starts only an introduced string (_charset'..', N'..') or an x'..'/b'..'
# literal, so one look back sends a letter inside a word past those two ("istr", "bits")
# instead of through every alternative. Then, in the order tried: strings, `identifiers`, hex
# and bit numbers, comments, numbers, @variables.
_TOKEN_ALTS = rf"""
    (?<=[xXbBnN_])(?:
        (?P<istr>(?<=_)[A-Za-z0-9]+\s*(?:'{_SQ}|"{_DQ})|(?<=[nN])'{_SQ})
        |(?P<bits>{_NOT_AFTER_WORD}(?<=[xXbB])'[^']*'))
    |(?<![xXbBnN_])(?:
        (?P<str>(?<=')(?:{_SQ})|(?<=")(?:{_DQ}))
        |(?P<ident>(?<=`)[^`]*(?:``[^`]*)*`)
        |(?P<hex>{_NOT_AFTER_WORD}(?:(?<=0)[xX][0-9a-fA-F]+|(?<=0)b[01]+))
        |(?P<comment>(?<=/)\*.*?\*/|(?<=-)-(?=[ \t\n]|$)[^\n]*|(?<=\#)[^\n]*)
        |(?P<num>(?<![\w.$@:].)(?:(?<=\d)\d*(?:\.\d*)?|(?<=\.)\d+)(?:[eE][+-]?\d+)?(?![\w$]))
        |(?P<var>(?<=@)(?:@?[A-Za-z0-9_.$]+|`[^`]*`)))
"""
_TOKEN_RE = re.compile(r"['\"`/\-\#0-9.@xXbBnN_](?:" + _TOKEN_ALTS + ")", re.X | re.S)
# ... and non-deterministic functions, by their first letters in either case
_TOKEN_FN_RE = re.compile(
    r"['\"`/\-\#0-9.@xXbBnN_SCURLscurl](?:"
    + _TOKEN_ALTS
    + rf"""
    |(?P<fn>(?i:{_NOT_AFTER_WORD}(?:(?:{_after_first(_TIME_FNS)})\s*\(\s*\d*\s*\)
         |(?:{_after_first(_SESSION_FNS)})\s*\(\s*\)
         |(?:{_after_first(_BARE_FNS)})\b(?:\s*\(\s*\d*\s*\))?))))""",
    re.X | re.S,
)


def _may_call_functions(upper_sql: str) -> bool:
    """Whether the upper-cased statement holds a name _TOKEN_FN_RE could find (a superset
    test). Substring tests in C, written out: a regex alternation scanned ~1.3x as long, a
    generator of the same tests twice as long."""
    return (
        "NOW" in upper_sql
        or "CUR" in upper_sql
        or "RAND" in upper_sql
        or "UUID" in upper_sql
        or "USER" in upper_sql
        or "SYSDATE" in upper_sql
        or "UNIX_TIMESTAMP" in upper_sql
        or "UTC_" in upper_sql
        or "LAST_INSERT_ID" in upper_sql
        or "LOCALTIME" in upper_sql
        or "CONNECTION_ID" in upper_sql
    )


# in reads these stay functions (per row, or evaluated by the session) instead of literals
_PER_ROW_IN_READS = frozenset(
    {
        "RAND",
        "UUID",
        "LAST_INSERT_ID",
        "USER",
        "CURRENT_USER",
        "SESSION_USER",
        "SYSTEM_USER",
        "CONNECTION_ID",
    }
)
_FN_NAME = re.compile(r"\w+")

_ESCAPES = {
    "0": "\0",
    "b": "\b",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "Z": "\x1a",
    "\\": "\\",
    "'": "'",
    '"': '"',
}
_ESCAPE_RE = re.compile(r"\\(.)", re.S)


def unescape_string(body: str, quote: str) -> str:
    """The value of a MySQL string literal's body (between the quotes)."""
    if "\\" not in body and quote not in body:  # nothing to undo: most literals
        return body
    if "\\" in body:
        body = _ESCAPE_RE.sub(
            lambda m: _ESCAPES.get(
                m.group(1), "\\" + m.group(1) if m.group(1) in "%_" else m.group(1)
            ),
            body,
        )
    return body.replace(quote + quote, quote)


def _string_value(token: str) -> str | bytes:
    """A string literal's value; bytes for ``_binary'...'`` and for text that is not UTF-8
    (the wire layer decodes queries with surrogateescape, so raw bytes survive to here)."""
    quote = token[0]
    if quote == "'" or quote == '"':  # no introducer: most literals
        value = unescape_string(token[1:-1], quote)
        if value.isascii():
            return value
    else:
        q = 1
        while token[q] not in "'\"":
            q += 1
        value = unescape_string(token[q + 1 : -1], token[q])
    if token[:7].lower() == "_binary" or not value.isascii():
        try:
            if token[:7].lower() == "_binary":
                return value.encode("utf-8", "surrogateescape")
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def literal_sql(value: Any) -> str:
    """MySQL source text for a Python value (used to put literals back into a statement)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'" if value else "''"
    text = str(value)
    text = (
        text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\0", "\\0")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\x1a", "\\Z")
    )
    return "'" + text + "'"


def _number_value(token: str) -> int | float | None:
    if "." in token or "e" in token or "E" in token:
        return float(token)
    value = int(token)
    return value if value < 2**63 else None


def _fn_value(token: str, nd: NonDeterministic) -> Any:
    name = re.match(r"\w+", token)
    assert name is not None
    fname = name.group(0).upper()
    digits = re.search(r"\(\s*(\d+)", token)
    fsp = int(digits.group(1)) if digits else 0
    now = nd.now
    if fname in ("NOW", "SYSDATE", "CURRENT_TIMESTAMP", "LOCALTIMESTAMP", "LOCALTIME"):
        return _format_time(now, "%Y-%m-%d %H:%M:%S", fsp, local=True)
    if fname == "UTC_TIMESTAMP":
        return _format_time(now, "%Y-%m-%d %H:%M:%S", fsp, local=False)
    if fname in ("CURDATE", "CURRENT_DATE"):
        return time.strftime("%Y-%m-%d", time.localtime(now))
    if fname == "UTC_DATE":
        return time.strftime("%Y-%m-%d", time.gmtime(now))
    if fname in ("CURTIME", "CURRENT_TIME"):
        return _format_time(now, "%H:%M:%S", fsp, local=True)
    if fname == "UTC_TIME":
        return _format_time(now, "%H:%M:%S", fsp, local=False)
    if fname == "UNIX_TIMESTAMP":
        return int(now)
    if fname == "RAND":
        return nd.random()
    if fname == "UUID":
        return nd.uuid()
    if fname == "LAST_INSERT_ID":
        return nd.last_insert_id
    if fname == "CONNECTION_ID":
        return nd.connection_id
    if fname in ("USER", "CURRENT_USER", "SESSION_USER", "SYSTEM_USER"):
        return nd.user
    raise AssertionError(fname)  # pragma: no cover


def _format_time(now: float, fmt: str, fsp: int, *, local: bool) -> str:
    text = time.strftime(fmt, time.localtime(now) if local else time.gmtime(now))
    if fsp:
        micro = f"{now % 1:.6f}"[2:]
        text += "." + micro[:fsp]
    return text


def strip_literals(sql: str, nd: NonDeterministic | None = None) -> Shape:
    """Replace literals by ``:lN`` placeholders, and, when ``nd`` is given, non-deterministic
    functions by literal placeholders too.  Comments are dropped.

    ``restore(shape)`` gives back an equivalent statement; with ``nd`` it is the determinised
    statement, the one to log.
    """
    out: list[str] = []
    literals: list[Literal] = []
    user_vars: list[str] = []
    determinised = False
    pos = 0
    pattern = _TOKEN_RE
    # cheap pre-check: only then use the slower pattern that also finds functions
    if nd is not None and _may_call_functions(sql.upper()):
        pattern = _TOKEN_FN_RE
    for m in pattern.finditer(sql):
        group = m.lastgroup
        if group == "ident" or group == "hex" or group == "bits":
            continue
        out.append(sql[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if group == "str" or group == "istr":
            value: Any = _string_value(token)
            if isinstance(value, bytes):
                # logged as X'..': binary data is not valid statement text
                determinised = True
                out.append(f":l{len(literals)}")
                literals.append(Literal(literal_sql(value), value))
                continue
        elif group == "num":
            value = _number_value(token)
            if value is None:
                out.append(token)  # beyond SQLite's parameters: -2**63 and BIGINT UNSIGNED
                continue
        elif group == "comment":
            out.append(" ")
            continue
        elif group == "var":
            if not token.startswith("@@"):
                user_vars.append(token[1:].strip("`").lower())
            out.append(token)
            continue
        else:  # fn
            fn_name = _FN_NAME.match(token)
            per_row = fn_name is not None and fn_name.group(0).upper() in _PER_ROW_IN_READS
            if nd is None or (nd.per_row and per_row):
                out.append(token)
                continue
            value = _fn_value(token, nd)
            determinised = True
            out.append(f":l{len(literals)}")
            literals.append(Literal(literal_sql(value), value))
            continue
        out.append(f":l{len(literals)}")
        literals.append(Literal(token, value))
    out.append(sql[pos:])
    return Shape("".join(out), literals, determinised, tuple(user_vars))


_PLACEHOLDER_RE = re.compile(r":l(\d+)\b")


_COMMENTS = re.compile(
    r"(?P<keep>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`)"
    r"|/\*!\d*(?P<exec>.*?)\*/"
    r"|/\*.*?\*/|--(?=[ \t\r\n]|$)[^\n]*|\#[^\n]*",
    re.S,
)


def _comment_sub(m: re.Match[str]) -> str:
    if m.group("keep") is not None:
        return m.group(0)
    if m.group("exec") is not None:
        return " " + m.group("exec") + " "
    return " "


def preprocess(sql: str) -> str:
    """Unwrap MySQL executable comments (``/*!40101 SET ... */``, as mysqldump writes them)
    and drop other comments (MariaDB's ``/*M!999999\\- ... */`` sandbox line among them), so
    statements are classified by their first real keyword.  Strings are left alone."""
    if "/*" in sql or "--" in sql or "#" in sql:
        sql = _COMMENTS.sub(_comment_sub, sql)
    return sql


def restore(shape: Shape, literals: list[Literal] | None = None) -> str:
    """Put the literals back into a shape: the inverse of :func:`strip_literals`."""
    lits = shape.literals if literals is None else literals
    return _PLACEHOLDER_RE.sub(lambda m: lits[int(m.group(1))].text, shape.text)


# ---------------------------------------------------------------------------------------------
# Parsing.


_PROJECTION_END = {
    "FROM",
    "INTO",
    "WHERE",
    "GROUP",
    "HAVING",
    "ORDER",
    "LIMIT",
    "UNION",
    "FOR",
    "LOCK",
    "WINDOW",
    "INTERSECT",
    "EXCEPT",
}
_SELECT_MODIFIERS = {
    "ALL",
    "DISTINCT",
    "DISTINCTROW",
    "HIGH_PRIORITY",
    "STRAIGHT_JOIN",
    "SQL_CALC_FOUND_ROWS",
    "SQL_NO_CACHE",
    "SQL_CACHE",
    "SQL_SMALL_RESULT",
    "SQL_BIG_RESULT",
    "SQL_BUFFER_RESULT",
}
_SCAN_RE = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`|[A-Za-z_][\w$]*|\S",
    re.S,
)


def projection_texts(sql: str) -> list[str] | None:
    """The source text of each item of a SELECT list, as written (MySQL names an unaliased
    expression column after it: ``IFNULL(a, 0)``, not a translation of it).  None when the
    statement is not a plain SELECT."""
    tokens = list(_SCAN_RE.finditer(sql))
    i = 0
    while i < len(tokens) and tokens[i].group(0) == "(":
        i += 1
    if i >= len(tokens) or tokens[i].group(0).upper() != "SELECT":
        return None
    i += 1
    while i < len(tokens) and tokens[i].group(0).upper() in _SELECT_MODIFIERS:
        i += 1
    items: list[str] = []
    depth = 0
    start = tokens[i].start() if i < len(tokens) else len(sql)
    end = len(sql)
    for m in tokens[i:]:
        tok = m.group(0)
        if tok == "(":
            depth += 1
        elif tok == ")":
            if depth == 0:
                end = m.start()
                break
            depth -= 1
        elif depth == 0 and tok == ",":
            items.append(sql[start : m.start()].strip())
            start = m.end()
        elif depth == 0 and tok.upper() in _PROJECTION_END:
            end = m.start()
            break
    items.append(sql[start:end].strip())
    return items


def unquote_ident(text: str) -> str:
    """An identifier without MySQL's backticks."""
    text = text.strip()
    if text.startswith("`") and text.endswith("`"):
        return text[1:-1].replace("``", "`")
    return text


def syntax_error(near: str) -> SqlError:
    """MySQL's 1064 error for text we cannot parse."""
    near = near.strip()[:80]
    return SqlError(
        1064,
        "You have an error in your SQL syntax; check the manual that corresponds to your "
        f"MySQL server version for the right syntax to use near '{near}' at line 1",
    )


def parse_mysql(sql: str) -> exp.Expression:
    """Parse one MySQL statement with sqlglot; SqlError 1064 when it does not parse."""
    try:
        tree = sqlglot.parse_one(sql, read="mysql")
    except sqlglot.errors.ParseError as e:
        errors = getattr(e, "errors", None)
        near = sql
        if errors:
            col = errors[0].get("col") or 0
            ctx = errors[0].get("start_context", "") or ""
            near = sql[max(0, len(ctx) - 1) :] if ctx else sql[max(0, col - 1) :]
        raise syntax_error(near) from None
    except (sqlglot.errors.TokenError, ValueError) as e:
        raise syntax_error(str(e)) from None
    if not isinstance(tree, exp.Expression):
        raise syntax_error(sql)
    return tree
