"""Staff notes on an order: append-only, each with who wrote it and when (migration 0017)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.database import Executor

ADD_NOTE = """
    INSERT INTO order_notes (order_id, author_id, author_email, body)
    VALUES ($1, $2, coalesce((SELECT email::text FROM users WHERE id = $2), 'unknown'), $3)
    RETURNING id, order_id, author_id, author_email, body, created_at
"""
FOR_ORDER = """
    SELECT id, order_id, author_id, author_email, body, created_at FROM order_notes
    WHERE order_id = $1 ORDER BY id
"""


@dataclass(frozen=True)
class OrderNote:
    id: int
    order_id: int
    author_id: int | None
    author_email: str
    body: str
    created_at: datetime


async def add(
    conn: asyncpg.Connection, order_id: int, *, author_id: int | None, body: str
) -> OrderNote:
    """Append a note to the order (never changed afterwards: the table refuses it)."""
    return OrderNote(**dict(await conn.fetchrow(ADD_NOTE, order_id, author_id, body)))


async def for_order(executor: Executor, order_id: int) -> list[OrderNote]:
    """The order's notes, oldest first."""
    return [OrderNote(**dict(r)) for r in await executor.fetch(FOR_ORDER, order_id)]
