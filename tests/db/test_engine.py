"""The SQL engine through Session.execute: every statement family, types and error numbers."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pylamp.db.engine import Engine, Session
from pylamp.db.results import ColumnFlag, FieldType, Ok, ResultSet, SqlError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path, clock=lambda: 1_700_000_000.0)
    yield eng
    eng.close()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    s = engine.open_session("root", "127.0.0.1")
    s.execute("CREATE DATABASE shop")
    s.execute("USE shop")
    yield s
    s.close()


def rows(session: Session, sql: str) -> list[tuple[Any, ...]]:
    result = session.execute(sql)[-1]
    assert isinstance(result, ResultSet)
    return result.rows


def one(session: Session, sql: str) -> Any:
    return rows(session, sql)[0][0]


def ok(session: Session, sql: str) -> Ok:
    result = session.execute(sql)[-1]
    assert isinstance(result, Ok)
    return result


def errno(session: Session, sql: str) -> int:
    with pytest.raises(SqlError) as err:
        session.execute(sql)
    return err.value.errno


PRODUCTS = """
CREATE TABLE products (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  sku VARCHAR(20) NOT NULL,
  name VARCHAR(100) DEFAULT 'unnamed',
  price DECIMAL(10,2) NOT NULL DEFAULT '0.00',
  qty INT NOT NULL DEFAULT 0,
  added DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY uk_sku (sku),
  KEY k_price (price)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


@pytest.fixture
def products(session: Session) -> Session:
    session.execute(PRODUCTS)
    session.execute(
        "INSERT INTO products (sku, name, price, qty) VALUES "
        "('A1', 'apple', 0.50, 10), ('B2', 'banana', 0.25, 20), ('C3', 'cherry', 4.10, 5)"
    )
    return session


# -- databases ---------------------------------------------------------------------------------


def test_databases(engine: Engine) -> None:
    s = engine.open_session("root", "127.0.0.1")
    assert ok(s, "CREATE DATABASE a").affected_rows == 1
    assert errno(s, "CREATE DATABASE a") == 1007
    ok(s, "CREATE DATABASE IF NOT EXISTS a")
    assert ("a",) in rows(s, "SHOW DATABASES")
    assert (engine.data_dir / "a.sqlite").exists()
    assert one(s, "SELECT DATABASE()") is None
    assert errno(s, "SELECT * FROM t") == 1046
    assert errno(s, "USE nope") == 1049
    s.use("a")
    assert one(s, "SELECT DATABASE()") == "a"
    ok(s, "DROP DATABASE a")
    assert errno(s, "DROP DATABASE a") == 1008
    ok(s, "DROP DATABASE IF EXISTS a")
    assert ("a",) not in rows(s, "SHOW DATABASES")
    assert not (engine.data_dir / "a.sqlite").exists()
    s.close()


def test_cross_database_query(session: Session) -> None:
    session.execute("CREATE DATABASE other")
    session.execute("CREATE TABLE other.t (id INT PRIMARY KEY, v VARCHAR(5))")
    session.execute("INSERT INTO other.t VALUES (1, 'x')")
    session.execute("CREATE TABLE t (id INT PRIMARY KEY, w INT)")
    session.execute("INSERT INTO t VALUES (1, 7)")
    assert rows(session, "SELECT t.w, o.v FROM t JOIN other.t AS o ON o.id = t.id") == [(7, "x")]


# -- tables and SHOW ----------------------------------------------------------------------------


def test_create_table_show_create_and_describe(products: Session) -> None:
    create = rows(products, "SHOW CREATE TABLE products")[0][1]
    assert create.startswith(
        "CREATE TABLE `products` (\n  `id` int unsigned NOT NULL AUTO_INCREMENT,"
    )
    assert "  `price` decimal(10,2) NOT NULL DEFAULT '0.00'," in create
    assert "  UNIQUE KEY `uk_sku` (`sku`)," in create
    assert "  KEY `k_price` (`price`)" in create
    assert create.endswith(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    described = rows(products, "DESCRIBE products")
    assert described[0] == ("id", "int unsigned", "NO", "PRI", None, "auto_increment")
    assert described[1] == ("sku", "varchar(20)", "NO", "UNI", None, "")
    assert described[2] == ("name", "varchar(100)", "YES", "", "unnamed", "")
    assert described[3][:4] == ("price", "decimal(10,2)", "NO", "MUL")
    assert rows(products, "SHOW COLUMNS FROM products LIKE 'qty'")[0][0] == "qty"
    assert rows(products, "SHOW FIELDS FROM products")[4][0] == "qty"
    assert rows(products, "SHOW TABLES") == [("products",)]
    assert rows(products, "SHOW FULL TABLES FROM shop") == [("products", "BASE TABLE")]
    assert rows(products, "SHOW TABLES LIKE 'prod%'") == [("products",)]
    assert errno(products, PRODUCTS) == 1050
    ok(products, PRODUCTS.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    assert errno(products, "DESCRIBE nothing") == 1146
    assert errno(products, "SHOW CREATE TABLE nothing") == 1146


def test_result_column_types_come_from_the_catalog(products: Session) -> None:
    result = products.execute("SELECT id, sku, price, added, qty * 2 AS q2, 'x' AS s FROM products")
    cols = result[0].columns  # type: ignore[union-attr]
    assert [c.name for c in cols] == ["id", "sku", "price", "added", "q2", "s"]
    assert cols[0].type_code == FieldType.LONG
    assert cols[0].flags & ColumnFlag.PRI_KEY and cols[0].flags & ColumnFlag.AUTO_INCREMENT
    assert cols[0].flags & ColumnFlag.UNSIGNED
    assert cols[0].table == "products" and cols[0].db == "shop"
    assert cols[1].type_code == FieldType.VAR_STRING
    assert cols[2].type_code == FieldType.NEWDECIMAL and cols[2].decimals == 2
    assert cols[3].type_code == FieldType.DATETIME
    assert cols[4].type_code == FieldType.LONGLONG
    assert cols[5].type_code == FieldType.VAR_STRING


def test_decimal_is_exact_and_scaled(products: Session) -> None:
    assert rows(products, "SELECT price FROM products ORDER BY id") == [
        (Decimal("0.50"),),
        (Decimal("0.25"),),
        (Decimal("4.10"),),
    ]
    assert one(products, "SELECT COUNT(*) FROM products WHERE price > 1") == 1


def test_default_current_timestamp_uses_statement_time(products: Session) -> None:
    added = one(products, "SELECT added FROM products WHERE sku = 'A1'")
    import time

    assert added == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_700_000_000))


def test_drop_and_truncate(products: Session) -> None:
    ok(products, "TRUNCATE TABLE products")
    assert one(products, "SELECT COUNT(*) FROM products") == 0
    ok(products, "DROP TABLE products")
    assert errno(products, "DROP TABLE products") == 1051
    ok(products, "DROP TABLE IF EXISTS products")
    assert errno(products, "SELECT * FROM products") == 1146


def test_alter_table(products: Session) -> None:
    ok(
        products,
        "ALTER TABLE products ADD COLUMN color VARCHAR(10) NOT NULL DEFAULT 'red' AFTER sku",
    )
    assert [r[0] for r in rows(products, "DESCRIBE products")][:3] == ["id", "sku", "color"]
    assert one(products, "SELECT color FROM products WHERE sku = 'A1'") == "red"
    ok(products, "ALTER TABLE products ADD INDEX k_qty (qty), MODIFY COLUMN name VARCHAR(200)")
    ok(products, "ALTER TABLE products CHANGE qty stock INT NOT NULL DEFAULT 1")
    assert one(products, "SELECT stock FROM products WHERE sku = 'B2'") == 20
    create = rows(products, "SHOW CREATE TABLE products")[0][1]
    assert "`name` varchar(200)" in create and "KEY `k_qty` (`stock`)" in create
    ok(products, "ALTER TABLE products DROP COLUMN color, DROP INDEX k_qty")
    ok(products, "ALTER TABLE products RENAME TO goods")
    assert rows(products, "SHOW TABLES") == [("goods",)]
    assert one(products, "SELECT COUNT(*) FROM goods") == 3
    assert errno(products, "ALTER TABLE goods DROP COLUMN nothing") == 1091
    assert errno(products, "ALTER TABLE goods ADD COLUMN sku INT") == 1060
    assert errno(products, "ALTER TABLE nothing ADD COLUMN x INT") == 1146
    # auto increment continues after the rebuild
    ok(products, "INSERT INTO goods (sku) VALUES ('D4')")
    assert one(products, "SELECT MAX(id) FROM goods") == 4


def test_create_index_statement(products: Session) -> None:
    ok(products, "CREATE INDEX k_name ON products (name)")
    assert "KEY `k_name` (`name`)" in rows(products, "SHOW CREATE TABLE products")[0][1]
    ok(products, "CREATE UNIQUE INDEX u_name ON products (name)")
    assert errno(products, "INSERT INTO products (sku, name) VALUES ('Z', 'apple')") == 1062


# -- INSERT, REPLACE, UPDATE, DELETE ------------------------------------------------------------


def test_insert_ids_and_affected_rows(products: Session) -> None:
    result = ok(products, "INSERT INTO products (sku) VALUES ('D4')")
    assert result.affected_rows == 1 and result.last_insert_id == 4
    assert one(products, "SELECT LAST_INSERT_ID()") == 4
    result = ok(products, "INSERT INTO products (sku) VALUES ('E5'), ('F6')")
    assert result.affected_rows == 2 and result.last_insert_id == 5  # MySQL: the first id
    assert rows(products, "SELECT name FROM products WHERE sku = 'E5'") == [("unnamed",)]


def test_duplicate_entry_error(products: Session) -> None:
    with pytest.raises(SqlError) as err:
        products.execute("INSERT INTO products (sku) VALUES ('A1')")
    assert err.value.errno == 1062
    assert err.value.message == "Duplicate entry 'A1' for key 'products.uk_sku'"
    assert errno(products, "INSERT INTO products (id, sku) VALUES (1, 'new')") == 1062
    # a failed autocommit statement leaves nothing behind
    assert one(products, "SELECT COUNT(*) FROM products") == 3


def test_insert_ignore(products: Session) -> None:
    result = ok(products, "INSERT IGNORE INTO products (sku) VALUES ('A1'), ('G7')")
    assert result.affected_rows == 1
    assert one(products, "SELECT COUNT(*) FROM products") == 4


def test_on_duplicate_key_update(products: Session) -> None:
    ok(
        products,
        "INSERT INTO products (sku, qty) VALUES ('A1', 3), ('Z9', 1) "
        "ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty)",
    )
    assert rows(
        products, "SELECT sku, qty FROM products WHERE sku IN ('A1', 'Z9') ORDER BY sku"
    ) == [
        ("A1", 13),
        ("Z9", 1),
    ]
    # one row: 1 when inserted, 2 when an existing row was updated (MySQL's counting)
    upsert = "INSERT INTO products (sku, qty) VALUES ('{}', 1) ON DUPLICATE KEY UPDATE qty = 7"
    assert ok(products, upsert.format("NEW")).affected_rows == 1
    assert ok(products, upsert.format("NEW")).affected_rows == 2


def test_replace_into(products: Session) -> None:
    ok(products, "REPLACE INTO products (id, sku, name) VALUES (2, 'B2', 'blueberry')")
    assert rows(products, "SELECT id, name FROM products WHERE sku = 'B2'") == [(2, "blueberry")]
    assert one(products, "SELECT COUNT(*) FROM products") == 3


def test_update_and_delete_with_order_by_and_limit(products: Session) -> None:
    result = ok(products, "UPDATE products SET qty = 0 ORDER BY price DESC LIMIT 1")
    assert result.affected_rows == 1
    assert one(products, "SELECT sku FROM products WHERE qty = 0") == "C3"
    result = ok(products, "DELETE FROM products WHERE qty > 0 ORDER BY qty LIMIT 1")
    assert result.affected_rows == 1
    assert rows(products, "SELECT sku FROM products ORDER BY sku") == [("B2",), ("C3",)]
    assert ok(products, "DELETE FROM products").affected_rows == 2


def test_not_null_and_column_errors(products: Session) -> None:
    assert errno(products, "INSERT INTO products (sku) VALUES (NULL)") == 1048
    assert errno(products, "INSERT INTO products (nope) VALUES (1)") == 1054
    assert errno(products, "SELECT nope FROM products") == 1054
    assert errno(products, "SELECT * FROM nope") == 1146
    assert errno(products, "SELEKT 1") == 1064
    assert errno(products, "INSERT INTO products (sku, qty) VALUES ('x')") == 1136


# -- SELECT ------------------------------------------------------------------------------------


def test_select_features(products: Session) -> None:
    products.execute(
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, product_id INT, n INT)"
    )
    products.execute("INSERT INTO orders (product_id, n) VALUES (1, 2), (1, 3), (3, 1)")
    assert rows(
        products,
        "SELECT p.sku, SUM(o.n) AS total FROM products p JOIN orders o ON o.product_id = p.id "
        "GROUP BY p.sku HAVING total > 1 ORDER BY total DESC",
    ) == [("A1", 5)]
    assert rows(
        products,
        "SELECT p.sku, COUNT(o.id) FROM products p LEFT JOIN orders o ON o.product_id = p.id "
        "GROUP BY p.sku ORDER BY p.sku",
    ) == [("A1", 2), ("B2", 0), ("C3", 1)]
    assert rows(
        products,
        "SELECT sku FROM products WHERE id IN (SELECT product_id FROM orders) ORDER BY 1",
    ) == [("A1",), ("C3",)]
    assert rows(products, "SELECT sku FROM products ORDER BY id LIMIT 1, 1") == [("B2",)]
    assert rows(products, "SELECT sku FROM products ORDER BY id LIMIT 1 OFFSET 2") == [("C3",)]
    assert one(products, "SELECT GROUP_CONCAT(sku ORDER BY sku SEPARATOR '|') FROM products") in (
        "A1|B2|C3",
    )
    # MySQL's default collation compares case-insensitively
    assert one(products, "SELECT sku FROM products WHERE name = 'APPLE'") == "A1"


