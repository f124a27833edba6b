"""Guest order tokens: the credential of an order placed by a guest through the API (migration
0019). The caller makes the token and its digest (web.checkout); the order keeps the digest only,
and a token is checked by comparing digests in constant time."""

from __future__ import annotations

import hmac

import asyncpg

from storage.database import Executor
from storage.errors import OrderNotFound
from storage.orders import ORDER_COLUMNS, Order, order_of

SET_GUEST_TOKEN = """
    UPDATE orders SET guest_token_hash = $2 WHERE id = $1 AND user_id IS NULL
"""
GUEST_ORDER = f"""
    SELECT {ORDER_COLUMNS}, o.guest_token_hash FROM orders o
    WHERE o.number = $1 AND o.user_id IS NULL AND o.guest_token_hash IS NOT NULL
"""


async def keep(conn: asyncpg.Connection, order_id: int, token_hash: bytes) -> None:
    """Make `token_hash` the digest of the guest order's token, in the caller's transaction (it
    replaces an earlier one; a customer's order is left alone)."""
    await conn.execute(SET_GUEST_TOKEN, order_id, token_hash)


async def find(executor: Executor, number: str, token_hash: bytes) -> Order:
    """The guest order with this number whose token has the digest `token_hash`; raises
    OrderNotFound when there is no such order or the token is not its own (the same either way)."""
    row = await executor.fetchrow(GUEST_ORDER, number.upper())
    if row is None or not hmac.compare_digest(bytes(row["guest_token_hash"]), token_hash):
        raise OrderNotFound(number)
    return order_of(row)
