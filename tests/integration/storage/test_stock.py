"""Low-stock notices: staff hear of a variant once when it runs low, again only after a restock."""

from __future__ import annotations

import asyncio

import asyncpg

from storage import stock
from storage.database import connect
from tests.support.orders import stocked_product

THRESHOLD = 5


async def told(conn: asyncpg.Connection, variant_ids: list[int]) -> list[tuple[str, int]]:
    async with conn.transaction():
        levels = await stock.low_stock_to_tell(conn, variant_ids, THRESHOLD)
    return [(level.sku, level.stock_on_hand) for level in levels]


async def set_stock(conn: asyncpg.Connection, variant_id: int, units: int) -> None:
    await conn.execute("UPDATE variants SET stock_on_hand = $2 WHERE id = $1", variant_id, units)


async def test_a_variant_is_told_once_when_low_and_again_after_a_restock(conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE-S": 10, "TEE-M": 9})
    small, medium = tee["TEE-S"], tee["TEE-M"]
    both = [small, medium]
    assert await told(conn, both) == []  # nothing low
    await set_stock(conn, small, 5)
    assert await told(conn, both) == [("TEE-S", 5)]  # ran low: told
    await set_stock(conn, small, 3)
    await set_stock(conn, medium, 0)
    assert await told(conn, both) == [("TEE-M", 0)]  # TEE-S lower still: not again
    assert await told(conn, both) == []  # a check seeing the same again
    await set_stock(conn, small, 20)  # restocked...
    assert await told(conn, both) == []
    await set_stock(conn, small, 4)  # ...and sold down again: told again
    assert await told(conn, both) == [("TEE-S", 4)]
    await set_stock(conn, small, 2)
    assert await told(conn, both) == []
    await set_stock(conn, medium, 1)  # one unit back, still low: staff hear it is still low
    assert await told(conn, both) == [("TEE-M", 1)]


async def test_of_two_checks_at_once_one_tells(conn, fresh_db) -> None:
    mug = (await stocked_product(fresh_db, "mug", {"MUG": 2}))["MUG"]
    other = await connect(fresh_db)
    try:
        first = conn.transaction()
        await first.start()
        assert [level.sku for level in await stock.low_stock_to_tell(conn, [mug], THRESHOLD)] == [
            "MUG"
        ]
        second = asyncio.create_task(told(other, [mug]))
        await asyncio.sleep(0.3)
        assert not second.done()  # waits for the first check's row
        await set_stock(conn, mug, 1)  # a sale meanwhile, seen by the second check
        await first.commit()
        assert await asyncio.wait_for(second, 10) == []  # lower, not restocked: not again
    finally:
        await other.close()
    assert (
        await conn.fetchval(
            "SELECT stock_on_hand FROM low_stock_notices WHERE variant_id = $1", mug
        )
        == 1
    )
