"""Bad input never escapes the engine as anything but a MySQL error, and loses nothing."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylamp.db.engine import Engine
from pylamp.db.results import ResultSet, SqlError

_WORDS = [
    "SELECT",
    "INSERT",
    "INTO",
    "UPDATE",
    "DELETE",
    "FROM",
    "WHERE",
    "SET",
    "VALUES",
    "(",
    ")",
    ",",
    ";",
    "'",
    '"',
    "`",
    "t",
    "id",
    "v",
    "1",
    "-",
    "*",
    "=",
    "ORDER BY",
    "LIMIT",
    "GROUP BY",
    "CREATE TABLE",
    "DROP",
    "ALTER",
    "TABLE",
    "ADD",
    "COLUMN",
    "INT",
    "NOW()",
    "@a",
    "@@x",
    "DATABASE()",
    "JOIN",
    "ON",
    "AS",
    "NULL",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SHOW",
    "USE",
    "GRANT",
    "ON DUPLICATE KEY UPDATE",
    "REPLACE",
    "x'ff'",
    "/*",
    "*/",
    "--",
    "\\",
    "%",
]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=14) | st.text(max_size=60))
def test_garbage_gives_mysql_errors_and_keeps_data(tmp_path: Path, garbage: object) -> None:
    if str(tmp_path) not in _ENGINES:
        _ENGINES[str(tmp_path)] = _make_engine(tmp_path)
    engine = _ENGINES[str(tmp_path)]
    session = engine.open_session("root", "127.0.0.1")
    session.use("fz")
    text = " ".join(garbage) if isinstance(garbage, list) else str(garbage)
    try:
        session.execute(text)
    except SqlError as e:
        assert 1000 <= e.errno < 4000 and len(e.sqlstate) == 5
    finally:
        session.close()
    check = engine.open_session("root", "127.0.0.1")
    result = check.execute("SELECT COUNT(*) FROM fz.keep")[0]
    assert isinstance(result, ResultSet) and result.rows == [(3,)]
    check.close()


_ENGINES: dict[str, Engine] = {}


def _make_engine(tmp_path: Path) -> Engine:
    engine = Engine(tmp_path / "fuzz")
    s = engine.open_session("root", "127.0.0.1")
    s.execute("CREATE DATABASE fz; USE fz; CREATE TABLE keep (id INT PRIMARY KEY)")
    s.execute("INSERT INTO keep VALUES (1), (2), (3); CREATE TABLE t (id INT, v INT)")
    s.close()
    return engine
