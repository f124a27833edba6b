"""Test helpers for carts and orders: products with stock, filled carts, placed orders.

Orders are placed through storage (`place_order`: the checkout transaction on a new guest cart;
`order_in_status`: then moved along by the system). Tests of the HTTP checkout post the API or
the storefront form themselves. Tests of the whole flow (relay, worker, SMTP) place many at once
(`place_orders_now`), wait until all are paid and check each was paid and told exactly once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from domain.orders import Status
from domain.payments import PaymentMethod
from storage import checkout as checkout_storage
from storage import orders, products
from storage.checkout import NewOrder
from storage.database import connect
from storage.orders import Order
from storage.products import NewVariant
from tests.support.smtp import SmtpServer

if TYPE_CHECKING:
    from actors.resources import Resources

ADDRESS = {
    "full_name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "line2": "",
    "city": "London",
    "postal_code": "N1 7AA",
    "country": "GB",
    "phone": "",
}
# A payment method as the test gateway makes it for its success card (domain.payments).
PAID = PaymentMethod("test", "tok_ok_0000000000000000", "visa", "4242")
DECLINED = PaymentMethod("test", "tok_card_declined_0000000000000000", "visa", "0002")


async def stocked_product(
    dsn: str, slug: str, stocks: Mapping[str, int], *, price: int = 1000, currency: str = "EUR"
) -> dict[str, int]:
    """A published product with one variant per SKU in `stocks` (that many units each);
    returns {sku: variant id}."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            product = await products.create(
                conn,
                slug=slug,
                name=slug.replace("-", " ").title(),
                variants=[
                    NewVariant(
                        sku=sku, price_amount=price, currency=currency, stock_on_hand=n, name=sku
                    )
                    for sku, n in stocks.items()
                ],
            )
        rows = await conn.fetch("SELECT sku, id FROM variants WHERE product_id = $1", product.id)
    finally:
        await conn.close()
    return {row["sku"]: row["id"] for row in rows}


async def guest_cart(conn: asyncpg.Connection, lines: Sequence[tuple[int, int]]) -> int:
    """A guest cart holding (variant id, quantity) lines, written straight (no stock check)."""
    cart_id: int = await conn.fetchval(
        "INSERT INTO carts (token_hash) VALUES ($1) RETURNING id", secrets.token_bytes(32)
    )
    for variant_id, quantity in lines:
        await conn.execute(
            "INSERT INTO cart_items (cart_id, variant_id, quantity) VALUES ($1, $2, $3)"
            " ON CONFLICT (cart_id, variant_id)"
            " DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity",
            cart_id,
            variant_id,
            quantity,
        )
    return cart_id


def new_order(cart_id: int, **overrides: object) -> NewOrder:
    fields: dict[str, object] = {
        "cart_id": cart_id,
        "user_id": None,
        "email": "ada@example.com",
        "shipping_address": ADDRESS,
        "shipping_method": "standard",
        "payment": PAID,
        "actor": "guest",
    }
    return NewOrder(**(fields | overrides))  # type: ignore[arg-type]


async def stock_of(conn: asyncpg.Connection, variant_id: int) -> int:
    stock: int = await conn.fetchval("SELECT stock_on_hand FROM variants WHERE id = $1", variant_id)
    return stock


async def place_order(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, int]], **changes: object
) -> Order:
    """What checkout does, in its own transaction: an order of `lines` (variant id, quantity)
    from a new guest cart, with its outbox events. `changes` go to `new_order`."""
    cart = await guest_cart(conn, lines)
    async with conn.transaction():
        return (await checkout_storage.place_order(conn, new_order(cart, **changes))).order


# How the system moves a new order to each status.
STEPS: dict[str, list[Status]] = {
    "pending": [],
    "confirmed": ["confirmed"],
    "shipped": ["confirmed", "shipped"],
    "delivered": ["confirmed", "shipped", "delivered"],
    "cancelled": ["cancelled"],
}


