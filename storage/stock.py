"""Stock levels of variants, as staff watch them (taking and returning stock is storage.orders)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.database import Executor

LOW_STOCK = """
    SELECT v.id AS variant_id, v.product_id, v.sku, p.name AS product_name,
           v.name AS variant_name, v.stock_on_hand
    FROM variants v JOIN products p ON p.id = v.product_id
    WHERE v.id = ANY ($1::bigint[]) AND v.stock_on_hand <= $2
    ORDER BY v.stock_on_hand, v.sku
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
