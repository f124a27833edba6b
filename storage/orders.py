"""Orders: placing one from a cart (all or nothing), reading them, and moving them along.

Placing an order is one transaction on the primary (`place`):
1. the Idempotency-Key, if any, is claimed first: a concurrent request with the same key waits
   on its primary key and then finds this order (or, if this one rolled back, claims it itself);
2. the cart is locked, then its variants in id order (every checkout locks in the same order,
   so two checkouts never wait on each other in a circle);
3. stock is checked and taken with a guarded UPDATE (`stock_on_hand >= quantity`), backed by
   the table's CHECK (stock_on_hand >= 0);
4. the order, its lines (name, SKU and price copied), its payment and its first transition are
   written, the cart is emptied, and the outbox gets the payment capture and the email.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from domain.checkout import Line, ShippingRate, totals
from domain.events import (
    CAPTURE_PAYMENT,
    CHECK_STOCK,
    INDEX_PRODUCT,
    REFUND_PAYMENT,
    SEND_ORDER_EMAIL,
)
from domain.money import Money
from domain.orders import RETURNS_STOCK, Status, check_transition
from domain.payments import PaymentMethod
from storage import outbox
from storage.database import Executor
from storage.errors import (
    EmptyCart,
    IdempotencyKeyReused,
    OrderNotFound,
    OutOfStock,
    ShippingMethodNotFound,
)

NUMBER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O, U

CLAIM_KEY = """
    INSERT INTO idempotency_keys (scope, key, request_digest) VALUES ($1, $2, $3)
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING scope
"""
FIND_KEY = "SELECT request_digest, order_id FROM idempotency_keys WHERE scope = $1 AND key = $2"
# The cart's lines, its row locked: two checkouts of one cart (two tabs) take turns.
LOCK_CART_ITEMS = """
    SELECT i.variant_id, i.quantity FROM carts c JOIN cart_items i ON i.cart_id = c.id
    WHERE c.id = $1
    FOR UPDATE OF c
"""
LOCK_VARIANTS = """
    SELECT v.id, v.sku, v.name AS variant_name, v.attributes, v.price_amount, v.currency,
           v.stock_on_hand, p.id AS product_id, p.name AS product_name, p.is_published
    FROM variants v JOIN products p ON p.id = v.product_id
    WHERE v.id = ANY ($1::bigint[])
    ORDER BY v.id
    FOR UPDATE OF v
"""
# Both return the products of variants that sold out or came back: their search documents and
# cached pages say "in stock" or not, so the search actor rebuilds them (and moves the cache).
TAKE_STOCK = """
    UPDATE variants v SET stock_on_hand = v.stock_on_hand - d.quantity
    FROM unnest($1::bigint[], $2::integer[]) AS d (id, quantity)
    WHERE v.id = d.id AND v.stock_on_hand >= d.quantity
    RETURNING v.product_id, v.stock_on_hand = 0 AS sold_out
