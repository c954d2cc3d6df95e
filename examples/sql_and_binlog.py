"""A MySQL-protocol SQL server over SQLite, with its binary log, driven by a real client.

Needs PyMySQL, a test dependency of pylamp, not a runtime one: ``pip install pymysql``.
Starts SqlServer on a free port with a binlog in a temp dir, creates a table, inserts and
selects rows, and prints SHOW MASTER STATUS and SHOW BINLOG EVENTS: NOW() is logged as the
literal time it had, so a replica replaying the log gets the same row.

    .venv/bin/python examples/sql_and_binlog.py
"""

import asyncio
import tempfile

import pymysql

from pylamp.db import SqlServer


def client_session(port: int) -> None:
    """Everything a client does; PyMySQL blocks, so this runs in a thread, not in the loop."""
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", autocommit=True)
    with conn, conn.cursor() as cur:
        for sql in [
            "CREATE DATABASE shop",
            "USE shop",
            "CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, item TEXT, at DATETIME)",
            "INSERT INTO orders (item, at) VALUES ('lamp', NOW()), ('bulb', NOW())",
        ]:
            cur.execute(sql)
            print(f"mysql> {sql}\n  {cur.rowcount} row(s) affected")
        for sql in ["SELECT * FROM orders", "SHOW MASTER STATUS", "SHOW BINLOG EVENTS"]:
            cur.execute(sql)
            print(f"mysql> {sql}")
            print("  " + " | ".join(d[0] for d in cur.description))
            for row in cur.fetchall():
                print("  " + " | ".join(str(v) for v in row))


async def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        async with SqlServer(data_dir, "127.0.0.1", 0, log_bin="db1", server_id=1) as db:
            print(f"SQL server on {db.host}:{db.port}, data in {data_dir}")
            await asyncio.to_thread(client_session, db.port)
    print("server stopped")


if __name__ == "__main__":
    asyncio.run(main())