def test_common_functions(session: Session) -> None:
    assert rows(
        session,
        "SELECT CONCAT('a', 'b', 1), IFNULL(NULL, 2), COALESCE(NULL, NULL, 3), LENGTH('abc'), "
        "UPPER('x'), LOWER('Y'), SUBSTRING('hello', 2, 3), CONCAT_WS('-', 'a', NULL, 'b'), "
        "LEFT('abc', 2), RIGHT('abc', 2), IF(1 > 0, 'y', 'n'), ROUND(2.567, 2), ABS(-3)",
    ) == [("ab1", 2, 3, 3, "X", "y", "ell", "a-b", "ab", "bc", "y", 2.57, 3)]
    assert one(session, "SELECT DATE_FORMAT('2024-03-05 14:07:09', '%Y/%m/%d %H:%i:%s')") == (
        "2024/03/05 14:07:09"
    )
    assert rows(session, "SELECT YEAR('2024-03-05'), MONTH('2024-03-05'), DAY('2024-03-05')") == [
        (2024, 3, 5)
    ]
    assert one(session, "SELECT CONCAT('x', NULL)") is None
    assert one(session, "SELECT 'abc' REGEXP '^a'") == 1
    assert one(session, "SELECT MD5('a')") == "0cc175b9c0f1b6a831c399e269772661"
    assert rows(session, "SELECT LENGTH('héllo'), CHAR_LENGTH('héllo')") == [(6, 5)]
    assert rows(
        session,
        "SELECT TRUNCATE(2.567, 2), FLOOR(2.5), CEIL(2.1), FROM_UNIXTIME(40000000, '%Y'), "
        "SUBSTRING('hello' FROM 2 FOR 2), TRIM(LEADING 'x' FROM 'xxa')",
    ) == [(2.56, 2, 3, "1971", "el", "a")]
    assert errno(session, "SELECT FROM_UNIXTIME(1, 2, 3)") == 1582
    assert rows(session, "SELECT REPEAT('ab', 3), REPEAT('x', 0), REPEAT(NULL, 2), SPACE(2)") == [
        ("ababab", "", None, "  ")
    ]
    assert one(session, "SELECT REPEAT('x', 100000000)") is None  # past max_allowed_packet


