"""Placing an order: the one transaction on the primary that turns a cart into an order.

`place_order` reads top to bottom, in the caller's transaction:
1. the Idempotency-Key, if any, is claimed first: a concurrent request with the same key waits
   on its primary key and then finds this order (or, if this one rolled back, claims it itself);
2. the cart is locked, then its variants in id order (every checkout locks in the same order,
   so two checkouts never wait on each other in a circle);
3. stock is checked and taken with a guarded UPDATE (`stock_on_hand >= quantity`), backed by
   the table's CHECK (stock_on_hand >= 0);
4. the totals are computed from the locked prices (domain.checkout);
5. the order, its lines (name, SKU and price copied), its payment and its first transition are
   written, the cart is emptied, and the outbox gets the capture, the email, the stock check
   and the search documents of variants that sold out.

The request side (the card, the address, the key's digest) is web/checkout.py's.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from domain.checkout import Line, Totals, totals
from domain.events import CAPTURE_PAYMENT, CHECK_STOCK, INDEX_PRODUCT, SEND_ORDER_EMAIL
from domain.money import Money
from domain.payments import PaymentMethod
from storage import attributes, order_tokens, outbox
from storage.errors import EmptyCart, IdempotencyKeyReused, OutOfStock
from storage.order_payments import Payment
from storage.orders import (
    GET_ORDER,
    ORDER_COLUMNS,
    Order,
    OrderDetail,
    OrderLine,
    ShippingMethod,
    Transition,
    order_of,
    shipping_method,
)

NUMBER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O, U

CLAIM_KEY = """
    INSERT INTO idempotency_keys (scope, key, request_digest) VALUES ($1, $2, $3)
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING scope
"""
FIND_KEY = "SELECT request_digest, order_id FROM idempotency_keys WHERE scope = $1 AND key = $2"
SET_KEY_ORDER = "UPDATE idempotency_keys SET order_id = $3 WHERE scope = $1 AND key = $2"
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
# Returns each variant's product and the units left: a product whose variant sold out has its
# search document rebuilt (it and the cached pages say "in stock" or not), and a variant left low
# asks for staff to be told.
TAKE_STOCK = """
    UPDATE variants v SET stock_on_hand = v.stock_on_hand - d.quantity
    FROM unnest($1::bigint[], $2::integer[]) AS d (id, quantity)
    WHERE v.id = d.id AND v.stock_on_hand >= d.quantity
    RETURNING v.product_id, v.stock_on_hand
