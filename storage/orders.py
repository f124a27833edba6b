"""Orders: reading them, their shipping methods, and moving them along their lifecycle
(`transition`). Placing one is storage/checkout.py's; their payments are
storage/order_payments.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from domain.checkout import ShippingRate
from domain.events import (
    INDEX_PRODUCT,
    REFUND_PAYMENT,
    SEND_ORDER_EMAIL,
)
from domain.money import Money
from domain.orders import RETURNS_STOCK, Status, check_transition
from storage import outbox
from storage.catalog_reads import LINE_IMAGE, Thumbnail, thumbnail_of
from storage.database import Executor
from storage.errors import (
    OrderNotFound,
    ShippingMethodNotFound,
)
from storage.order_payments import PAYMENT, Payment

# Units shipped are gone, and units a refund restocked are back already (migration 0017).
RETURN_STOCK = """
    UPDATE variants v SET stock_on_hand = v.stock_on_hand + l.quantity
    FROM (SELECT variant_id,
                 sum(greatest(0, quantity - shipped_quantity - restocked_quantity))::integer
                     AS quantity
          FROM order_lines
          WHERE order_id = $1 AND variant_id IS NOT NULL GROUP BY variant_id) l
    WHERE v.id = l.variant_id AND l.quantity > 0
    RETURNING v.product_id, v.stock_on_hand = l.quantity AS back_in_stock
"""
LOCK_RETURNED_VARIANTS = """
    SELECT v.id FROM variants v
    WHERE v.id IN (SELECT variant_id FROM order_lines WHERE order_id = $1)
    ORDER BY v.id FOR UPDATE
"""
SHIPPING_METHOD = """
    SELECT id, code, name, price_amount, currency, free_from_amount FROM shipping_methods
    WHERE code = $1 AND is_active
"""
SHIPPING_METHODS = """
    SELECT id, code, name, price_amount, currency, free_from_amount FROM shipping_methods
    WHERE is_active ORDER BY position, id
"""
ORDER_COLUMNS = """
    o.id, o.number, o.user_id, o.email, o.status, o.currency, o.subtotal_amount,
    o.shipping_amount, o.tax_amount, o.total_amount, o.tax_rate_bps, o.shipping_method,
    o.shipping_address, o.tracking_number, o.placed_at, o.updated_at
"""
# Shipping the whole order: one shipment of every unit left to ship (none when nothing is), so
# an order shipped in one go (the admin's Ship, the staff API) has its parcel like any other.
SHIP_THE_REST = """
    WITH rest AS (
        SELECT line, greatest(0, quantity - shipped_quantity - refunded_quantity) AS quantity
        FROM order_lines WHERE order_id = $1
    ), shipment AS (
        INSERT INTO shipments (order_id, request_key, tracking_number, actor_id, actor_email)
        SELECT $1, gen_random_uuid(), $2, $3, (SELECT email::text FROM users WHERE id = $3)
        WHERE EXISTS (SELECT 1 FROM rest WHERE quantity > 0)
        RETURNING id
    )
    INSERT INTO shipment_lines (shipment_id, order_id, line, quantity)
    SELECT shipment.id, $1, rest.line, rest.quantity FROM shipment, rest WHERE rest.quantity > 0
"""
GET_ORDER = f"SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = $1"
LOCK_ORDER = f"SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = $1 FOR UPDATE"
FIND_BY_NUMBER = f"""
    SELECT {ORDER_COLUMNS} FROM orders o
    WHERE o.number = $1 AND ($2::bigint IS NULL OR o.user_id = $2)
"""
# A transition's writes in one statement (one round trip, not three): the order's new status,
# the transition's row and the customer's email event (its row as outbox.add writes it; the
# outbox's trigger wakes the relays as for any insert).
MOVE = f"""
    WITH changed AS (
        UPDATE orders o SET status = $2, tracking_number = coalesce($3, o.tracking_number),
                            updated_at = now()
        WHERE o.id = $1
        RETURNING {ORDER_COLUMNS}
    ), recorded AS (
        INSERT INTO order_transitions (order_id, from_status, to_status, actor_id, actor, note)
        SELECT id, $4::text, $2, $5::bigint, $6::text, $7::text FROM changed
    ), told AS (
        INSERT INTO outbox (event_id, actor_name, payload, request_id)
        SELECT $8::uuid, $9::text, $10::jsonb, $11::text FROM changed
    )
    SELECT * FROM changed
