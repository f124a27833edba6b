"""Customers as staff see them: accounts with the role 'customer', with their order counts."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from storage.database import Executor
from storage.errors import UserNotFound

# The lateral aggregate reads one customer's orders through the orders_user index.
CUSTOMER_COLUMNS = """
    u.id, u.email, u.name, u.is_active, u.email_verified_at, u.created_at,
    s.order_count, s.last_order_at
"""
ORDER_SUMMARY = """
    CROSS JOIN LATERAL (
        SELECT count(*) AS order_count, max(o.placed_at) AS last_order_at
        FROM orders o WHERE o.user_id = u.id
    ) s
"""
# strpos, not LIKE: a search for "a_b" or "100%" means those characters, not wildcards.
LIST_CUSTOMERS = f"""
    SELECT {CUSTOMER_COLUMNS} FROM users u {ORDER_SUMMARY}
    WHERE u.role = 'customer'
      AND ($1::text IS NULL OR strpos(lower(u.email::text), lower($1)) > 0)
      AND ($2::bigint IS NULL OR u.id < $2)
    ORDER BY u.id DESC
    LIMIT $3
"""
GET_CUSTOMER = f"""
    SELECT {CUSTOMER_COLUMNS} FROM users u {ORDER_SUMMARY}
    WHERE u.id = $1 AND u.role = 'customer'
"""


@dataclass(frozen=True)
class Customer:
    id: int
    email: str
    name: str
    is_active: bool
    email_verified_at: datetime | None
    created_at: datetime
    order_count: int
    last_order_at: datetime | None


def _customer(row: Any) -> Customer:
    return Customer(**{f.name: row[f.name] for f in fields(Customer)})


async def list_customers(
    executor: Executor, *, email: str | None = None, limit: int = 50, before: int | None = None
) -> list[Customer]:
    """Customers newest first whose email contains `email` (any case), after the keyset
    `before` (a user id)."""
    rows = await executor.fetch(LIST_CUSTOMERS, email, before, limit)
    return [_customer(row) for row in rows]


async def get(executor: Executor, user_id: int) -> Customer:
    """One customer with their order count; raises UserNotFound (also for staff accounts)."""
    row = await executor.fetchrow(GET_CUSTOMER, user_id)
    if row is None:
        raise UserNotFound(user_id)
    return _customer(row)