"""
RETURN_STOCK = """
    UPDATE variants v SET stock_on_hand = v.stock_on_hand + l.quantity
    FROM (SELECT variant_id, sum(quantity)::integer AS quantity FROM order_lines
          WHERE order_id = $1 AND variant_id IS NOT NULL GROUP BY variant_id) l
    WHERE v.id = l.variant_id
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
# Everything an order writes, in one statement: the order (a number clash inserts nothing, and
# the caller tries another number), its lines, payment and first transition, the emptied cart,
# the Idempotency-Key's order, and the outbox events (a payload's `order_id`: the new order's).
INSERT_ORDER = f"""
    WITH o AS (
        INSERT INTO orders AS o (number, user_id, email, currency, subtotal_amount,
                                 shipping_amount, tax_amount, total_amount, tax_rate_bps,
                                 shipping_method, shipping_address)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (number) DO NOTHING
        RETURNING {ORDER_COLUMNS}
    ), lines AS (
        INSERT INTO order_lines (order_id, line, variant_id, product_id, sku, name, unit_amount,
                                 quantity, line_amount)
        SELECT o.id, l.n, l.variant_id, l.product_id, l.sku, l.name, l.unit_amount, l.quantity,
               l.unit_amount * l.quantity
        FROM o, unnest($12::bigint[], $13::bigint[], $14::text[], $15::text[], $16::bigint[],
                       $17::integer[])
                WITH ORDINALITY AS l (variant_id, product_id, sku, name, unit_amount, quantity, n)
    ), payment AS (
        INSERT INTO payments (order_id, gateway, token, card_brand, card_last4, amount, currency)
        SELECT o.id, $18, $19, $20, $21, o.total_amount, o.currency FROM o
    ), transition AS (
        INSERT INTO order_transitions (order_id, from_status, to_status, actor_id, actor, note)
        SELECT o.id, NULL, 'pending', o.user_id, $22, '' FROM o
    ), emptied AS (
        DELETE FROM cart_items WHERE cart_id = $23 AND EXISTS (SELECT FROM o)
    ), keyed AS (
        UPDATE idempotency_keys k SET order_id = o.id FROM o WHERE k.scope = $24 AND k.key = $25
    ), events AS (
        INSERT INTO outbox (event_id, actor_name, payload, request_id)
        SELECT e.event_id, e.actor_name,
               CASE WHEN e.payload::jsonb ? 'order_id'
                    THEN e.payload::jsonb || jsonb_build_object('order_id', o.id)
                    ELSE e.payload::jsonb END,
               $29
        FROM o, unnest($26::uuid[], $27::text[], $28::text[]) AS e (event_id, actor_name, payload)
    )
    SELECT * FROM o
"""
INSERT_TRANSITION = """
    INSERT INTO order_transitions (order_id, from_status, to_status, actor_id, actor, note)
    VALUES ($1, $2, $3, $4, $5, $6)
"""
GET_ORDER = f"SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = $1"
LOCK_ORDER = f"SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = $1 FOR UPDATE"
FIND_BY_NUMBER = f"""
    SELECT {ORDER_COLUMNS} FROM orders o
    WHERE o.number = $1 AND ($2::bigint IS NULL OR o.user_id = $2)
"""
SET_STATUS = f"""
    UPDATE orders o SET status = $2, tracking_number = coalesce($3, o.tracking_number),
                        updated_at = now()
    WHERE o.id = $1
    RETURNING {ORDER_COLUMNS}
"""
ORDER_LINES = """
    SELECT line, variant_id, product_id, sku, name, unit_amount, quantity, line_amount
    FROM order_lines WHERE order_id = $1 ORDER BY line
"""
TRANSITIONS = """
    SELECT t.from_status, t.to_status, t.actor, t.actor_id, u.email AS actor_email, t.note,
           t.created_at
    FROM order_transitions t LEFT JOIN users u ON u.id = t.actor_id
    WHERE t.order_id = $1 ORDER BY t.id
"""
PAYMENT = """
    SELECT gateway, token, card_brand, card_last4, amount, currency, status, decline_code,
           reference, refund_reference
    FROM payments WHERE order_id = $1
"""
SET_PAYMENT = """
    UPDATE payments SET status = $2, reference = coalesce($3, reference),
                        decline_code = coalesce($4, decline_code), updated_at = now()
    WHERE order_id = $1
"""
PAYMENT_CAPTURED = "SELECT status = 'captured' FROM payments WHERE order_id = $1"
SET_REFUNDED = """
    UPDATE payments SET status = 'refunded', refund_reference = $2, updated_at = now()
    WHERE order_id = $1 AND status = 'captured'
"""
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
UNPAID_BEFORE = """
    SELECT id FROM orders
    WHERE status = 'pending' AND placed_at < now() - $1::interval
    ORDER BY placed_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
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

    @property
    def method(self) -> PaymentMethod:
        return PaymentMethod(self.gateway, self.token, self.card_brand, self.card_last4)


@dataclass(frozen=True)
class OrderDetail:
    order: Order
    lines: list[OrderLine]
    payment: Payment | None
    transitions: list[Transition]


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key in its scope (one customer, or one guest cart) and the request digest."""

    scope: str
    key: str
    digest: bytes


@dataclass(frozen=True)
class Checkout:
    """Everything placing an order needs besides the cart's contents."""

    cart_id: int
    user_id: int | None
    email: str
    shipping_address: dict[str, str]
    shipping_method: str  # a shipping method's code
    payment: PaymentMethod
    tax_rate_bps: int = 0
    request_id: str | None = None
    idempotency: Idempotency | None = None
    actor: str = "customer"  # or "guest": for the transition record


@dataclass(frozen=True)
class Placed:
    order: Order
    created: bool  # False: an earlier request with the same Idempotency-Key made it
    # What was written, as `detail` would read it back (None for an earlier request's order).
    detail: OrderDetail | None = None


def _order(row: Any) -> Order:
    return Order(**{f.name: row[f.name] for f in fields(Order)})


def new_number() -> str:
    chars = "".join(secrets.choice(NUMBER_ALPHABET) for _ in range(12))
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