async def order_in_status(
    dsn: str,
    variant_id: int,
    quantity: int = 1,
    *,
    status: str = "pending",
    placed_at: datetime | None = None,
    **changes: object,
) -> Order:
    """An order of `quantity` units, moved by the system to `status` (via confirmed), placed at
    `placed_at` when given."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            order = await place_order(conn, [(variant_id, quantity)], **changes)
            for step in STEPS[status]:
                number = "TRACK-1" if step == "shipped" else None
                await orders.transition(
                    conn, order.id, step, actor="system", tracking_number=number
                )
            if placed_at is not None:
                await conn.execute(
                    "UPDATE orders SET placed_at = $2 WHERE id = $1", order.id, placed_at
                )
        return await orders.get(conn, order.id)
    finally:
        await conn.close()


# Orders flowing through relay, worker and SMTP: placed, then checked paid and told once. ----


async def place_orders_now(dsn: str, variant_id: int, count: int) -> list[int]:
    """`count` guest orders of one unit each; their ids."""
    conn = await connect(dsn)
    try:
        placed = []
        for _ in range(count):
            cart = await guest_cart(conn, [(variant_id, 1)])
            async with conn.transaction():
                placed.append((await checkout_storage.place_order(conn, new_order(cart))).order.id)
        return placed
    finally:
        await conn.close()


async def count(dsn: str, query: str) -> int:
    conn = await connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def emails_by_event(dsn: str, server: SmtpServer) -> Counter[tuple[int, str]]:
    """(order id, kind) -> how many distinct emails (Message-IDs) arrived for it.

    An order email's Message-ID is its event's id: the outbox says which order and kind it is.
    """
    ids = {str(m["Message-ID"]).strip("<>").partition("@")[0] for m in server.messages}
    conn = await connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE actor_name = 'email.send_order_email'"
            " AND replace(event_id::text, '-', '') = ANY ($1::text[])",
            sorted(ids),
        )
    finally:
        await conn.close()
    assert len(rows) == len(ids), "an email whose Message-ID is no order event"
    return Counter((row["payload"]["order_id"], row["payload"]["kind"]) for row in rows)


async def wait_until_paid(dsn: str, server: SmtpServer, placed: list[int], timeout: float) -> None:
    """Until every order is confirmed and both its emails (placed, confirmed) have arrived."""
    deadline = asyncio.get_running_loop().time() + timeout
    confirmed = "SELECT count(*) FROM orders WHERE status = 'confirmed'"
    while not (
        await count(dsn, confirmed) == len(placed) and len(server.messages) >= 2 * len(placed)
    ):
        assert asyncio.get_running_loop().time() < deadline, "the orders were not all paid"
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)  # anything still in flight would arrive now


async def assert_each_paid_and_told_once(dsn: str, server: SmtpServer, placed: list[int]) -> None:
    total = len(placed)
    assert await count(dsn, "SELECT count(*) FROM orders WHERE status = 'confirmed'") == total
    assert await count(dsn, "SELECT count(*) FROM test_gateway_charges") == total
    confirmations = "SELECT count(*) FROM order_transitions WHERE to_status = 'confirmed'"
    assert await count(dsn, confirmations) == total
    assert await count(dsn, "SELECT count(*) FROM payments WHERE status = 'captured'") == total
    emails = await emails_by_event(dsn, server)
    assert set(emails) == {(o, kind) for o in placed for kind in ("placed", "confirmed")}
    assert set(emails.values()) == {1}
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    assert await count(dsn, unpublished) == 0


# Capture events the order actor has not handled yet (tests that run the actor by hand).
UNPROCESSED_CAPTURES = """
    SELECT o.event_id, (o.payload->>'order_id')::bigint AS order_id FROM outbox o
    LEFT JOIN processed_events p ON p.consumer = o.actor_name AND p.event_id = o.event_id
    WHERE o.actor_name = 'orders.capture_payment' AND p.event_id IS NULL
"""


async def run_captures(res: Resources, dsn: str) -> int:
    """Run the order actor on every capture event not handled yet, as a worker would."""
    from actors.orders import capture_payment
    from tests.support.db import fetch

    rows = await fetch(dsn, UNPROCESSED_CAPTURES)
    for row in rows:
        await capture_payment(res, event_id=str(row["event_id"]), order_id=row["order_id"])
    return len(rows)