def test_now_and_friends_are_determinised(session: Session) -> None:
    import time

    expected = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_700_000_000))
    assert one(session, "SELECT NOW()") == expected
    assert one(session, "SELECT CURRENT_TIMESTAMP") == expected
    assert one(session, "SELECT UNIX_TIMESTAMP()") == 1_700_000_000
    assert len(one(session, "SELECT UUID()")) == 36
    assert 0 <= one(session, "SELECT RAND()") < 1


def test_select_without_table_and_column_names(session: Session) -> None:
    result = session.execute("SELECT 1, 1 + 1, 'abc', NULL, @@version_comment, DATABASE()")[0]
    assert isinstance(result, ResultSet)
    assert result.columns[0].name == "1"
    assert result.columns[4].name == "@@version_comment"
    assert result.columns[5].name == "DATABASE()"
    assert result.rows == [(1, 2, "abc", None, result.rows[0][4], "shop")]


def test_client_connect_queries(session: Session) -> None:
    assert one(session, "SELECT @@version_comment LIMIT 1")
    assert one(session, "SELECT VERSION()").startswith("8.0")
    assert one(session, "SELECT @@max_allowed_packet") > 1_000_000
    assert one(session, "SELECT @@sql_mode")
    assert one(session, "SELECT @@lower_case_table_names") == 0
    assert one(session, "SELECT @@transaction_isolation") == one(session, "SELECT @@tx_isolation")
    assert one(session, "SELECT @@session.autocommit") == 1
    assert rows(session, "SHOW VARIABLES LIKE 'sql_mode'")[0][0] == "sql_mode"
    assert rows(session, "SHOW VARIABLES LIKE 'lower_case_table_names'") == [
        ("lower_case_table_names", "0")
    ]
    assert rows(session, "SHOW COLLATION")
    assert rows(session, "SHOW STATUS LIKE 'Uptime'")[0][0] == "Uptime"
    assert errno(session, "SELECT @@no_such_variable") == 1193


