"""Carts in PostgreSQL: a user's cart, or a guest's, found by the digest of its cookie token.

Quantities are checked against stock when they change (a clear message early), and again, under
locks, when the order is placed (storage.orders): the cart reserves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from domain.checkout import MAX_QUANTITY
from storage.database import Executor
from storage.errors import CartItemNotFound, NotEnoughStock, VariantNotFound

FIND_USER_CART = "SELECT id FROM carts WHERE user_id = $1"
FIND_GUEST_CART = "SELECT id FROM carts WHERE token_hash = $1"
CREATE_USER_CART = """
    INSERT INTO carts (user_id) VALUES ($1)
    ON CONFLICT (user_id) DO UPDATE SET updated_at = now()
    RETURNING id
"""
CREATE_GUEST_CART = "INSERT INTO carts (token_hash) VALUES ($1) RETURNING id"
LOCK_CART = "SELECT id FROM carts WHERE id = $1 FOR UPDATE"
TOUCH_CART = "UPDATE carts SET updated_at = now() WHERE id = $1"
DELETE_CART = "DELETE FROM carts WHERE id = $1"
# Lines with what the cart page and the totals need, current prices and stock included.
LINES = """
    SELECT i.variant_id, v.sku, v.name AS variant_name, v.attributes, p.id AS product_id,
           p.slug AS product_slug, p.name AS product_name, v.price_amount, v.currency,
           v.stock_on_hand, i.quantity, p.is_published
    FROM cart_items i
    JOIN variants v ON v.id = i.variant_id
    JOIN products p ON p.id = v.product_id
    WHERE i.cart_id = $1
    ORDER BY i.added_at, i.variant_id
"""
VARIANT_ON_SALE = """
    SELECT v.id, v.sku, v.stock_on_hand FROM variants v JOIN products p ON p.id = v.product_id
    WHERE {column} = $1 AND p.is_published
"""
COUNT_USER_UNITS = """
    SELECT coalesce(sum(i.quantity), 0) FROM carts c JOIN cart_items i ON i.cart_id = c.id
    WHERE c.user_id = $1
"""
# The same, with the primary's WAL position as it counted (web.carts.UnitCounts keeps the count
# for a moment, and a client whose own last write is later asks again).
COUNT_USER_UNITS_AT = """
    SELECT coalesce(sum(i.quantity), 0), pg_current_wal_lsn() - '0/0'::pg_lsn
    FROM carts c JOIN cart_items i ON i.cart_id = c.id
    WHERE c.user_id = $1
"""
COUNT_GUEST_UNITS = """
    SELECT coalesce(sum(i.quantity), 0) FROM carts c JOIN cart_items i ON i.cart_id = c.id
    WHERE c.token_hash = $1
"""
CURRENT_QUANTITY = "SELECT quantity FROM cart_items WHERE cart_id = $1 AND variant_id = $2"
UPSERT_ITEM = """
    INSERT INTO cart_items (cart_id, variant_id, quantity) VALUES ($1, $2, $3)
    ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = EXCLUDED.quantity
"""
DELETE_ITEM = "DELETE FROM cart_items WHERE cart_id = $1 AND variant_id = $2 RETURNING variant_id"
CLEAR = "DELETE FROM cart_items WHERE cart_id = $1"
# Merging a guest cart into a user's: quantities added, capped at the stock (and MAX_QUANTITY);
# lines of sold-out variants stay out.
MERGE = f"""
    INSERT INTO cart_items (cart_id, variant_id, quantity)
    SELECT $2, g.variant_id, least(g.quantity + coalesce(u.quantity, 0), v.stock_on_hand,
                                   {MAX_QUANTITY})
    FROM cart_items g
    JOIN variants v ON v.id = g.variant_id
    LEFT JOIN cart_items u ON u.cart_id = $2 AND u.variant_id = g.variant_id
    WHERE g.cart_id = $1 AND v.stock_on_hand > 0
    ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = EXCLUDED.quantity
"""


@dataclass(frozen=True)
class CartLine:
    variant_id: int
    sku: str
    variant_name: str
    attributes: dict[str, Any]
    product_id: int
    product_slug: str
    product_name: str
    price_amount: int
    currency: str
    stock_on_hand: int
    quantity: int
    is_published: bool

    @property
    def available(self) -> bool:
        """Whether the line can be ordered as it is now."""
        return self.is_published and self.quantity <= self.stock_on_hand


def _line(row: Any) -> CartLine:
    return CartLine(**dict(row))


async def find(
    executor: Executor, *, user_id: int | None = None, token_hash: bytes | None = None
) -> int | None:
    """The id of the user's cart, else of the guest cart with this token digest, else None."""
    if user_id is not None:
        found: int | None = await executor.fetchval(FIND_USER_CART, user_id)
        return found
    if token_hash is not None:
        found = await executor.fetchval(FIND_GUEST_CART, token_hash)
        return found
    return None


