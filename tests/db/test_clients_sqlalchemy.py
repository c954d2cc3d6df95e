"""SQLAlchemy 2 with the mysql+pymysql dialect against SqlServer: DDL, ORM, reflection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pylamp.db.server import SqlServer

PASSWORD = "alchemy"


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(100))
    balance: Mapped[int] = mapped_column(default=0)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SqlServer]:
    async with SqlServer(tmp_path / "db1", root_password=PASSWORD) as db:
        yield db


def _engine(db: SqlServer, database: str = "") -> sa.Engine:
    url = f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:{db.port}/{database}"
    return sa.create_engine(url, pool_size=2)


async def test_create_all_orm_crud_and_reflection(server: SqlServer) -> None:
    def work() -> None:
        admin = _engine(server)
        with admin.begin() as conn:
            conn.execute(sa.text("CREATE DATABASE crm"))
        admin.dispose()

        engine = _engine(server, "crm")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(
                [Customer(name="ann", email="ann@foo.com"), Customer(name="bob", balance=5)]
            )
            session.commit()
            ann = session.scalars(sa.select(Customer).where(Customer.name == "ann")).one()
            assert ann.id == 1 and ann.balance == 0 and ann.email == "ann@foo.com"
            ann.balance = 42
            session.commit()
            bob = session.scalars(sa.select(Customer).filter_by(name="bob")).one()
            session.delete(bob)
            session.commit()
            rows = session.execute(sa.select(Customer.name, Customer.balance)).all()
            assert [tuple(r) for r in rows] == [("ann", 42)]

        with Session(engine) as session:
            session.add(Customer(name="ann"))
            with pytest.raises(sa.exc.IntegrityError) as info:
                session.commit()
            assert info.value.orig.args[0] == 1062  # type: ignore[union-attr]

        reflected = sa.Table("customer", sa.MetaData(), autoload_with=engine)
        assert [c.name for c in reflected.columns] == ["id", "name", "email", "balance"]
        assert [c.name for c in reflected.primary_key] == ["id"]
        assert isinstance(reflected.c.name.type, sa.String) and reflected.c.name.type.length == 50
        inspector = sa.inspect(engine)
        assert inspector.get_table_names() == ["customer"]
        uniques = [i["column_names"] for i in inspector.get_indexes("customer") if i["unique"]]
        assert uniques == [["name"]]
        Base.metadata.drop_all(engine)
        assert sa.inspect(engine).get_table_names() == []
        engine.dispose()

    await asyncio.to_thread(work)