def test_set_statements_and_variables(session: Session) -> None:
    ok(session, "SET NAMES utf8mb4")
    assert one(session, "SELECT @@character_set_client") == "utf8mb4"
    ok(session, "SET @a = 5, @b = 'x'")
    assert rows(session, "SELECT @a + 1, @b, @unset") == [(6, "x", None)]
    ok(session, "SET @c = @a * 2")
    assert one(session, "SELECT @c") == 10
    ok(session, "SET SESSION sql_mode = 'TRADITIONAL'")
    assert one(session, "SELECT @@session.sql_mode") == "TRADITIONAL"
    ok(session, "SET @@session.wait_timeout = 100")
    assert one(session, "SELECT @@wait_timeout") == 100
    assert errno(session, "SET nonsense_variable = 1") == 1193
    ok(session, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")


def test_multi_statement_returns_every_result(session: Session) -> None:
    results = session.execute("SELECT 1; SELECT 2 AS two; SET @x = 1")
    assert len(results) == 3
    assert isinstance(results[2], Ok)
    with pytest.raises(SqlError) as err:
        session.execute("SELECT 1; SELECT * FROM nope; SELECT 3")
    assert err.value.errno == 1146
    assert len(err.value.results) == 1  # type: ignore[attr-defined]


def test_show_warnings_after_create_if_not_exists(session: Session) -> None:
    session.execute("CREATE TABLE t (a INT)")
    session.execute("CREATE TABLE IF NOT EXISTS t (a INT)")
    assert rows(session, "SHOW WARNINGS") == [("Note", 1050, "Table 't' already exists")]


def test_literal_cache_binds_each_execution(products: Session) -> None:
    # the same shape with different literals must give each its own answer
    for i, sku in enumerate(["A1", "B2", "C3"], 1):
        assert one(products, f"SELECT sku FROM products WHERE id = {i}") == sku
    assert rows(products, "SELECT id FROM products ORDER BY 1 DESC LIMIT 1") == [(3,)]
    assert one(products, "SELECT 'x'") == "x" and one(products, "SELECT 'y'") == "y"
    assert one(products, "SELECT CAST('12' AS SIGNED)") == 12


def test_on_update_current_timestamp(engine: Engine, session: Session) -> None:
    session.execute(
        "CREATE TABLE s (id INT PRIMARY KEY, v INT, "
        "changed TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP)"
    )
    session.execute("INSERT INTO s (id, v) VALUES (1, 1)")
    assert one(session, "SELECT changed FROM s") is None
    session.execute("UPDATE s SET v = 2")
    assert one(session, "SELECT changed FROM s") == _local(1_700_000_000)
    assert "ON UPDATE CURRENT_TIMESTAMP" in rows(session, "SHOW CREATE TABLE s")[0][1]


def test_binary_strings_round_trip(session: Session) -> None:
    session.execute("CREATE TABLE b (id INT PRIMARY KEY, data BLOB)")
    raw = bytes(range(256))
    # as PyMySQL sends bytes: _binary'...' with the raw bytes in the query text
    body = raw.decode("ascii", "surrogateescape").replace("\\", "\\\\").replace("'", "\\'")
    session.execute(f"INSERT INTO b VALUES (1, _binary'{body}')")
    assert one(session, "SELECT data FROM b") == raw
    session.execute("INSERT INTO b VALUES (2, X'00FF')")
    assert one(session, "SELECT data FROM b WHERE id = 2") == b"\x00\xff"


def _local(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def test_mysql_only_syntax(products: Session) -> None:
    products.execute("CREATE TABLE orders (id INT PRIMARY KEY, product_id INT, n INT)")
    products.execute("INSERT INTO orders SET id = 1, product_id = 1, n = 4")
    result = ok(
        products,
        "UPDATE products p JOIN orders o ON o.product_id = p.id SET p.qty = p.qty - o.n "
        "WHERE o.id = 1",
    )
    assert result.affected_rows == 1
    assert one(products, "SELECT qty FROM products WHERE id = 1") == 6
    assert rows(products, "SELECT SQL_CALC_FOUND_ROWS sku FROM products ORDER BY id LIMIT 1") == [
        ("A1",)
    ]
    assert one(products, "SELECT 1 FROM DUAL") == 1
    assert rows(
        products,
        "SELECT DATE_ADD('2024-01-31', INTERVAL 1 MONTH), DATE_SUB('2024-03-01', INTERVAL 1 DAY), "
        "'2024-01-01 10:00:00' + INTERVAL 90 MINUTE, STR_TO_DATE('05/03/2024', '%d/%m/%Y')",
    ) == [("2024-02-29", "2024-02-29", "2024-01-01 11:30:00", "2024-03-05")]
    assert one(products, "SELECT CONNECTION_ID()") == products.connection_id
    assert one(products, "SELECT USER()") == "root@127.0.0.1"


def test_select_for_update_serialises_with_writers(engine: Engine, products: Session) -> None:
    products.execute("BEGIN")
    products.execute("SELECT qty FROM products WHERE id = 1 FOR UPDATE")
    other = engine.open_session("root", "127.0.0.1")
    assert engine.writer_lock.locked()  # held by the locking read's transaction
    products.execute("UPDATE products SET qty = qty + 1 WHERE id = 1")
    products.execute("COMMIT")
    assert not engine.writer_lock.locked()
    other.close()


def test_insert_a_row_of_defaults(session: Session) -> None:
    session.execute("CREATE TABLE d (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(5) DEFAULT 'x')")
    assert ok(session, "INSERT INTO d () VALUES ()").last_insert_id == 1
    assert ok(session, "INSERT INTO shop.d VALUES ()").last_insert_id == 2
    assert rows(session, "SELECT id, v FROM d") == [(1, "x"), (2, "x")]


def test_order_by_rand_shuffles_per_row(products: Session) -> None:
    seen = {
        tuple(r[0] for r in rows(products, "SELECT sku FROM products ORDER BY RAND()"))
        for _ in range(30)
    }
    assert len(seen) > 1  # 30 identical orders of 3 rows: (1/6)^29
    values = rows(products, "SELECT RAND(), UUID() FROM products")
    assert len({v[0] for v in values}) == 3 and len({v[1] for v in values}) == 3


def test_information_schema(products: Session) -> None:
    assert rows(
        products,
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'",
    ) == [("products", "BASE TABLE")]
    columns = rows(
        products,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY "
        "FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = 'products' ORDER BY ORDINAL_POSITION",
    )
    assert columns[0] == ("id", "int", "int unsigned", "NO", "PRI")
    assert columns[3] == ("price", "decimal", "decimal(10,2)", "NO", "MUL")
    assert ("shop",) in rows(products, "SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA")
    assert errno(products, "DELETE FROM information_schema.tables") == 1044


def test_information_schema_inside_a_write_transaction(products: Session) -> None:
    products.execute("BEGIN; INSERT INTO products (sku) VALUES ('Q')")
    assert one(products, "SELECT COUNT(*) FROM information_schema.tables") == 1
    products.execute("COMMIT")


def test_multi_table_delete(products: Session) -> None:
    products.execute("CREATE TABLE gone (sku VARCHAR(20) PRIMARY KEY)")
    products.execute("INSERT INTO gone VALUES ('A1'), ('C3')")
    result = ok(products, "DELETE p FROM products p JOIN gone g ON g.sku = p.sku WHERE p.qty > 5")
    assert result.affected_rows == 1
    assert rows(products, "SELECT sku FROM products ORDER BY sku") == [("B2",), ("C3",)]
    ok(products, "DELETE FROM products USING products JOIN gone ON gone.sku = products.sku")
    assert rows(products, "SELECT sku FROM products") == [("B2",)]


def test_last_insert_id_sequence_idiom(session: Session) -> None:
    session.execute("CREATE TABLE seq (id INT NOT NULL); INSERT INTO seq VALUES (41)")
    session.execute("UPDATE seq SET id = LAST_INSERT_ID(id + 1)")
    assert one(session, "SELECT LAST_INSERT_ID()") == 42
    assert one(session, "SELECT id FROM seq") == 42


def test_create_table_as_select(products: Session) -> None:
    ok(
        products,
        "CREATE TABLE cheap AS SELECT id, sku, price, qty * 2 AS q2 FROM products WHERE price < 1",
    )
    assert rows(products, "SELECT sku, price, q2 FROM cheap ORDER BY id") == [
        ("A1", Decimal("0.50"), 20),
        ("B2", Decimal("0.25"), 40),
    ]
    described = {r[0]: r[1] for r in rows(products, "DESCRIBE cheap")}
    assert described == {
        "id": "int unsigned",
        "sku": "varchar(20)",
        "price": "decimal(10,2)",
        "q2": "bigint",
    }


def test_many_databases_in_one_session(session: Session) -> None:
    for i in range(12):
        session.execute(f"CREATE DATABASE d{i}; CREATE TABLE d{i}.t (v INT)")
        session.execute(f"INSERT INTO d{i}.t VALUES ({i})")
    total = sum(one(session, f"SELECT v FROM d{i}.t") for i in range(12))
    assert total == sum(range(12))
    assert rows(session, "SELECT a.v, b.v FROM d0.t a JOIN d11.t b") == [(0, 11)]


def test_too_long_string_is_refused(products: Session) -> None:
    with pytest.raises(SqlError) as err:
        products.execute(f"INSERT INTO products (sku) VALUES ('{'x' * 21}')")
    assert err.value.errno == 1406
    assert err.value.message == "Data too long for column 'sku' at row 1"
    ok(products, f"INSERT INTO products (sku) VALUES ('{'é' * 20}')")  # characters, not bytes


def test_expression_columns_are_named_as_written(products: Session) -> None:
    result = products.execute(
        "SELECT IFNULL(SUM(qty), 0), 1+1, 'a, b', NOW(), COUNT(*) AS n, sku FROM products"
    )[0]
    assert isinstance(result, ResultSet)
    assert [c.name for c in result.columns] == [
        "IFNULL(SUM(qty), 0)",
        "1+1",
        "a, b",
        "NOW()",
        "n",
        "sku",
    ]


MYSQLDUMP = r"""/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`
  /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci */;
USE `shop`;
DROP TABLE IF EXISTS `items`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8 */;
CREATE TABLE `items` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(50) NOT NULL DEFAULT '',
  `price` decimal(10,2) DEFAULT NULL,
  `created` timestamp NOT NULL DEFAULT current_timestamp(),
  PRIMARY KEY (`id`),
  KEY `idx_name` (`name`)
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
/*!40101 SET character_set_client = @saved_cs_client */;
LOCK TABLES `items` WRITE;
/*!40000 ALTER TABLE `items` DISABLE KEYS */;
INSERT INTO `items` VALUES (1,'apple',0.50,'2024-01-01 00:00:00'),
  (2,'it\'s',1.25,'2024-01-02 00:00:00');
/*!40000 ALTER TABLE `items` ENABLE KEYS */;
UNLOCK TABLES;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;
"""


def test_loads_a_mysqldump_file(engine: Engine) -> None:
    """The layout mysqldump writes: executable comments, LOCK TABLES, DISABLE KEYS, SET
    statements saving and restoring variables, all in one multi-statement string."""
    s = engine.open_session("root", "127.0.0.1")
    results = s.execute(MYSQLDUMP)
    assert all(isinstance(r, Ok) for r in results)
    assert rows(s, "SELECT id, name, price FROM shop.items ORDER BY id") == [
        (1, "apple", Decimal("0.50")),
        (2, "it's", Decimal("1.25")),
    ]
    create = rows(s, "SHOW CREATE TABLE shop.items")[0][1]
    assert "`created` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP" in create
    s.close()


def test_engine_tables_are_out_of_reach(products: Session) -> None:
    assert errno(products, "SELECT * FROM _pylamp_tables") == 1146
    assert errno(products, "DELETE FROM shop._pylamp_meta") == 1146
    assert errno(products, "SELECT * FROM sqlite_master") == 1146
    assert errno(products, "DROP TABLE _pylamp_tables") == 1103
    assert errno(products, "CREATE TABLE sqlite_x (a INT)") == 1103
    assert rows(products, "SHOW TABLES") == [("products",)]


def test_bulk_insert_beyond_sqlite_parameter_limit(session: Session) -> None:
    session.execute("CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(20), f DOUBLE)")
    values = ",".join(f"({i}, 'v''{i}', -{i}.5)" for i in range(11000))  # 33,000 literals
    assert ok(session, f"INSERT INTO bulk VALUES {values}").affected_rows == 11000
    assert rows(session, "SELECT v, f FROM bulk WHERE id = 10999") == [("v'10999", -10999.5)]
    assert errno(session, "INSERT INTO bulk (id) VALUES (1), (2)") == 1062


def test_aggregates_of_decimal_columns_are_exact_decimals(session: Session) -> None:
    session.execute("CREATE TABLE money (id INT PRIMARY KEY, amount DECIMAL(12,2))")
    values = ", ".join(f"({i}, 0.10)" for i in range(1, 1001))
    session.execute(f"INSERT INTO money VALUES {values}")
    result = session.execute(
        "SELECT SUM(amount), AVG(amount), MIN(amount), MAX(amount) AS top FROM money"
    )[0]
    assert isinstance(result, ResultSet)
    assert result.rows == [
        (Decimal("100.00"), Decimal("0.100000"), Decimal("0.10"), Decimal("0.10"))
    ]
    assert [c.type_code for c in result.columns] == [FieldType.NEWDECIMAL] * 4
    assert result.columns[0].name == "SUM(amount)" and result.columns[3].name == "top"


def test_show_where(products: Session) -> None:
    assert rows(products, "SHOW VARIABLES WHERE Variable_name IN ('version', 'port')") == [
        ("port", "3306"),
        ("version", rows(products, "SELECT @@version")[0][0]),
    ]
    assert rows(products, "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'") == [
        ("products", "BASE TABLE")
    ]
    keys = rows(products, "SHOW INDEX FROM products WHERE Key_name = 'PRIMARY'")
    assert [(k[2], k[4]) for k in keys] == [("PRIMARY", "id")]
    assert rows(products, "SHOW COLUMNS FROM products WHERE `Key` = 'UNI'")[0][0] == "sku"


def test_on_duplicate_key_update_with_a_row_alias(products: Session) -> None:
    """MySQL 8's form, which SQLAlchemy's on_duplicate_key_update() emits."""
    ok(
        products,
        "INSERT INTO products (sku, qty) VALUES ('A1', 5) AS new "
        "ON DUPLICATE KEY UPDATE qty = products.qty + new.qty",
    )
    assert one(products, "SELECT qty FROM products WHERE sku = 'A1'") == 15


def test_drop_index_and_rename_table(products: Session) -> None:
    ok(products, "DROP INDEX k_price ON products")
    assert "k_price" not in rows(products, "SHOW CREATE TABLE products")[0][1]
    assert errno(products, "DROP INDEX k_price ON products") == 1091
    products.execute("CREATE TABLE other (a INT)")
    ok(products, "RENAME TABLE products TO goods, other TO misc")
    assert rows(products, "SHOW TABLES") == [("goods",), ("misc",)]
    assert one(products, "SELECT COUNT(*) FROM goods") == 3
    assert errno(products, "RENAME TABLE goods TO misc") == 1050
    assert errno(products, "RENAME TABLE nothing TO x") == 1146


def test_foreign_keys_are_kept_and_shown(session: Session) -> None:
    session.execute("CREATE TABLE par (id INT PRIMARY KEY)")
    session.execute(
        "CREATE TABLE kid (id INT PRIMARY KEY, p INT, q INT, "
        "FOREIGN KEY (p) REFERENCES par (id) ON DELETE CASCADE, "
        "CONSTRAINT fk_q FOREIGN KEY (q) REFERENCES par (id))"
    )
    create = rows(session, "SHOW CREATE TABLE kid")[0][1]
    assert (
        "  CONSTRAINT `kid_ibfk_1` FOREIGN KEY (`p`) REFERENCES `par` (`id`) ON DELETE CASCADE"
        in create
    )
    assert "  CONSTRAINT `fk_q` FOREIGN KEY (`q`) REFERENCES `par` (`id`)" in create
    ok(session, "ALTER TABLE kid DROP FOREIGN KEY fk_q")
    ok(session, "ALTER TABLE kid ADD CONSTRAINT fk_q2 FOREIGN KEY (q) REFERENCES par (id)")
    create = rows(session, "SHOW CREATE TABLE kid")[0][1]
    assert "`fk_q`" not in create and "`fk_q2`" in create


def test_count_column_is_not_null(session: Session) -> None:
    session.execute("CREATE TABLE t (a INT)")
    for sql in ("SELECT COUNT(*) FROM t", "SELECT COUNT(a) AS n FROM t"):
        (result,) = session.execute(sql)
        assert isinstance(result, ResultSet) and result.rows == [(0,)]
        (column,) = result.columns
        assert column.type_code == FieldType.LONGLONG
        assert column.flags & ColumnFlag.NOT_NULL


def test_empty_query_is_error_1065_with_sqlstate_42000(session: Session) -> None:
    with pytest.raises(SqlError) as e:
        session.execute("  ")
    assert (e.value.errno, e.value.sqlstate) == (1065, "42000")


def test_sleep_pauses_and_returns_zero(session: Session) -> None:
    import time

    assert one(session, "SELECT SLEEP(0)") == 0
    assert one(session, "SELECT SLEEP(NULL)") == 0
    started = time.monotonic()
    assert one(session, "SELECT SLEEP(0.05)") == 0
    assert time.monotonic() - started >= 0.05  # a lower bound: sleep never returns early
