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


_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), _texts), min_size=1, max_size=5))
def test_interpolated_values_come_back_exactly(
    tmp_path: Path, values: list[tuple[int, str]]
) -> None:
    """Values a client interpolates into the text (as PyMySQL does) survive the literal
    stripping, the cache by shape and parameter binding unchanged."""
    from pylamp.db.sql import literal_sql

    if str(tmp_path) not in _ENGINES:
        _ENGINES[str(tmp_path)] = _make_engine(tmp_path)
    engine = _ENGINES[str(tmp_path)]
    session = engine.open_session("root", "127.0.0.1")
    session.use("fz")
    session.execute("CREATE TABLE IF NOT EXISTS vals (k INT PRIMARY KEY, n BIGINT, s TEXT)")
    session.execute("DELETE FROM vals")
    for k, (n, s) in enumerate(values):
        session.execute(f"INSERT INTO vals VALUES ({k}, {n}, {literal_sql(s)})")
    for k, (n, s) in enumerate(values):
        result = session.execute(f"SELECT n, s FROM vals WHERE k = {k} AND s = {literal_sql(s)}")
        assert isinstance(result[0], ResultSet) and result[0].rows == [(n, s)]
    session.close()


def test_extreme_integers(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "ints")
    s = engine.open_session("root", "127.0.0.1")
    s.execute("CREATE DATABASE d; USE d; CREATE TABLE t (a BIGINT)")
    s.execute("INSERT INTO t VALUES (-9223372036854775808), (9223372036854775807)")
    result = s.execute("SELECT a FROM t WHERE a = -9223372036854775808 OR a > 0 ORDER BY a")[0]
    assert isinstance(result, ResultSet)
    assert result.rows == [(-(2**63),), (2**63 - 1,)]
    s.close()
    engine.close()
