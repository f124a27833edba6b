"""Stock levels of variants, as staff watch them (taking and returning stock is storage.orders)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.database import Executor

LOW_STOCK = """
    SELECT v.id AS variant_id, v.product_id, v.sku, p.name AS product_name,
           v.name AS variant_name, v.stock_on_hand
    FROM variants v JOIN products p ON p.id = v.product_id
    WHERE v.id = ANY ($1::bigint[]) AND v.stock_on_hand <= $2
    ORDER BY v.stock_on_hand, v.sku
"""

# The low variants that have no notice yet: the INSERT that creates the row decides, so of two
# checks at once exactly one sees a variant as new (the other waits for it, then finds the row).
NOTICE_NEW = """
    INSERT INTO low_stock_notices (variant_id, stock_on_hand)
    SELECT * FROM unnest($1::bigint[], $2::int[]) ORDER BY 1
    ON CONFLICT (variant_id) DO NOTHING
    RETURNING variant_id
"""
# The others: the level the last check saw, locked (a concurrent check waits, then reads ours)...
LOCK_NOTICES = """
    SELECT variant_id, stock_on_hand FROM low_stock_notices
    WHERE variant_id = ANY ($1::bigint[]) ORDER BY variant_id FOR UPDATE
"""
# ... then the level this one saw.
SAVE_NOTICES = """
    UPDATE low_stock_notices n SET stock_on_hand = seen.stock_on_hand, checked_at = now()
    FROM unnest($1::bigint[], $2::int[]) AS seen (variant_id, stock_on_hand)
    WHERE n.variant_id = seen.variant_id
"""


@dataclass(frozen=True)
class StockLevel:
    variant_id: int
    product_id: int
    sku: str
    product_name: str
    variant_name: str
    stock_on_hand: int


async def low_stock(
    executor: Executor, variant_ids: Sequence[int], threshold: int
) -> list[StockLevel]:
    """The variants among `variant_ids` with `threshold` units or fewer, emptiest first.

    Variants deleted since are left out. Pass the primary to act on the stock just taken."""
    rows = await executor.fetch(LOW_STOCK, list(variant_ids), threshold)
    return [StockLevel(**dict(row)) for row in rows]


async def low_stock_to_tell(
    conn: asyncpg.Connection, variant_ids: Sequence[int], threshold: int
) -> list[StockLevel]:
    """The variants among `variant_ids` that are low (`low_stock`) and that staff have not been
    told of at this level: told once when a variant runs low, and again only after it was
    restocked and ran low once more. Records what it saw; call it in the transaction that tells.
    """
    low = await low_stock(conn, variant_ids, threshold)
    if not low:
        return []
    ids = [level.variant_id for level in low]
    stocks = [level.stock_on_hand for level in low]
    new = {row["variant_id"] for row in await conn.fetch(NOTICE_NEW, ids, stocks)}
    told = [level for level in low if level.variant_id in new]
    known = [i for i in ids if i not in new]
    if known:
        locked = await conn.fetch(LOCK_NOTICES, known)
        before = {row["variant_id"]: row["stock_on_hand"] for row in locked}
        # Read again under the lock: a check that waited for another must not compare the other's
        # newer level with an older one of its own (two sales' checks may run in either order).
        now = await low_stock(conn, known, threshold)
        told += [n for n in now if before.get(n.variant_id, n.stock_on_hand) < n.stock_on_hand]
        await conn.execute(
            SAVE_NOTICES, [lv.variant_id for lv in now], [lv.stock_on_hand for lv in now]
        )
    return sorted(told, key=lambda level: (level.stock_on_hand, level.sku))
