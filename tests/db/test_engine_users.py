"""Users, password hashes and privilege checks in the engine."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylamp.db.accounts import native_password_hash
from pylamp.db.engine import Engine, Session
from pylamp.db.results import SqlError


def _hash(password: str) -> str:
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path)
    root = eng.open_session("root", "127.0.0.1")
    root.execute("CREATE DATABASE shop; CREATE DATABASE other")
    root.execute("CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)")
    root.execute("CREATE TABLE other.t (id INT PRIMARY KEY)")
    root.close()
    yield eng
    eng.close()


@pytest.fixture
def root(engine: Engine) -> Iterator[Session]:
    s = engine.open_session("root", "127.0.0.1")
    yield s
    s.close()


def denied(session: Session, sql: str) -> SqlError:
    with pytest.raises(SqlError) as err:
        session.execute(sql)
    return err.value


def test_native_password_hash() -> None:
    assert native_password_hash("secret") == _hash("secret")
    assert native_password_hash("") == ""


def test_root_without_password_only_from_loopback(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "a")
    assert engine.password_hash("root", "127.0.0.1") == ""
    assert engine.password_hash("root", "::1") == ""
    assert engine.password_hash("root", "10.1.2.3") is None
    engine.close()


def test_root_password_from_config(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "b", root_password="s3cret")
    assert engine.password_hash("root", "127.0.0.1") == _hash("s3cret")
    assert engine.password_hash("root", "10.1.2.3") == _hash("s3cret")
    engine.close()
    # restarting without a password goes back to loopback-only, no stale password
    engine = Engine(tmp_path / "b")
    assert engine.password_hash("root", "127.0.0.1") == ""
    assert engine.password_hash("root", "10.1.2.3") is None
    engine.close()


def test_create_user_stores_only_the_hash(engine: Engine, root: Session) -> None:
    root.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'pa55word'")
    assert engine.password_hash("app", "10.0.0.9") == _hash("pa55word")
    assert engine.password_hash("nobody", "10.0.0.9") is None
    assert b"pa55word" not in (engine.data_dir / "mysql.sqlite").read_bytes()
    assert denied(root, "CREATE USER 'app'@'%' IDENTIFIED BY 'x'").errno == 1396
    root.execute("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'x'")
    assert engine.password_hash("app", "10.0.0.9") == _hash("pa55word")
    root.execute("ALTER USER 'app'@'%' IDENTIFIED BY 'new'")
    assert engine.password_hash("app", "10.0.0.9") == _hash("new")
    root.execute("DROP USER 'app'@'%'")
    assert engine.password_hash("app", "10.0.0.9") is None
    assert denied(root, "DROP USER 'app'@'%'").errno == 1396
    root.execute("DROP USER IF EXISTS 'app'@'%'")


def test_host_patterns(engine: Engine, root: Session) -> None:
    root.execute("CREATE USER 'web'@'127.0.2.%' IDENTIFIED BY 'w'")
    root.execute("CREATE USER 'local'@'localhost'")
    assert engine.password_hash("web", "127.0.2.3") == _hash("w")
    assert engine.password_hash("web", "127.0.3.1") is None
    assert engine.password_hash("local", "127.0.0.1") == ""
    assert engine.password_hash("local", "192.168.0.1") is None


def test_table_privileges(engine: Engine, root: Session) -> None:
    root.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'pw'")
    app = engine.open_session("app", "10.0.0.9")
    with pytest.raises(SqlError) as err:
        app.use("shop")
    assert err.value.errno == 1044
    err2 = denied(app, "SELECT * FROM shop.t")
    assert err2.errno == 1142
    assert err2.message == "SELECT command denied to user 'app'@'10.0.0.9' for table 't'"
    root.execute("GRANT SELECT ON shop.* TO 'app'@'%'")
    app.use("shop")
    assert app.execute("SELECT COUNT(*) FROM t")[0].rows == [(0,)]  # type: ignore[union-attr]
    assert denied(app, "INSERT INTO t VALUES (1, 1)").errno == 1142
    assert denied(app, "SELECT * FROM other.t").errno == 1142
    assert app.execute("SHOW DATABASES")[0].rows == [  # type: ignore[union-attr]
        ("information_schema",),
        ("shop",),
    ]
    root.execute("GRANT INSERT, UPDATE ON shop.* TO 'app'@'%'")
    app.execute("INSERT INTO t VALUES (1, 1)")
    app.execute("UPDATE t SET v = 2")
    assert denied(app, "DELETE FROM t").errno == 1142
    # INSERT ... SELECT needs SELECT on the source too
    root.execute("REVOKE SELECT ON shop.* FROM 'app'@'%'")
    assert denied(app, "INSERT INTO t SELECT id + 10, v FROM t").errno == 1142
    root.execute("GRANT ALL PRIVILEGES ON shop.* TO 'app'@'%'")
    app.execute("DELETE FROM t")
    app.execute("CREATE TABLE t2 (a INT)")
    app.execute("DROP TABLE t2")
    assert denied(app, "CREATE DATABASE mine").errno == 1044
    assert denied(app, "CREATE USER 'x'@'%'").errno == 1227
    assert denied(app, "SHOW MASTER STATUS").errno == 1227
    assert denied(app, "GRANT SELECT ON shop.* TO 'app'@'%'").errno == 1044
    rows = app.execute("SHOW GRANTS")[0].rows  # type: ignore[union-attr]
    assert ("GRANT ALL PRIVILEGES ON `shop`.* TO 'app'@'%'",) in rows
    app.close()


def test_replication_slave_privilege(engine: Engine, root: Session) -> None:
    root.execute("CREATE USER 'copy'@'%' IDENTIFIED BY 'c'")
    copy = engine.open_session("copy", "127.0.3.2")
    assert denied(copy, "SHOW BINLOG EVENTS").errno == 1227
    root.execute("GRANT REPLICATION SLAVE ON *.* TO 'copy'@'%'")
    # allowed now (this engine has no binlog, so the statement itself reports that)
    assert denied(copy, "SHOW BINLOG EVENTS").errno == 1381
    assert denied(root, "GRANT REPLICATION SLAVE ON shop.* TO 'copy'@'%'").errno == 1221
    root.execute("REVOKE REPLICATION SLAVE ON *.* FROM 'copy'@'%'")
    assert denied(copy, "SHOW BINLOG EVENTS").errno == 1227
    copy.close()


def test_grant_to_unknown_user(root: Session) -> None:
    assert denied(root, "GRANT SELECT ON *.* TO 'ghost'@'%'").errno == 1133


def test_table_level_grant_is_refused_not_widened(engine: Engine, root: Session) -> None:
    root.execute("CREATE USER 'app'@'%'")
    assert denied(root, "GRANT SELECT ON shop.t TO 'app'@'%'").errno == 1235
    app = engine.open_session("app", "10.0.0.1")
    assert denied(app, "SELECT * FROM shop.t").errno == 1142
    app.close()


def test_open_session_for_unknown_account(engine: Engine) -> None:
    with pytest.raises(SqlError) as err:
        engine.open_session("ghost", "10.0.0.1")
    assert err.value.errno == 1045
