"""Refunds of part or all of an order's captured payment (migration 0017).

`request` writes the refund, its lines, the stock put back and the outbox event in the caller's
transaction, under the order's lock; the order actor's `make_refund` then gives the money back
through the payment provider and `mark_refunded` records it. A refund request carries the form's
key: the same key again (a double submit) finds the first refund and writes nothing. The sums
are the database's too: a trigger adds each refund to payments.refunded_amount, whose CHECK
refuses more than the capture, so no code path can over-refund.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain.events import INDEX_PRODUCT, MAKE_REFUND
from domain.orders import Status
from domain.refunds import REFUNDABLE_STATUSES, LineState, RefundRefused, refund_amount
from storage import order_payments, orders, outbox
from storage.database import Executor
from storage.errors import NotFound

REFUND_COLUMNS = """
    id, order_id, request_key, amount, currency, restock, reason, actor, actor_id, actor_email,
    status, reference, created_at, refunded_at
"""
BY_KEY = f"SELECT {REFUND_COLUMNS} FROM refunds WHERE request_key = $1"
GET_REFUND = f"SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1"
LOCK_REFUND = f"SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1 FOR UPDATE"
FOR_ORDER = f"SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY id"
LINES_OF_ORDER = """
    SELECT rl.refund_id, rl.line, rl.quantity FROM refund_lines rl
    WHERE rl.order_id = $1 ORDER BY rl.refund_id, rl.line
"""
INSERT_REFUND = f"""
    INSERT INTO refunds (order_id, request_key, amount, currency, restock, reason, actor,
                         actor_id, actor_email)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT email::text FROM users WHERE id = $8))
    ON CONFLICT (request_key) DO NOTHING
    RETURNING {REFUND_COLUMNS}
"""
INSERT_LINES = """
    INSERT INTO refund_lines (refund_id, order_id, line, quantity)
    SELECT $1, $2, l, q FROM unnest($3::integer[], $4::integer[]) AS t(l, q)
"""
LOCK_VARIANTS = """
    SELECT v.id FROM variants v
    WHERE v.id IN (SELECT variant_id FROM order_lines WHERE order_id = $1 AND line = ANY($2))
    ORDER BY v.id FOR UPDATE
"""
RESTOCK = """
    UPDATE variants v SET stock_on_hand = v.stock_on_hand + t.q
    FROM (SELECT l.variant_id, sum(c.q)::integer AS q
          FROM unnest($2::integer[], $3::integer[]) AS c(line, q)
          JOIN order_lines l ON l.order_id = $1 AND l.line = c.line
          WHERE l.variant_id IS NOT NULL GROUP BY l.variant_id) t
    WHERE v.id = t.variant_id
    RETURNING v.product_id, v.stock_on_hand = t.q AS back_in_stock
"""
MARK_REFUNDED = f"""
    UPDATE refunds SET status = 'refunded', reference = $2, refunded_at = now()
    WHERE id = $1 AND status = 'requested'
    RETURNING {REFUND_COLUMNS}
"""
# The payment is refunded once every refund is done and they add up to the capture.
SETTLE_PAYMENT = """
    UPDATE payments p SET status = 'refunded', refund_reference = coalesce(p.refund_reference, $2),
                          updated_at = now()
    WHERE p.order_id = $1 AND p.status = 'captured' AND p.refunded_amount = p.amount
      AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = $1 AND r.status = 'requested')
