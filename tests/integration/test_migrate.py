"""`aioshop migrate`: ordered, transactional, recorded, and safe to run concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage.database import connect
from storage.migrate import available, migrate
from tests.conftest import ADMIN_DSN, dsn_for


@pytest.fixture
async def empty_db(template) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    name = "aioshop_empty_" + template.name.rsplit("_", 1)[-1]
    conn = await connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield dsn_for(ADMIN_DSN, name)
    await template.drop(name)


async def test_concurrent_migrators_apply_each_file_once(empty_db: str) -> None:
    results = await asyncio.gather(*(migrate(empty_db) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in available())
    conn = await connect(empty_db)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert sorted(versions) == [m.version for m in available()]


async def test_second_run_applies_nothing(empty_db: str) -> None:
    assert await migrate(empty_db)
    assert await migrate(empty_db) == []


async def test_stock_like_constraints_hold(fresh_db: str) -> None:
    import asyncpg

    conn = await connect(fresh_db)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO products (slug, name, price_amount, price_currency)"
                " VALUES ('x', 'X', -1, 'EUR')"
            )
    finally:
        await conn.close()