"""
# The order and everything that belongs to it, in one statement: its lines, its payment and its
# first transition. A number clash inserts nothing, and the caller tries another number.
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
    )
    SELECT * FROM o
"""
EMPTY_CART = "DELETE FROM cart_items WHERE cart_id = $1"


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key in its scope (one customer, or one guest cart) and the request digest."""

    scope: str
    key: str
    digest: bytes


@dataclass(frozen=True)
class NewOrder:
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
    # A guest's order token's digest (storage.order_tokens), kept by the order it places, or by
    # the order of an earlier request with the same Idempotency-Key (the new token replaces its).
    guest_token_hash: bytes | None = None
    # LOW_STOCK_THRESHOLD: the order asks the stock actor to tell staff (CHECK_STOCK) only when
    # it left one of its variants at this many units or fewer, the only variants that actor
    # tells of (a later order that takes more asks again). None: every order asks.
    low_stock_threshold: int | None = None


@dataclass(frozen=True)
class Placed:
    order: Order
    created: bool  # False: an earlier request with the same Idempotency-Key made it
    # What was written, as `orders.detail` would read it back (None for an earlier request's).
    detail: OrderDetail | None = None


@dataclass(frozen=True)
class CartLine:
    """One line of the cart being ordered, from its locked variant."""

    variant_id: int
    product_id: int
    sku: str
    name: str  # the order line's name (line_name)
    unit_amount: int
    currency: str
    quantity: int


async def place_order(conn: asyncpg.Connection, new: NewOrder) -> Placed:
    """Place the order of `new.cart_id`, in the caller's transaction.

    Raises EmptyCart, OutOfStock (naming each SKU short of stock), ShippingMethodNotFound,
    MixedCurrencies, and IdempotencyKeyReused (the key came with a different request).
    """
    earlier = await _claim_key(conn, new.idempotency)
    if earlier is not None:
        if new.guest_token_hash is not None:
            await order_tokens.keep(conn, earlier.id, new.guest_token_hash)
        return Placed(earlier, created=False)
    method = await shipping_method(conn, new.shipping_method)
    lines = await _lock_cart(conn, new.cart_id)
    left = await _take_stock(conn, lines)
    sums = totals(
        [Line(Money(line.unit_amount, line.currency), line.quantity) for line in lines],
        method.rate,
        tax_rate_bps=new.tax_rate_bps,
    )
    order = await _insert_order(conn, new, method, lines, sums)
    if new.guest_token_hash is not None:
        await order_tokens.keep(conn, order.id, new.guest_token_hash)
    await conn.execute(EMPTY_CART, new.cart_id)
    if new.idempotency is not None:
        await conn.execute(SET_KEY_ORDER, new.idempotency.scope, new.idempotency.key, order.id)
    events = [
        outbox.new_event(CAPTURE_PAYMENT, order_id=order.id),
        outbox.new_event(SEND_ORDER_EMAIL, order_id=order.id, kind="placed"),
    ]
    threshold = new.low_stock_threshold
    if threshold is None or any(units <= threshold for _, units in left):
        events.append(
            outbox.new_event(CHECK_STOCK, variant_ids=[line.variant_id for line in lines])
        )
    sold_out = sorted({product_id for product_id, units in left if units == 0})
    events += [outbox.new_event(INDEX_PRODUCT, product_id=product_id) for product_id in sold_out]
    await outbox.add_all(conn, events, new.request_id)
    return Placed(order, True, _written(order, new, lines))


async def _claim_key(conn: asyncpg.Connection, key: Idempotency | None) -> Order | None:
    """Claim the key for this request; the order of an earlier request with the same key and
    body, if there is one. Raises IdempotencyKeyReused when its body differed."""
    if key is None or await conn.fetchval(CLAIM_KEY, key.scope, key.key, key.digest) is not None:
        return None
    earlier = await conn.fetchrow(FIND_KEY, key.scope, key.key)
    if earlier["request_digest"] != key.digest:
        raise IdempotencyKeyReused(key.key)
    return order_of(await conn.fetchrow(GET_ORDER, earlier["order_id"]))


async def _lock_cart(conn: asyncpg.Connection, cart_id: int) -> list[CartLine]:
    """The cart's lines with their variants, all locked, in variant id order.

    Raises EmptyCart, and OutOfStock when a variant is gone, unpublished or short of stock."""
    quantities = {
        row["variant_id"]: row["quantity"] for row in await conn.fetch(LOCK_CART_ITEMS, cart_id)
    }
    if not quantities:
        raise EmptyCart()
    variants = await conn.fetch(LOCK_VARIANTS, sorted(quantities))
    by_slug = {a.slug: a for a in await attributes.list_attributes(conn)}  # the lines' names
    shortages = {
        v["sku"]: v["stock_on_hand"] if v["is_published"] else 0
        for v in variants
        if not v["is_published"] or v["stock_on_hand"] < quantities[v["id"]]
    }
    if shortages or len(variants) != len(quantities):
        raise OutOfStock(shortages)
    return [
        CartLine(
            variant_id=v["id"],
            product_id=v["product_id"],
            sku=v["sku"],
            name=line_name(v["product_name"], v["variant_name"], v["attributes"], by_slug),
            unit_amount=v["price_amount"],
            currency=v["currency"],
            quantity=quantities[v["id"]],
        )
        for v in variants
    ]


async def _take_stock(conn: asyncpg.Connection, lines: Sequence[CartLine]) -> list[tuple[int, int]]:
    """Take the lines' units from stock; (product id, units left) of each line's variant."""
    ids = [line.variant_id for line in lines]
    taken = await conn.fetch(TAKE_STOCK, ids, [line.quantity for line in lines])
    if len(taken) != len(ids):  # cannot happen under the locks; the guard says so
        raise OutOfStock({line.sku: 0 for line in lines})
    return [(row["product_id"], row["stock_on_hand"]) for row in taken]


async def _insert_order(
    conn: asyncpg.Connection,
    new: NewOrder,
    method: ShippingMethod,
    lines: Sequence[CartLine],
    sums: Totals,
) -> Order:
    """Write the order, its lines, payment and first transition under a fresh number."""
    order_columns = (
        new.user_id,
        new.email,
        sums.total.currency,
        sums.subtotal.amount,
        sums.shipping.amount,
        sums.tax.amount,
        sums.total.amount,
        sums.tax_rate_bps,
        method.name,
        new.shipping_address,
    )
    line_arrays = (
        [line.variant_id for line in lines],
        [line.product_id for line in lines],
        [line.sku for line in lines],
        [line.name for line in lines],
        [line.unit_amount for line in lines],
        [line.quantity for line in lines],
    )
    payment = new.payment
    payment_columns = (payment.gateway, payment.token, payment.brand, payment.last4)
    while True:
        row = await conn.fetchrow(
            INSERT_ORDER, new_number(), *order_columns, *line_arrays, *payment_columns, new.actor
        )
        if row is not None:  # else another order has this number (32^12 of them): try again
            return order_of(row)


def _written(order: Order, new: NewOrder, lines: Sequence[CartLine]) -> OrderDetail:
    """The detail of an order `place_order` just wrote, from what it wrote (no reading back)."""
    order_lines = [
        OrderLine(
            n,
            line.variant_id,
            line.product_id,
            line.sku,
            line.name,
            line.unit_amount,
            line.quantity,
            line.unit_amount * line.quantity,
        )
        for n, line in enumerate(lines, start=1)
    ]
    method = new.payment
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
    first = Transition(None, "pending", new.actor, order.user_id, None, "", order.placed_at)
    return OrderDetail(order, order_lines, payment, [first])


def new_number() -> str:
    """A new order number, `XXXX-XXXX-XXXX` in Crockford's base 32."""
    chars = "".join(secrets.choice(NUMBER_ALPHABET) for _ in range(12))
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def line_name(
    product: str,
    variant: str,
    values: dict[str, Any],
    by_slug: Mapping[str, attributes.Attribute],
) -> str:
    """What an order line is called: the product and the variant's name, or else its attribute
    values as people read them ("Field Tee - Red / M"), so two variants of one product read
    differently (`by_slug`: the attributes, for choices' names and Yes/No)."""
    which = variant or " / ".join(
        by_slug[slug].text(value) if slug in by_slug else str(value)
        for slug, value in values.items()
    )
    return f"{product} - {which}" if which else product
