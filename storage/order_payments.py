"""An order's payment: reading it, recording a capture's outcome or a refund, and finding the
orders left unpaid (a declined card no other card paid, a capture that failed) for the expiry,
or waiting for another card (a list's status). Paying again with another card is
storage/payments.py's; the order itself is storage/orders.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from domain.payments import PaymentMethod
from storage.database import Executor

PAYMENT = """
    SELECT gateway, token, card_brand, card_last4, amount, currency, status, decline_code,
           reference, refund_reference, attempt, refunded_amount
    FROM payments WHERE order_id = $1
"""
SET_PAYMENT = """
    UPDATE payments SET status = $2, reference = coalesce($3, reference),
                        decline_code = coalesce($4, decline_code), updated_at = now()
    WHERE order_id = $1
"""
SET_REFUNDED = """
    UPDATE payments SET status = 'refunded', refund_reference = $2, updated_at = now()
    WHERE order_id = $1 AND status = 'captured'
"""
# Unpaid: pending, placed before the limit, and its capture declined (the customer did not
# pay with another card in time) or tried and failed. An order whose capture has not run yet
# (the worker is down or behind) is not unpaid, however old: the shop's own queue being late is
# no reason to cancel it. Keyset order, since some stay pending.
UNPAID = "(p.status = 'declined' OR (p.status = 'pending' AND p.failed_attempts > 0))"
UNPAID_BEFORE = f"""
    SELECT o.id, o.placed_at FROM orders o JOIN payments p ON p.order_id = o.id
    WHERE o.status = 'pending' AND o.placed_at < now() - $1::interval AND {UNPAID}
      AND ($2::timestamptz IS NULL OR (o.placed_at, o.id) > ($2, $3))
    ORDER BY o.placed_at, o.id
    LIMIT $4
"""
# The same conditions, under the order's lock; skipped while a capture holds it.
LOCK_UNPAID = f"""
    SELECT p.status FROM orders o JOIN payments p ON p.order_id = o.id
    WHERE o.id = $1 AND o.status = 'pending' AND o.placed_at < now() - $2::interval AND {UNPAID}
    FOR UPDATE OF o SKIP LOCKED
"""
# Of these orders, those waiting for another card: pending, their card declined.
AWAITING_CARD = """
    SELECT o.id FROM orders o JOIN payments p ON p.order_id = o.id
    WHERE o.id = ANY($1::bigint[]) AND o.status = 'pending' AND p.status = 'declined'
"""
COUNT_FAILED_CAPTURE = """
    UPDATE payments SET failed_attempts = failed_attempts + 1, last_error = $2, updated_at = now()
    WHERE order_id = $1 AND status = 'pending'
"""


@dataclass(frozen=True)
class Payment:
    gateway: str
    token: str
    card_brand: str
    card_last4: str
    amount: int
    currency: str
    status: str
    decline_code: str | None
    reference: str | None
    refund_reference: str | None = None
    attempt: int = 1  # 1: the checkout's card; each card given after a decline adds one
    refunded_amount: int = 0  # refunds asked for or given, out of `amount` (migration 0017)

    @property
    def method(self) -> PaymentMethod:
        return PaymentMethod(self.gateway, self.token, self.card_brand, self.card_last4)

    @property
    def awaiting_customer(self) -> bool:
        """Declined, on an order still pending: the customer may pay with another card."""
        return self.status == "declined"


async def payment_of(executor: Executor, order_id: int) -> Payment | None:
    """The order's payment (its current attempt), or None."""
    row = await executor.fetchrow(PAYMENT, order_id)
    return Payment(**dict(row)) if row is not None else None


async def set_payment(
    conn: asyncpg.Connection,
    order_id: int,
    status: str,
    *,
    reference: str | None = None,
    decline_code: str | None = None,
) -> None:
    """Record the payment's status (and the gateway's reference or decline code, when given)."""
    await conn.execute(SET_PAYMENT, order_id, status, reference, decline_code)


async def set_refunded(conn: asyncpg.Connection, order_id: int, refund_reference: str) -> None:
    """Mark a captured payment refunded (nothing else is: a repeat changes nothing)."""
    await conn.execute(SET_REFUNDED, order_id, refund_reference)


@dataclass(frozen=True)
class Unpaid:
    id: int
    placed_at: datetime


async def unpaid_orders(
    executor: Executor, older_than_seconds: float, after: Unpaid | None, limit: int
) -> list[Unpaid]:
    """Orders placed more than `older_than_seconds` ago, still pending, whose capture was tried
    and failed; in placing order, after `after`. Not locked: see `lock_unpaid`."""
    rows = await executor.fetch(
        UNPAID_BEFORE,
        timedelta(seconds=older_than_seconds),
        after.placed_at if after else None,
        after.id if after else None,
        limit,
    )
    return [Unpaid(row["id"], row["placed_at"]) for row in rows]


async def lock_unpaid(
    conn: asyncpg.Connection, order_id: int, older_than_seconds: float
) -> str | None:
    """Lock the order if it is still unpaid (see `unpaid_orders`) and return its payment's
    status ("declined", or "pending" for a capture that failed); None if it is not unpaid, or
    if a capture or a payment retry holds it right now."""
    status: str | None = await conn.fetchval(
        LOCK_UNPAID, order_id, timedelta(seconds=older_than_seconds)
    )
    return status


async def awaiting_card(executor: Executor, order_ids: list[int]) -> set[int]:
    """Which of `order_ids` wait for another card: pending, their card declined (a list's
    status, in one query for the page)."""
    return {row["id"] for row in await executor.fetch(AWAITING_CARD, order_ids)}


async def count_failed_capture(
    executor: asyncpg.Pool | asyncpg.Connection, order_id: int, error: str
) -> None:
    """Count a capture whose gateway call failed (not a decline) on a still pending payment."""
    await executor.execute(COUNT_FAILED_CAPTURE, order_id, error)
