"""MySQL functions that SQLite lacks, registered as Python functions on each connection.

sqlglot's MySQL -> SQLite generator keeps some MySQL function names (LEFT, RIGHT, CONCAT_WS,
LPAD, YEAR, ...) or emits names SQLite does not have (UNIX_TO_TIME, SHA); these fill the gap
with MySQL's semantics (NULL in, NULL out).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any

__all__ = ["register_functions"]


_MAX_RESULT = 64 * 1024 * 1024


def _nullsafe(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        if any(a is None for a in args):
            return None
        try:
            return fn(*args)
        except (ValueError, TypeError, OverflowError, IndexError):
            return None

    return wrapper


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return repr(v)
    return str(v)


def _parse_dt(v: Any) -> _dt.datetime:
    s = _text(v).strip()
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return _dt.datetime.strptime(s, fmt)
        except ValueError:
            continue
    raise ValueError(s)


def _concat_ws(sep: Any, *args: Any) -> Any:
    if sep is None:
        return None
    return _text(sep).join(_text(a) for a in args if a is not None)


def _pad(s: Any, n: Any, pad: Any, *, left: bool) -> Any:
    """LPAD/RPAD: pad ``s`` to ``n`` characters with repeats of ``pad`` (or cut it to ``n``)."""
    s, n, pad = _text(s), int(n), _text(pad)
    if len(s) >= n:
        return s[:n]
    if not pad:
        return None
    fill = (pad * (n // len(pad) + 1))[: n - len(s)]
    return fill + s if left else s + fill


def _unix_timestamp(v: Any) -> int:
    return int(time.mktime(_parse_dt(v).timetuple()))


def _from_unixtime(v: Any, fmt: Any = None) -> str:
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(v)))
    if fmt is not None:
        return _date_format(text, fmt)
    return text


_MYSQL_FORMAT = {
    "%Y": "%Y",
    "%y": "%y",
    "%m": "%m",
    "%c": "{month}",
    "%d": "%d",
    "%e": "{day}",
    "%H": "%H",
    "%k": "{hour}",
    "%h": "%I",
    "%I": "%I",
    "%l": "{hour12}",
    "%i": "%M",
    "%s": "%S",
    "%S": "%S",
    "%f": "%f",
    "%p": "%p",
    "%W": "%A",
    "%a": "%a",
    "%M": "%B",
    "%b": "%b",
    "%j": "%j",
    "%T": "%H:%M:%S",
    "%r": "%I:%M:%S %p",
    "%%": "%%",
}


def _date_format(v: Any, fmt: Any) -> str:
    d = _parse_dt(v)
    out = re.sub(r"%.", lambda m: _MYSQL_FORMAT.get(m.group(0), m.group(0)[1:]), _text(fmt))
    out = d.strftime(out)
    return out.format(month=d.month, day=d.day, hour=d.hour, hour12=(d.hour % 12) or 12)


_UNITS = {
    "MICROSECOND": _dt.timedelta(microseconds=1),
    "SECOND": _dt.timedelta(seconds=1),
    "MINUTE": _dt.timedelta(minutes=1),
    "HOUR": _dt.timedelta(hours=1),
    "DAY": _dt.timedelta(days=1),
    "WEEK": _dt.timedelta(weeks=1),
}


def _date_add(value: Any, amount: Any, unit: Any, sign: Any) -> Any:
    """DATE_ADD/DATE_SUB/ADDDATE/SUBDATE and ``d +/- INTERVAL n UNIT`` (MySQL semantics:
    month arithmetic clamps to the month's last day; a date stays a date for day units)."""
    text = _text(value).strip()
    d = _parse_dt(text)
    n = float(_text(amount)) * int(sign)
    unit = _text(unit).upper()
    if unit in ("MONTH", "QUARTER", "YEAR"):
        months = int(n) * {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit]
        total = d.year * 12 + d.month - 1 + months
        year, month = divmod(total, 12)
        import calendar

        day = min(d.day, calendar.monthrange(year, month + 1)[1])
        d = d.replace(year=year, month=month + 1, day=day)
    else:
        d = d + _UNITS[unit] * n
    if len(text) == 10 and unit in ("DAY", "WEEK", "MONTH", "QUARTER", "YEAR"):
        return d.strftime("%Y-%m-%d")
    return d.strftime("%Y-%m-%d %H:%M:%S.%f" if d.microsecond else "%Y-%m-%d %H:%M:%S")


def _str_to_date(value: Any, fmt: Any) -> Any:
    out = re.sub(r"%.", lambda m: _PARSE_FORMAT.get(m.group(0), m.group(0)), _text(fmt))
    d = _dt.datetime.strptime(_text(value), out)
    if not re.search(r"%[HhIiklrSsTfp]", _text(fmt)):
        return d.strftime("%Y-%m-%d")
    return d.strftime("%Y-%m-%d %H:%M:%S")


_PARSE_FORMAT = {"%i": "%M", "%s": "%S", "%c": "%m", "%e": "%d", "%k": "%H", "%l": "%I"}


def _regexp(pattern: Any, value: Any) -> Any:
    if pattern is None or value is None:
        return None
    return 1 if re.search(_text(pattern), _text(value), re.I) else 0


def _field(v: Any, *args: Any) -> int:
    if v is None:
        return 0
    for i, a in enumerate(args, 1):
        if a is not None and _text(a).lower() == _text(v).lower():
            return i
    return 0


def _elt(n: Any, *args: Any) -> Any:
    if n is None:
        return None
    i = int(n)
    return args[i - 1] if 1 <= i <= len(args) else None


def _digest(name: str) -> Callable[[Any], str]:
    def fn(v: Any) -> str:
        data = v if isinstance(v, bytes) else _text(v).encode()
        return hashlib.new(name, data).hexdigest()

    return fn


def _repeat(s: str, n: Any) -> str | None:
    # MySQL answers NULL where the result would pass max_allowed_packet (64 MiB here)
    count = max(0, int(n))
    return None if len(s) * count > _MAX_RESULT else s * count


def _truncate(v: Any, d: Any = 0) -> Any:
    from decimal import ROUND_DOWN, Decimal

    q = Decimal(1).scaleb(-int(d))
    result = Decimal(repr(v) if isinstance(v, float) else str(v)).quantize(q, rounding=ROUND_DOWN)
    return int(result) if int(d) <= 0 else float(result)


_FUNCTIONS: list[tuple[str, int, Callable[..., Any]]] = [
    ("CONCAT_WS", -1, _concat_ws),
    ("MYSQL_LEFT", 2, _nullsafe(lambda s, n: _text(s)[: max(0, int(n))])),
    ("MYSQL_RIGHT", 2, _nullsafe(lambda s, n: _text(s)[-int(n) :] if int(n) > 0 else "")),
    ("MID", 3, _nullsafe(lambda s, p, n: _text(s)[int(p) - 1 : int(p) - 1 + int(n)])),
    ("LPAD", 3, _nullsafe(lambda s, n, pad: _pad(s, n, pad, left=True))),
    ("RPAD", 3, _nullsafe(lambda s, n, pad: _pad(s, n, pad, left=False))),
    ("REVERSE", 1, _nullsafe(lambda s: _text(s)[::-1])),
    ("REPEAT", 2, _nullsafe(lambda s, n: _repeat(_text(s), n))),
    ("SPACE", 1, _nullsafe(lambda n: _repeat(" ", n))),
    ("YEAR", 1, _nullsafe(lambda v: _parse_dt(v).year)),
    ("MONTH", 1, _nullsafe(lambda v: _parse_dt(v).month)),
    ("DAY", 1, _nullsafe(lambda v: _parse_dt(v).day)),
    ("DAYOFMONTH", 1, _nullsafe(lambda v: _parse_dt(v).day)),
    ("HOUR", 1, _nullsafe(lambda v: _parse_dt(v).hour)),
    ("MINUTE", 1, _nullsafe(lambda v: _parse_dt(v).minute)),
    ("SECOND", 1, _nullsafe(lambda v: _parse_dt(v).second)),
    ("UNIX_TIMESTAMP", 1, _nullsafe(_unix_timestamp)),
    ("UNIX_TO_TIME", 1, _nullsafe(_from_unixtime)),
    ("FROM_UNIXTIME", 1, _nullsafe(_from_unixtime)),
    ("FROM_UNIXTIME", 2, _nullsafe(_from_unixtime)),
    ("DATE_FORMAT", 2, _nullsafe(_date_format)),
    ("PYLAMP_DATE_FORMAT", 2, _nullsafe(_date_format)),
    ("PYLAMP_STR_TO_DATE", 2, _nullsafe(_str_to_date)),
    ("PYLAMP_FROM_UNIXTIME", 1, _nullsafe(_from_unixtime)),
    ("PYLAMP_FROM_UNIXTIME", 2, _nullsafe(_from_unixtime)),
    ("PYLAMP_TRUNCATE", 2, _nullsafe(_truncate)),
    # MySQL's LENGTH counts bytes (CHAR_LENGTH counts characters)
    (
        "PYLAMP_LENGTH",
        1,
        _nullsafe(lambda v: len(v if isinstance(v, bytes) else _text(v).encode())),
    ),
    ("PYLAMP_DATE_ADD", 4, _nullsafe(_date_add)),
    ("UNHEX", 1, _nullsafe(lambda s: bytes.fromhex(_text(s)))),
    ("REGEXP", 2, _regexp),
    ("FIELD", -1, _field),
    ("ELT", -1, _elt),
    ("MD5", 1, _nullsafe(_digest("md5"))),
    ("SHA", 1, _nullsafe(_digest("sha1"))),
    ("SHA1", 1, _nullsafe(_digest("sha1"))),
    ("SHA2", 2, _nullsafe(lambda v, n: _digest(f"sha{int(n) or 256}")(v))),
    ("TRUNC", 1, _nullsafe(_truncate)),
    ("TRUNCATE", 2, _nullsafe(_truncate)),
    ("TRUNC", 2, _nullsafe(_truncate)),
]


class _OrderedGroupConcat:
    """GROUP_CONCAT(value ORDER BY key [DESC] SEPARATOR sep), which SQLite 3.40 lacks:
    called as PYLAMP_GROUP_CONCAT(value, sep, distinct, desc, key)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, str]] = []
        self.sep = ","
        self.distinct = False
        self.desc = False

    def step(self, value: Any, sep: Any, distinct: Any, desc: Any, key: Any) -> None:
        self.sep = "" if sep is None else _text(sep)
        self.distinct = bool(distinct)
        self.desc = bool(desc)
        if value is not None:
            self.items.append((key, _text(value)))

    def finalize(self) -> Any:
        if not self.items:
            return None
        items = sorted(self.items, key=lambda kv: (kv[0] is None, kv[0]), reverse=self.desc)
        values = [v for _, v in items]
        if self.distinct:
            values = list(dict.fromkeys(values))
        return self.sep.join(values)


def register_functions(conn: sqlite3.Connection) -> None:
    """Add the MySQL functions SQLite lacks to ``conn``."""
    for name, nargs, fn in _FUNCTIONS:
        conn.create_function(name, nargs, fn, deterministic=True)
    conn.create_aggregate("PYLAMP_GROUP_CONCAT", 5, _OrderedGroupConcat)  # type: ignore[arg-type]
    # not deterministic: SQLite must call it every time (per row, as MySQL does)
    conn.create_function("SLEEP", 1, _sleep)


def _sleep(seconds: Any) -> int:
    """MySQL's SLEEP(n): pause this connection's thread n seconds (NULL or negative: not at
    all), then return 0. The GIL is released meanwhile, so other connections go on."""
    try:
        delay = float(seconds) if seconds is not None else 0.0
    except (TypeError, ValueError):
        delay = 0.0
    if delay > 0:
        time.sleep(delay)
    return 0