"""
ORDER_LINES = """
    SELECT line, variant_id, product_id, sku, name, unit_amount, quantity, line_amount,
           refunded_quantity, restocked_quantity, shipped_quantity
    FROM order_lines WHERE order_id = $1 ORDER BY line
"""
TRANSITIONS = """
    SELECT t.from_status, t.to_status, t.actor, t.actor_id, u.email AS actor_email, t.note,
           t.created_at
    FROM order_transitions t LEFT JOIN users u ON u.id = t.actor_id
    WHERE t.order_id = $1 ORDER BY t.id
"""
# An order email's whole read in one statement (one round trip, not six): the order, and its
# lines, payment and history as `detail` reads them (each a record, or an array of them, whose
# fields are the dataclass's, in order), and each line's picture (catalog_reads.LINE_IMAGE).
EMAIL_VIEW = f"""
    SELECT {ORDER_COLUMNS},
        ARRAY(SELECT (line, variant_id, product_id, sku, name, unit_amount, quantity, line_amount,
                      refunded_quantity, restocked_quantity, shipped_quantity)
              FROM order_lines WHERE order_id = o.id ORDER BY line) AS lines,
        (SELECT (gateway, token, card_brand, card_last4, amount, currency, status, decline_code,
                 reference, refund_reference, attempt, refunded_amount)
         FROM payments WHERE order_id = o.id) AS payment,
        ARRAY(SELECT (t.from_status, t.to_status, t.actor, t.actor_id, u.email::text, t.note,
                      t.created_at)
              FROM order_transitions t LEFT JOIN users u ON u.id = t.actor_id
              WHERE t.order_id = o.id ORDER BY t.id) AS transitions,
        ARRAY(SELECT (l.line, img.image)
              FROM order_lines l CROSS JOIN LATERAL ({LINE_IMAGE}) img
              WHERE l.order_id = o.id) AS images
    FROM orders o WHERE o.id = ANY($1::bigint[])
"""
PAYMENT_CAPTURED = "SELECT status = 'captured' FROM payments WHERE order_id = $1"
VOID_PENDING_PAYMENT = """
    UPDATE payments SET status = 'voided', updated_at = now()
    WHERE order_id = $1 AND status = 'pending'
"""
CUSTOMER_ORDERS = f"""
    SELECT {ORDER_COLUMNS} FROM orders o
    WHERE o.user_id = $1 AND ($2::timestamptz IS NULL OR (o.placed_at, o.id) < ($2, $3))
    ORDER BY o.placed_at DESC, o.id DESC
    LIMIT $4
"""
STAFF_ORDERS = f"""
    SELECT {ORDER_COLUMNS} FROM orders o
    WHERE ($1::text IS NULL OR o.status = $1)
      AND ($2::timestamptz IS NULL OR o.placed_at >= $2)
      AND ($3::timestamptz IS NULL OR o.placed_at < $3)
      AND ($4::text IS NULL OR strpos(lower(o.email), lower($4)) > 0 OR o.number = upper($4))
      AND ($5::timestamptz IS NULL OR (o.placed_at, o.id) < ($5, $6))
    ORDER BY o.placed_at DESC, o.id DESC
    LIMIT $7