async def shipping_methods(executor: Executor) -> list[ShippingMethod]:
    return [ShippingMethod(**dict(row)) for row in await executor.fetch(SHIPPING_METHODS)]


async def shipping_method(executor: Executor, code: str) -> ShippingMethod:
    """An active shipping method by code; raises ShippingMethodNotFound."""
    row = await executor.fetchrow(SHIPPING_METHOD, code)
    if row is None:
        raise ShippingMethodNotFound(code)
    return ShippingMethod(**dict(row))


async def place(conn: asyncpg.Connection, checkout: Checkout) -> Placed:
    """Place the order of `checkout.cart_id`, in the caller's transaction.

    Raises EmptyCart, OutOfStock (naming each SKU short of stock), ShippingMethodNotFound,
    MixedCurrencies, and IdempotencyKeyReused (the key came with a different request).
    """
    key = checkout.idempotency
    if key is not None and await conn.fetchval(CLAIM_KEY, key.scope, key.key, key.digest) is None:
        earlier = await conn.fetchrow(FIND_KEY, key.scope, key.key)
        if earlier["request_digest"] != key.digest:
            raise IdempotencyKeyReused(key.key)
        return Placed(_order(await conn.fetchrow(GET_ORDER, earlier["order_id"])), created=False)
    method = await shipping_method(conn, checkout.shipping_method)
    wanted = {
        row["variant_id"]: row["quantity"]
        for row in await conn.fetch(LOCK_CART_ITEMS, checkout.cart_id)
    }
    if not wanted:
        raise EmptyCart()
    variants = await conn.fetch(LOCK_VARIANTS, sorted(wanted))
    shortages = {
        v["sku"]: v["stock_on_hand"] if v["is_published"] else 0
        for v in variants
        if not v["is_published"] or v["stock_on_hand"] < wanted[v["id"]]
    }
    if shortages or len(variants) != len(wanted):
        raise OutOfStock(shortages)
    ids = [v["id"] for v in variants]
    quantities = [wanted[v["id"]] for v in variants]
    taken = await conn.fetch(TAKE_STOCK, ids, quantities)
    if len(taken) != len(ids):  # cannot happen under the locks; the guard says so
        raise OutOfStock({v["sku"]: v["stock_on_hand"] for v in variants})
    sold_out = sorted({row["product_id"] for row in taken if row["sold_out"]})
    sums = totals(
        [Line(Money(v["price_amount"], v["currency"]), wanted[v["id"]]) for v in variants],
        method.rate,
        tax_rate_bps=checkout.tax_rate_bps,
    )
    events = [
        outbox.new_event(CAPTURE_PAYMENT, order_id=None),
        outbox.new_event(SEND_ORDER_EMAIL, order_id=None, kind="placed"),
        outbox.new_event(CHECK_STOCK, variant_ids=ids),
        *(outbox.new_event(INDEX_PRODUCT, product_id=product_id) for product_id in sold_out),
    ]
    payment = checkout.payment
    while True:
        row = await conn.fetchrow(
            INSERT_ORDER,
            new_number(),
            checkout.user_id,
            checkout.email,
            sums.total.currency,
            sums.subtotal.amount,
            sums.shipping.amount,
            sums.tax.amount,
            sums.total.amount,
            sums.tax_rate_bps,
            method.name,
            checkout.shipping_address,
            ids,
            [v["product_id"] for v in variants],
            [v["sku"] for v in variants],
            [line_name(v["product_name"], v["variant_name"], v["attributes"]) for v in variants],
            [v["price_amount"] for v in variants],
            quantities,
            payment.gateway,
            payment.token,
            payment.brand,
            payment.last4,
            checkout.actor,
            checkout.cart_id,
            key.scope if key is not None else None,
            key.key if key is not None else None,
            *outbox.columns(events),
            checkout.request_id,
        )
        if row is not None:  # else another order has this number (32^12 of them): try again
            order = _order(row)
            return Placed(order, True, _written(order, checkout, variants, quantities))


def _written(
    order: Order, checkout: Checkout, variants: Sequence[Any], quantities: Sequence[int]
) -> OrderDetail:
    """The detail of an order `place` just wrote, from what it wrote (no reading back)."""
    lines = [
        OrderLine(
            n,
            v["id"],
            v["product_id"],
            v["sku"],
            line_name(v["product_name"], v["variant_name"], v["attributes"]),
            v["price_amount"],
            quantity,
            v["price_amount"] * quantity,
        )
        for n, (v, quantity) in enumerate(zip(variants, quantities, strict=True), start=1)
    ]
    method = checkout.payment
    payment = Payment(
        method.gateway,
        method.token,
        method.brand,
        method.last4,
        order.total_amount,
        order.currency,
        "pending",
        None,
        None,
    )
    first = Transition(None, "pending", checkout.actor, order.user_id, None, "", order.placed_at)
    return OrderDetail(order, lines, payment, [first])


