"""`aioshop migrate`: ordered, transactional, recorded, and safe to run concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage.database import connect
from storage.migrate import available, migrate
from tests.conftest import ADMIN_DSN, dsn_for
from tests.support.catalog import insert_product


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


async def test_stock_and_prices_can_never_go_below_zero(fresh_db: str) -> None:
    await insert_product(fresh_db, "mug", stock=2)
    conn = await connect(fresh_db)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE variants SET stock_on_hand = stock_on_hand - 3")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE variants SET price_amount = -1")
        assert await conn.fetchval("SELECT stock_on_hand FROM variants") == 2
    finally:
        await conn.close()


async def test_product_price_range_and_stock_follow_the_variants(fresh_db: str) -> None:
    product_id = await insert_product(fresh_db, "mug", price=500, stock=0)
    conn = await connect(fresh_db)
    try:
        await conn.execute(
            "INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand)"
            " VALUES ($1, 'MUG_BIG', 900, 'EUR', 4)",
            product_id,
        )
        row = await conn.fetchrow("SELECT price_min, price_max, in_stock FROM products")
        assert tuple(row) == (500, 900, True)
        await conn.execute("UPDATE variants SET stock_on_hand = 0 WHERE sku = 'MUG_BIG'")
        assert await conn.fetchval("SELECT in_stock FROM products") is False
        await conn.execute("DELETE FROM variants WHERE sku = 'MUG'")
        row = await conn.fetchrow("SELECT price_min, price_max FROM products")
        assert tuple(row) == (900, 900)
    finally:
        await conn.close()