async def count_units(
    executor: Executor, *, user_id: int | None = None, token_hash: bytes | None = None
) -> int:
    """How many units the user's cart, else the guest cart with this token digest, holds."""
    if user_id is not None:
        return int(await executor.fetchval(COUNT_USER_UNITS, user_id))
    if token_hash is not None:
        return int(await executor.fetchval(COUNT_GUEST_UNITS, token_hash))
    return 0


async def count_user_units_at(executor: Executor, user_id: int) -> tuple[int, int]:
    """The units in the user's cart and the WAL position they were counted at (the primary:
    pg_current_wal_lsn() fails on a replica)."""
    row = await executor.fetchrow(COUNT_USER_UNITS_AT, user_id)
    assert row is not None  # an aggregate always answers one row
    return int(row[0]), int(row[1])


async def create_for_user(conn: asyncpg.Connection, user_id: int) -> int:
    """The user's cart, created if they have none (one per user)."""
    cart_id: int = await conn.fetchval(CREATE_USER_CART, user_id)
    return cart_id


async def create_for_guest(conn: asyncpg.Connection, token_hash: bytes) -> int:
    cart_id: int = await conn.fetchval(CREATE_GUEST_CART, token_hash)
    return cart_id


async def lines(executor: Executor, cart_id: int) -> list[CartLine]:
    return [_line(row) for row in await executor.fetch(LINES, cart_id)]


async def variant_on_sale(executor: Executor, *, variant_id: int | None, sku: str | None) -> Any:
    """(id, sku, stock_on_hand) of a variant of a published product; raises VariantNotFound."""
    column, value = ("v.id", variant_id) if variant_id is not None else ("v.sku", sku)
    row = await executor.fetchrow(VARIANT_ON_SALE.format(column=column), value)
    if row is None:
        raise VariantNotFound(value if value is not None else "")
    return row


async def add(
    conn: asyncpg.Connection,
    cart_id: int,
    *,
    quantity: int,
    variant_id: int | None = None,
    sku: str | None = None,
) -> int:
    """Add `quantity` units (to what the cart has already); returns the variant id.

    Raises VariantNotFound, and NotEnoughStock when the line would ask for more than the stock.
    """
    async with conn.transaction():
        await conn.execute(LOCK_CART, cart_id)  # two tabs adding at once add up
        variant = await variant_on_sale(conn, variant_id=variant_id, sku=sku)
        current = await conn.fetchval(CURRENT_QUANTITY, cart_id, variant["id"]) or 0
        await _store(conn, cart_id, variant, current + quantity)
    return int(variant["id"])


async def set_quantity(
    conn: asyncpg.Connection, cart_id: int, variant_id: int, quantity: int
) -> None:
    """Set a line's quantity; 0 removes it. Raises CartItemNotFound, NotEnoughStock."""
    async with conn.transaction():
        await conn.execute(LOCK_CART, cart_id)
        if await conn.fetchval(CURRENT_QUANTITY, cart_id, variant_id) is None:
            raise CartItemNotFound(variant_id)
        if quantity == 0:
            await remove(conn, cart_id, variant_id)
            return
        try:
            variant = await variant_on_sale(conn, variant_id=variant_id, sku=None)
        except VariantNotFound:
            raise CartItemNotFound(variant_id) from None
        await _store(conn, cart_id, variant, quantity)


async def _store(conn: asyncpg.Connection, cart_id: int, variant: Any, quantity: int) -> None:
    if quantity > min(variant["stock_on_hand"], MAX_QUANTITY):
        raise NotEnoughStock(variant["sku"], variant["stock_on_hand"], quantity)
    await conn.execute(UPSERT_ITEM, cart_id, variant["id"], quantity)
    await conn.execute(TOUCH_CART, cart_id)


async def remove(conn: asyncpg.Connection, cart_id: int, variant_id: int) -> None:
    """Remove a line; raises CartItemNotFound."""
    async with conn.transaction():
        # The cart row first, as every cart write and checkout take it: a line's row locked
        # before the cart's would deadlock with a change of the same line in another tab.
        await conn.execute(LOCK_CART, cart_id)
        if await conn.fetchval(DELETE_ITEM, cart_id, variant_id) is None:
            raise CartItemNotFound(variant_id)
        await conn.execute(TOUCH_CART, cart_id)


async def clear(conn: asyncpg.Connection, cart_id: int) -> None:
    await conn.execute(CLEAR, cart_id)


async def merge_guest_cart(conn: asyncpg.Connection, token_hash: bytes, user_id: int) -> int:
    """Move the guest cart's lines into the user's cart (created if needed) and delete the guest
    cart; quantities are added, capped at the stock. Returns the user's cart id."""
    async with conn.transaction():
        user_cart = await create_for_user(conn, user_id)
        guest_cart = await find(conn, token_hash=token_hash)
        if guest_cart is not None:
            await conn.execute(LOCK_CART, guest_cart)
            await conn.execute(MERGE, guest_cart, user_cart)
            await conn.execute(DELETE_CART, guest_cart)
    return user_cart