def line_name(product: str, variant: str, attributes: dict[str, Any]) -> str:
    """What an order line is called: the product and the variant's name, or else its attribute
    values ("Field Tee - red / m"), so two variants of one product read differently."""
    which = variant or " / ".join(str(value) for value in attributes.values())
    return f"{product} - {which}" if which else product


async def get(executor: Executor, order_id: int) -> Order:
    row = await executor.fetchrow(GET_ORDER, order_id)
    if row is None:
        raise OrderNotFound(str(order_id))
    return _order(row)


async def find(executor: Executor, number: str, *, user_id: int | None) -> Order:
    """The order with this number; with `user_id`, only if it is theirs. Raises OrderNotFound."""
    row = await executor.fetchrow(FIND_BY_NUMBER, number.upper(), user_id)
    if row is None:
        raise OrderNotFound(number)
    return _order(row)


async def detail(executor: Executor, order: Order) -> OrderDetail:
    lines = [OrderLine(**dict(r)) for r in await executor.fetch(ORDER_LINES, order.id)]
    payment_row = await executor.fetchrow(PAYMENT, order.id)
    transitions = [Transition(**dict(r)) for r in await executor.fetch(TRANSITIONS, order.id)]
    payment = Payment(**dict(payment_row)) if payment_row is not None else None
    return OrderDetail(order, lines, payment, transitions)


async def list_for_customer(
    executor: Executor,
    user_id: int,
    *,
    limit: int = 20,
    before: tuple[datetime, int] | None = None,
) -> list[Order]:
    """The customer's orders, newest first, `limit` of them after the keyset `before`."""
    at, last_id = before if before is not None else (None, None)
    return [_order(r) for r in await executor.fetch(CUSTOMER_ORDERS, user_id, at, last_id, limit)]


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
    return [_order(r) for r in rows]


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
) -> Order:
    """Move the order to `to` in the caller's transaction, recording who, when, from and to.

    Raises OrderNotFound, and domain.orders.IllegalTransition (the API's 409). Cancelling puts
    the units back in stock, voids a payment not captured yet and has a captured one refunded
    (the order actor's `refund_payment`). The customer's email goes through the outbox.
    """
    current = await lock(conn, order_id)
    check_transition(current.status, to)
    if to in RETURNS_STOCK:
        await conn.execute(LOCK_RETURNED_VARIANTS, order_id)  # in id order, as checkout does
        returned = await conn.fetch(RETURN_STOCK, order_id)
        await conn.execute(VOID_PENDING_PAYMENT, order_id)
        for product_id in sorted({r["product_id"] for r in returned if r["back_in_stock"]}):
            await outbox.add(conn, INDEX_PRODUCT, request_id, product_id=product_id)
        if await conn.fetchval(PAYMENT_CAPTURED, order_id):  # paid: the money goes back too
            await outbox.add(conn, REFUND_PAYMENT, request_id, order_id=order_id)
    changed = _order(await conn.fetchrow(SET_STATUS, order_id, to, tracking_number))
    await conn.execute(INSERT_TRANSITION, order_id, current.status, to, actor_id, actor, note)
    await outbox.add(conn, SEND_ORDER_EMAIL, request_id, order_id=order_id, kind=to)
    return changed


async def lock(conn: asyncpg.Connection, order_id: int) -> Order:
    row = await conn.fetchrow(LOCK_ORDER, order_id)
    if row is None:
        raise OrderNotFound(str(order_id))
    return _order(row)


async def payment_of(executor: Executor, order_id: int) -> Payment | None:
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
    await conn.execute(SET_PAYMENT, order_id, status, reference, decline_code)


async def set_refunded(conn: asyncpg.Connection, order_id: int, refund_reference: str) -> None:
    """Mark a captured payment refunded (nothing else is: a repeat changes nothing)."""
    await conn.execute(SET_REFUNDED, order_id, refund_reference)


async def unpaid_order_ids(
    conn: asyncpg.Connection, older_than_seconds: float, limit: int
) -> list[int]:
    """Pending orders placed more than `older_than_seconds` ago, locked (others skip them)."""
    rows = await conn.fetch(UNPAID_BEFORE, timedelta(seconds=older_than_seconds), limit)
    return [row["id"] for row in rows]