"""


@dataclass(frozen=True)
class ShippingMethod:
    id: int
    code: str
    name: str
    price_amount: int
    currency: str
    free_from_amount: int | None

    @property
    def rate(self) -> ShippingRate:
        free_from = self.free_from_amount
        return ShippingRate(
            Money(self.price_amount, self.currency),
            Money(free_from, self.currency) if free_from is not None else None,
        )


@dataclass(frozen=True)
class Order:
    id: int
    number: str
    user_id: int | None
    email: str
    status: Status
    currency: str
    subtotal_amount: int
    shipping_amount: int
    tax_amount: int
    total_amount: int
    tax_rate_bps: int
    shipping_method: str
    shipping_address: dict[str, str]
    tracking_number: str | None
    placed_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OrderLine:
    line: int
    variant_id: int | None
    product_id: int | None
    sku: str
    name: str
    unit_amount: int
    quantity: int
    line_amount: int
    refunded_quantity: int = 0
    restocked_quantity: int = 0  # of the refunded units, those put back in stock
    shipped_quantity: int = 0


@dataclass(frozen=True)
class Transition:
    from_status: str | None
    to_status: str
    actor: str
    actor_id: int | None
    actor_email: str | None
    note: str
    created_at: datetime


@dataclass(frozen=True)
class OrderDetail:
    order: Order
    lines: list[OrderLine]
    payment: Payment | None
    transitions: list[Transition]


def order_of(row: Any) -> Order:
    """An Order from a row of ORDER_COLUMNS."""
    return Order(**{f.name: row[f.name] for f in fields(Order)})


async def shipping_methods(executor: Executor) -> list[ShippingMethod]:
    return [ShippingMethod(**dict(row)) for row in await executor.fetch(SHIPPING_METHODS)]


async def shipping_method(executor: Executor, code: str) -> ShippingMethod:
    """An active shipping method by code; raises ShippingMethodNotFound."""
    row = await executor.fetchrow(SHIPPING_METHOD, code)
    if row is None:
        raise ShippingMethodNotFound(code)
    return ShippingMethod(**dict(row))


async def get(executor: Executor, order_id: int) -> Order:
    row = await executor.fetchrow(GET_ORDER, order_id)
    if row is None:
        raise OrderNotFound(str(order_id))
    return order_of(row)


async def find(executor: Executor, number: str, *, user_id: int | None) -> Order:
    """The order with this number; with `user_id`, only if it is theirs. Raises OrderNotFound."""
    row = await executor.fetchrow(FIND_BY_NUMBER, number.upper(), user_id)
    if row is None:
        raise OrderNotFound(number)
    return order_of(row)


async def detail(executor: Executor, order: Order) -> OrderDetail:
    lines = [OrderLine(**dict(r)) for r in await executor.fetch(ORDER_LINES, order.id)]
    payment_row = await executor.fetchrow(PAYMENT, order.id)
    transitions = [Transition(**dict(r)) for r in await executor.fetch(TRANSITIONS, order.id)]
    payment = Payment(**dict(payment_row)) if payment_row is not None else None
    return OrderDetail(order, lines, payment, transitions)


async def email_view(executor: Executor, order_id: int) -> tuple[OrderDetail, dict[int, Thumbnail]]:
    """What an order email shows, in one statement: `detail(get(order_id))` and
    `catalog_reads.line_images` of its lines. Raises OrderNotFound."""
    views = await email_views(executor, [order_id])
    if order_id not in views:
        raise OrderNotFound(str(order_id))
    return views[order_id]


async def email_views(
    executor: Executor, order_ids: Sequence[int]
) -> dict[int, tuple[OrderDetail, dict[int, Thumbnail]]]:
    """email_view of several orders in one statement, by order id (an order that does not exist
    is missing)."""
    views: dict[int, tuple[OrderDetail, dict[int, Thumbnail]]] = {}
    for row in await executor.fetch(EMAIL_VIEW, list(order_ids)):
        payment = Payment(*row["payment"]) if row["payment"] is not None else None
        detail = OrderDetail(
            order_of(row),
            [OrderLine(*line) for line in row["lines"]],
            payment,
            [Transition(*each) for each in row["transitions"]],
        )
        views[row["id"]] = detail, {line: thumbnail_of(image) for line, image in row["images"]}
    return views


async def lines_of(executor: Executor, order_id: int) -> list[OrderLine]:
    """The order's lines with their refunded and shipped counts, in line order."""
    return [OrderLine(**dict(r)) for r in await executor.fetch(ORDER_LINES, order_id)]


async def list_for_customer(
    executor: Executor,
    user_id: int,
    *,
    limit: int = 20,
    before: tuple[datetime, int] | None = None,
) -> list[Order]:
    """The customer's orders, newest first, `limit` of them after the keyset `before`."""
    at, last_id = before if before is not None else (None, None)
    return [order_of(r) for r in await executor.fetch(CUSTOMER_ORDERS, user_id, at, last_id, limit)]


