"""Pure SQL text handling: split, classify, admin statements, literal stripping, determinising."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.db.results import SqlError
from pylamp.db.sql import (
    Kind,
    NonDeterministic,
    classify,
    literal_sql,
    parse_admin,
    parse_mysql,
    preprocess,
    restore,
    split_statements,
    strip_literals,
)

ND = NonDeterministic(
    now=1_700_000_000.25, random=random.Random(7).random, uuid=lambda: "u-u-i-d", last_insert_id=42
)


def test_split_respects_quotes_and_comments() -> None:
    text = "SELECT 'a;b'; SELECT \"c;\" ; -- note; here\nSELECT `x;y` FROM t;;  "
    assert split_statements(text) == [
        "SELECT 'a;b'",
        'SELECT "c;"',
        "-- note; here\nSELECT `x;y` FROM t",
    ]
    assert split_statements("SELECT 1") == ["SELECT 1"]
    assert split_statements("  ;  ") == []


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", Kind.READ),
        ("  (SELECT 1) UNION (SELECT 2)", Kind.READ),
        ("WITH c AS (SELECT 1) SELECT * FROM c", Kind.READ),
        ("insert into t values (1)", Kind.WRITE),
        ("REPLACE INTO t VALUES (1)", Kind.WRITE),
        ("UPDATE t SET a=1", Kind.WRITE),
        ("DELETE FROM t", Kind.WRITE),
        ("CREATE TABLE t (a INT)", Kind.DDL),
        ("ALTER TABLE t ADD b INT", Kind.DDL),
        ("TRUNCATE TABLE t", Kind.DDL),
        ("BEGIN", Kind.TRANSACTION),
        ("START TRANSACTION", Kind.TRANSACTION),
        ("COMMIT", Kind.TRANSACTION),
        ("ROLLBACK", Kind.TRANSACTION),
        ("SET autocommit=0", Kind.SET),
        ("SET NAMES utf8mb4", Kind.SET),
        ("SHOW TABLES", Kind.SHOW),
        ("DESCRIBE t", Kind.SHOW),
        ("USE shop", Kind.USE),
        ("CREATE USER 'u'@'%' IDENTIFIED BY 'p'", Kind.ACCOUNT),
        ("GRANT SELECT ON *.* TO 'u'@'%'", Kind.ACCOUNT),
        ("SET PASSWORD FOR 'u'@'%' = 'x'", Kind.ACCOUNT),
        ("START SLAVE", Kind.ADMIN),
        ("SHOW MASTER STATUS", Kind.ADMIN),
        ("FLUSH LOGS", Kind.ADMIN),
        ("LOCK TABLES t WRITE", Kind.OTHER),
    ],
)
def test_classify(sql: str, kind: Kind) -> None:
    assert classify(sql) is kind


def test_admin_statements_are_recognised_before_sqlglot() -> None:
    assert parse_admin("show master status;").kind == "show_master_status"  # type: ignore[union-attr]
    assert parse_admin("SHOW SLAVE STATUS").kind == "show_slave_status"  # type: ignore[union-attr]
    assert parse_admin("START SLAVE").kind == "start_slave"  # type: ignore[union-attr]
    assert parse_admin("STOP REPLICA").kind == "stop_slave"  # type: ignore[union-attr]
    assert parse_admin("FLUSH BINARY LOGS").kind == "flush_logs"  # type: ignore[union-attr]
    assert parse_admin("RESET MASTER").kind == "reset_master"  # type: ignore[union-attr]
    assert parse_admin("SHOW BINARY LOGS").kind == "show_binary_logs"  # type: ignore[union-attr]
    purge = parse_admin("PURGE BINARY LOGS TO 'db1-bin.000003'")
    assert purge is not None and purge.options == {"to": "db1-bin.000003"}
    events = parse_admin("SHOW BINLOG EVENTS IN 'db1-bin.000001' FROM 4 LIMIT 2, 3")
    assert events is not None
    assert events.options == {"in": "db1-bin.000001", "from": 4, "offset": 2, "limit": 3}
    change = parse_admin(
        "CHANGE MASTER TO MASTER_HOST='127.0.3.1', MASTER_PORT=3306, MASTER_USER='copy', "
        "MASTER_PASSWORD='it''s', MASTER_LOG_FILE='db1-bin.000001', MASTER_LOG_POS=4"
    )
    assert change is not None and change.kind == "change_master"
    assert change.options["MASTER_HOST"] == "127.0.3.1"
    assert change.options["MASTER_PORT"] == 3306
    assert change.options["MASTER_PASSWORD"] == "it's"
    assert change.options["MASTER_LOG_POS"] == 4
    assert parse_admin("SHOW TABLES") is None
    assert parse_admin("SELECT 1") is None
    with pytest.raises(SqlError) as err:
        parse_admin("CHANGE MASTER TO nonsense")
    assert err.value.errno == 1064


def test_strip_literals_replaces_strings_and_numbers() -> None:
    shape = strip_literals("SELECT a1, `t2`.b FROM t3 WHERE x = 'it\\'s' AND y = -2.5 LIMIT 10")
    assert shape.text == "SELECT a1, `t2`.b FROM t3 WHERE x = :l0 AND y = -:l1 LIMIT :l2"
    assert [lit.value for lit in shape.literals] == ["it's", 2.5, 10]
    assert restore(shape) == "SELECT a1, `t2`.b FROM t3 WHERE x = 'it\\'s' AND y = -2.5 LIMIT 10"


def test_same_shape_for_different_values() -> None:
    a = strip_literals("SELECT * FROM t WHERE id = 1 AND name = 'x'")
    b = strip_literals("SELECT * FROM t WHERE id = 9999 AND name = 'other'")
    assert a.text == b.text


def test_determinise_replaces_time_random_uuid_and_last_insert_id() -> None:
    shape = strip_literals(
        "INSERT INTO t VALUES (NOW(), CURRENT_TIMESTAMP, UNIX_TIMESTAMP(), RAND(), UUID(), "
        "LAST_INSERT_ID(), UNIX_TIMESTAMP(d), now)",
        ND,
    )
    assert shape.determinised
    logged = restore(shape)
    assert "NOW()" not in logged and "RAND()" not in logged and "UUID()" not in logged
    assert "UNIX_TIMESTAMP(d)" in logged  # deterministic with an argument
    assert logged.endswith(", now)")  # a column named now is not a function call
    values = [lit.value for lit in shape.literals]
    assert values[2] == 1_700_000_000
    assert values[4] == "u-u-i-d"
    assert values[5] == 42
    assert isinstance(values[3], float) and 0 <= values[3] < 1
    assert values[0] == values[1] and len(values[0]) == 19


def test_determinise_keeps_fractional_seconds() -> None:
    shape = strip_literals("SELECT NOW(3)", ND)
    assert shape.literals[0].value.endswith(".250")


def test_function_names_inside_strings_are_left_alone() -> None:
    shape = strip_literals("SELECT 'NOW()', `RAND()`", ND)
    assert not shape.determinised
    assert restore(shape) == "SELECT 'NOW()', `RAND()`"


def test_preprocess_unwraps_executable_comments_and_drops_others() -> None:
    assert preprocess("/*!40101 SET NAMES utf8 */").strip() == "SET NAMES utf8"
    text = preprocess("/*M!999999\\- enable the sandbox mode */\nSELECT 'a -- b # c /* d */' # x")
    assert text.split() == ["SELECT", "'a", "--", "b", "#", "c", "/*", "d", "*/'"]


def test_parse_error_is_1064() -> None:
    with pytest.raises(SqlError) as err:
        parse_mysql("SELECT FROM WHERE")
    assert err.value.errno == 1064
    assert err.value.sqlstate == "42000"


# -- property: stripping literals and putting them back is the identity ----------------------

_string_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
_literal = st.one_of(
    st.integers(min_value=0, max_value=2**62),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    _string_values,
)
_identifier = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_identifier, _literal), min_size=1, max_size=6))
def test_strip_restore_round_trip(pairs: list[tuple[str, object]]) -> None:
    where = " AND ".join(f"{col} = {literal_sql(value)}" for col, value in pairs)
    sql = f"SELECT * FROM t1 WHERE {where}"
    shape = strip_literals(sql)
    assert restore(shape) == sql
    assert len(shape.literals) == len(pairs)
    for lit, (_, value) in zip(shape.literals, pairs, strict=True):
        if isinstance(value, float):
            assert float(lit.value) == value
        else:
            assert lit.value == value
    # the shape carries no literal text: the same columns with other values share it
    other = " AND ".join(f"{col} = 0" for col, _ in pairs)
    assert strip_literals(f"SELECT * FROM t1 WHERE {other}").text == shape.text


@settings(max_examples=100, deadline=None)
@given(st.lists(_string_values, min_size=1, max_size=5))
def test_split_never_breaks_inside_strings(values: list[str]) -> None:
    statements = [f"SELECT {literal_sql(v)}" for v in values]
    assert split_statements("; ".join(statements)) == statements


def test_last_insert_id_with_an_argument_is_not_replaced() -> None:
    shape = strip_literals("UPDATE seq SET id = LAST_INSERT_ID(5)", ND)
    assert not shape.determinised
    assert restore(shape) == "UPDATE seq SET id = LAST_INSERT_ID(5)"


def test_projection_texts() -> None:
    from pylamp.db.sql import projection_texts

    assert projection_texts("SELECT DISTINCT IFNULL(SUM(n), 0), a.b AS x, f('a,b', c) FROM t") == [
        "IFNULL(SUM(n), 0)",
        "a.b AS x",
        "f('a,b', c)",
    ]
    assert projection_texts("SELECT 1") == ["1"]
    assert projection_texts("(SELECT a FROM t) UNION (SELECT b FROM u)") == ["a"]
    assert projection_texts("INSERT INTO t VALUES (1)") is None


def test_tokens_of_every_kind_are_recognised_where_they_start() -> None:
    # pins the tokenizer: hex, bit and identifier tokens stay; strings (with introducers),
    # numbers and non-deterministic functions in any case become literals; comments go
    sql = (
        "SELECT _utf8'a', N'b', x'0A', X'0b', 0x1F, 0b101, b'11', 12.5e3, .5, col1, t.c2, "
        '@v, @@session.x, `we\'ird`, "dq" /* c */ -- d\n# e\n, now(), Current_Date, '
        "cur_date(), xnow(), user (), 3"
    )
    shape = strip_literals(sql, NonDeterministic(now=0.0, random=lambda: 0.25, user="u@h"))
    assert shape.text == (
        "SELECT :l0, :l1, x'0A', X'0b', 0x1F, 0b101, b'11', :l2, :l3, col1, t.c2, @v, "
        "@@session.x, `we'ird`, :l4    \n \n, :l5, :l6, cur_date(), xnow(), :l7, :l8"
    )
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(0))
    assert [tuple(lit) for lit in shape.literals] == [
        ("_utf8'a'", "a"),
        ("N'b'", "b"),
        ("12.5e3", 12500.0),
        (".5", 0.5),
        ('"dq"', "dq"),
        (f"'{now}'", now),
        (f"'{now[:10]}'", now[:10]),
        ("'u@h'", "u@h"),
        ("3", 3),
    ]
    assert shape.determinised and shape.user_vars == ("v",)