"""


class RefundNotFound(NotFound):
    """No refund with this id."""

    def __init__(self, refund_id: int) -> None:
        super().__init__(f"refund {refund_id} does not exist")


@dataclass(frozen=True)
class Refund:
    id: int
    order_id: int
    request_key: uuid.UUID
    amount: int
    currency: str
    restock: bool
    reason: str
    actor: str
    actor_id: int | None
    actor_email: str | None
    status: str
    reference: str | None
    created_at: datetime
    refunded_at: datetime | None
    lines: dict[int, int]  # {order line: units}; empty for a refund of an amount


@dataclass(frozen=True)
class Requested:
    refund: Refund
    created: bool  # False: the key was used before, and this is that refund


def _refund(row: asyncpg.Record, lines: Mapping[int, int] | None = None) -> Refund:
    return Refund(**dict(row), lines=dict(lines or {}))


def line_states(lines: list[orders.OrderLine]) -> list[LineState]:
    """The lines as refunds and shipments count them."""
    return [
        LineState(x.line, x.unit_amount, x.quantity, x.refunded_quantity, x.shipped_quantity)
        for x in lines
    ]


async def request(
    conn: asyncpg.Connection,
    order_id: int,
    *,
    request_key: uuid.UUID,
    lines: Mapping[int, int],
    amount: int | None,
    restock: bool,
    reason: str,
    actor: str,
    actor_id: int | None = None,
    request_id: str | None = None,
    locale: str,
) -> Requested:
    """Ask for a refund of `lines` ({line: units}, none zero) or of `amount` (minor units; when
    None, the lines' prices with their tax), in the caller's transaction, under the order's lock.

    Idempotent per `request_key`. Raises RefundRefused (nothing written: the caller rolls back)
    when the order is not paid or not refundable, a line asks for more than is left, or the
    amount exceeds what is left of the capture; OrderNotFound. With `restock`, the lines' units
    go back on the shelf. The order actor's `make_refund` gives the money back.
    """
    order = await orders.lock(conn, order_id)  # one refund request of an order at a time
    existing = await conn.fetchrow(BY_KEY, request_key)
    if existing is not None:
        if existing["order_id"] != order_id:
            raise RefundRefused("This form was already used for another order. Reload the page.")
        return Requested(await _with_lines(conn, existing), created=False)
    _check_status(order.status)
    payment = await order_payments.payment_of(conn, order_id)
    if payment is None or payment.status != "captured":
        raise RefundRefused("Only a captured payment can be refunded.")
    detail_lines = await orders.lines_of(conn, order_id)
    chosen = {line: quantity for line, quantity in lines.items() if quantity > 0}
    total = refund_amount(
        line_states(detail_lines),
        chosen,
        amount,
        remaining=payment.amount - payment.refunded_amount,
        tax_rate_bps=order.tax_rate_bps,
        currency=order.currency,
        locale=locale,
    )
    row = await conn.fetchrow(
        INSERT_REFUND,
        order_id,
        request_key,
        total,
        order.currency,
        restock and bool(chosen),
        reason,
        actor,
        actor_id,
    )
    if row is None:  # another order's form used this key meanwhile
        raise RefundRefused("This form was already used. Reload the page.")
    numbers, quantities = list(chosen), list(chosen.values())
    if chosen:
        await conn.execute(INSERT_LINES, row["id"], order_id, numbers, quantities)
    if restock and chosen:
        await conn.execute(LOCK_VARIANTS, order_id, numbers)  # in id order, as checkout does
        back = await conn.fetch(RESTOCK, order_id, numbers, quantities)
        for product_id in sorted({r["product_id"] for r in back if r["back_in_stock"]}):
            await outbox.add(conn, INDEX_PRODUCT, request_id, product_id=product_id)
    await outbox.add(conn, MAKE_REFUND, request_id, refund_id=row["id"])
    return Requested(_refund(row, chosen), created=True)


def _check_status(status: Status) -> None:
    if status not in REFUNDABLE_STATUSES:
        raise RefundRefused(
            f"This order is {status}: only a confirmed, shipped or delivered order is refunded "
            "here (cancelling a paid order refunds it in full)."
        )


async def _with_lines(executor: Executor, row: asyncpg.Record) -> Refund:
    rows = await executor.fetch(
        "SELECT line, quantity FROM refund_lines WHERE refund_id = $1 ORDER BY line", row["id"]
    )
    return _refund(row, {r["line"]: r["quantity"] for r in rows})


async def record_rest(
    conn: asyncpg.Connection, order_id: int, amount: int, currency: str, request_key: uuid.UUID
) -> Refund:
    """A system refund of `amount` (what a cancellation leaves to refund), idempotent per key,
    in the caller's transaction. More than is left fails in the database (check_violation)."""
    row = await conn.fetchrow(
        INSERT_REFUND, order_id, request_key, amount, currency, False, "", "system", None
    )
    if row is None:
        row = await conn.fetchrow(BY_KEY, request_key)
    return _refund(row)


async def get(executor: Executor, refund_id: int) -> Refund:
    """The refund with its lines; raises RefundNotFound."""
    row = await executor.fetchrow(GET_REFUND, refund_id)
    if row is None:
        raise RefundNotFound(refund_id)
    return await _with_lines(executor, row)


async def lock(conn: asyncpg.Connection, refund_id: int) -> Refund:
    """The refund, locked; raises RefundNotFound."""
    row = await conn.fetchrow(LOCK_REFUND, refund_id)
    if row is None:
        raise RefundNotFound(refund_id)
    return _refund(row)


async def mark_refunded(conn: asyncpg.Connection, refund: Refund, reference: str) -> None:
    """Record the provider's refund (a repeat changes nothing); the payment becomes refunded
    once its refunds are all done and add up to the capture."""
    await conn.execute(MARK_REFUNDED, refund.id, reference)
    await conn.execute(SETTLE_PAYMENT, refund.order_id, reference)


async def for_order(executor: Executor, order_id: int) -> list[Refund]:
    """The order's refunds, oldest first, with their lines."""
    rows = await executor.fetch(FOR_ORDER, order_id)
    lines: dict[int, dict[int, int]] = {}
    for r in await executor.fetch(LINES_OF_ORDER, order_id):
        lines.setdefault(r["refund_id"], {})[r["line"]] = r["quantity"]
    return [_refund(row, lines.get(row["id"])) for row in rows]