async def list_for_staff(
    executor: Executor,
    *,
    status: str | None = None,
    placed_from: datetime | None = None,
    placed_to: datetime | None = None,
    customer: str | None = None,
    limit: int = 50,
    before: tuple[datetime, int] | None = None,
) -> list[Order]:
    """Orders newest first, filtered by status, placing time [from, to) and customer (a part of
    the email, or an order number)."""
    at, last_id = before if before is not None else (None, None)
    rows = await executor.fetch(
        STAFF_ORDERS, status, placed_from, placed_to, customer, at, last_id, limit
    )
    return [order_of(r) for r in rows]


async def transition(
    conn: asyncpg.Connection,
    order_id: int,
    to: Status,
    *,
    actor: str,
    actor_id: int | None = None,
    note: str = "",
    tracking_number: str | None = None,
    request_id: str | None = None,
    locked: Order | None = None,
) -> Order:
    """Move the order to `to` in the caller's transaction, recording who, when, from and to.

    `locked`: the order as the caller read it under its lock (`lock`) in this transaction,
    which spares locking it again (one round trip less).

    Raises OrderNotFound, and domain.orders.IllegalTransition (the API's 409). Shipping with a
    tracking number records one shipment of the units left to ship. Cancelling puts the units
    back in stock, voids a payment not captured yet and has a captured one refunded
    (the order actor's `refund_payment`). The customer's email goes through the outbox.
    """
    current = locked if locked is not None and locked.id == order_id else await lock(conn, order_id)
    check_transition(current.status, to)
    if to in RETURNS_STOCK:
        await conn.execute(LOCK_RETURNED_VARIANTS, order_id)  # in id order, as checkout does
        returned = await conn.fetch(RETURN_STOCK, order_id)
        await conn.execute(VOID_PENDING_PAYMENT, order_id)
        for product_id in sorted({r["product_id"] for r in returned if r["back_in_stock"]}):
            await outbox.add(conn, INDEX_PRODUCT, request_id, product_id=product_id)
        if await conn.fetchval(PAYMENT_CAPTURED, order_id):  # paid: the money goes back too
            await outbox.add(conn, REFUND_PAYMENT, request_id, order_id=order_id)
    if to == "shipped" and tracking_number is not None:
        await conn.execute(SHIP_THE_REST, order_id, tracking_number, actor_id)
    email = outbox.new_event(SEND_ORDER_EMAIL, order_id=order_id, kind=to)
    changed = await conn.fetchrow(
        MOVE,
        order_id,
        to,
        tracking_number,
        current.status,
        actor_id,
        actor,
        note,
        email.event_id,
        email.actor_name,
        email.payload,
        request_id,
    )
    return order_of(changed)


async def lock(conn: asyncpg.Connection, order_id: int) -> Order:
    row = await conn.fetchrow(LOCK_ORDER, order_id)
    if row is None:
        raise OrderNotFound(str(order_id))
    return order_of(row)


# The order's emails, through the outbox events that asked for them (so only while both the
# outbox row and the delivery log keep them: OUTBOX and EMAIL_LOG retention).
ORDER_EMAILS = """
    SELECT d.at, d.kind, d.recipient, d.subject, d.result, d.attempt, d.error
    FROM outbox o JOIN email_deliveries d ON d.event_id = o.event_id
    WHERE (o.actor_name = 'email.send_order_email' AND (o.payload ->> 'order_id')::bigint = $1)
       OR (o.actor_name = 'email.send_refund_email'
           AND (o.payload ->> 'refund_id')::bigint IN (SELECT id FROM refunds WHERE order_id = $1))
    ORDER BY d.at, d.id
"""


@dataclass(frozen=True)
class OrderEmail:
    at: datetime
    kind: str
    recipient: str
    subject: str
    result: str
    attempt: int
    error: str | None


async def emails_of(executor: Executor, order_id: int) -> list[OrderEmail]:
    """Every attempt to email the order's customer about it, oldest first."""
    return [OrderEmail(**dict(r)) for r in await executor.fetch(ORDER_EMAILS, order_id)]


COUNT_PLACED_BETWEEN = """
    SELECT count(*) FROM orders
    WHERE placed_at >= to_timestamp($1) AND placed_at < to_timestamp($2)
"""


async def count_placed(executor: Executor, start: float, end: float) -> int:
    """How many orders were placed in [start, end) (Unix seconds); uses orders_placed."""
    return int(await executor.fetchval(COUNT_PLACED_BETWEEN, start, end))
