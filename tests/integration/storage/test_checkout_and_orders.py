"""Placing orders and moving them along, against the real database (storage.orders)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from domain.orders import IllegalTransition
from storage import checkout as checkout_storage
from storage import orders
from storage.checkout import Idempotency
from storage.database import Database, ReadPool, connect, create_pool, retrying_transaction
from storage.errors import EmptyCart, IdempotencyKeyReused, OutOfStock, ShippingMethodNotFound
from tests.support.orders import ADDRESS, guest_cart, new_order, stock_of, stocked_product


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Database]:
    pool = await create_pool(fresh_db, 20)
    yield Database(primary=pool, replica=ReadPool(pool, None, 5.0))
    await pool.close()


async def test_placing_copies_the_lines_takes_the_stock_and_empties_the_cart(
    fresh_db, conn
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE-S": 5, "TEE-M": 2}, price=1500)
    mug = await stocked_product(fresh_db, "mug", {"MUG": 9}, price=1200)
    cart = await guest_cart(conn, [(tee["TEE-M"], 2), (mug["MUG"], 3)])
    async with conn.transaction():
        placed = await checkout_storage.place_order(conn, new_order(cart, tax_rate_bps=2000))
    order = placed.order
    assert placed.created and order.status == "pending"
    assert (order.subtotal_amount, order.shipping_amount) == (6600, 0)  # free from 50.00
    assert (order.tax_amount, order.total_amount) == (1320, 7920)
    assert order.shipping_address == ADDRESS
    detail = await orders.detail(conn, order)
    assert [
        (line.sku, line.quantity, line.unit_amount, line.line_amount) for line in detail.lines
    ] == [
        ("TEE-M", 2, 1500, 3000),
        ("MUG", 3, 1200, 3600),
    ]
    assert detail.payment is not None and detail.payment.status == "pending"
    assert detail.payment.amount == 7920 and detail.payment.card_last4 == "4242"
    assert [(t.from_status, t.to_status, t.actor) for t in detail.transitions] == [
        (None, "pending", "guest")
    ]
    assert await stock_of(conn, tee["TEE-M"]) == 0 and await stock_of(conn, mug["MUG"]) == 6
    assert await conn.fetchval("SELECT count(*) FROM cart_items WHERE cart_id = $1", cart) == 0
    events = {e["actor_name"]: e["payload"] for e in await conn.fetch("SELECT * FROM outbox")}
    assert set(events) == {
        "orders.capture_payment",
        "email.send_order_email",
        "orders.check_stock",
        "search.index_product",  # TEE-M sold out
    }
    assert events["search.index_product"]["product_id"] == await conn.fetchval(
        "SELECT product_id FROM variants WHERE id = $1", tee["TEE-M"]
    )
    assert events["orders.capture_payment"]["order_id"] == order.id
    assert events["email.send_order_email"]["order_id"] == order.id
    assert events["email.send_order_email"]["kind"] == "placed"
    assert events["orders.check_stock"] == {
        "event_id": events["orders.check_stock"]["event_id"],
        "variant_ids": sorted([tee["TEE-M"], mug["MUG"]]),
    }


async def test_an_order_asks_for_a_stock_check_only_when_it_leaves_a_variant_low(
    fresh_db, conn
) -> None:
    """With the threshold given, CHECK_STOCK is written only by an order that left one of its
    variants at the threshold or below, and then names all of its variants (as without one)."""
    tee = await stocked_product(fresh_db, "tee", {"TEE-S": 10, "TEE-M": 10})

    async def place(lines: list[tuple[int, int]]) -> list[list[int]]:
        """Place an order of `lines`; the variant ids of each CHECK_STOCK event it wrote."""
        cart = await guest_cart(conn, lines)
        async with conn.transaction():
            await checkout_storage.place_order(conn, new_order(cart, low_stock_threshold=3))
        rows = await conn.fetch(
            "DELETE FROM outbox WHERE actor_name = 'orders.check_stock' RETURNING payload"
        )
        return [sorted(row["payload"]["variant_ids"]) for row in rows]

    assert await place([(tee["TEE-S"], 6), (tee["TEE-M"], 1)]) == []  # 4 and 9 left
    assert await place([(tee["TEE-S"], 1), (tee["TEE-M"], 1)]) == [
        sorted([tee["TEE-S"], tee["TEE-M"]])  # TEE-S at 3: the threshold
    ]
    assert await conn.fetchval("SELECT count(*) FROM orders") == 2


async def test_short_stock_or_an_empty_cart_writes_nothing(fresh_db, conn) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE-S": 1, "TEE-M": 4})
    cart = await guest_cart(conn, [(tee["TEE-S"], 2), (tee["TEE-M"], 1)])
    with pytest.raises(OutOfStock) as raised:
        async with conn.transaction():
            await checkout_storage.place_order(conn, new_order(cart))
    assert raised.value.shortages == {"TEE-S": 1}
    assert await stock_of(conn, tee["TEE-M"]) == 4
    assert await conn.fetchval("SELECT count(*) FROM orders") == 0
    assert await conn.fetchval("SELECT count(*) FROM cart_items") == 2
    with pytest.raises(ShippingMethodNotFound):
        async with conn.transaction():
            await checkout_storage.place_order(conn, new_order(cart, shipping_method="teleport"))
    empty = await guest_cart(conn, [])
    with pytest.raises(EmptyCart):
        async with conn.transaction():
            await checkout_storage.place_order(conn, new_order(empty))


async def test_an_idempotency_key_gives_the_same_order_and_refuses_another_body(
    fresh_db, conn
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    cart = await guest_cart(conn, [(tee["TEE"], 1)])
    key = Idempotency("cart:1", "k-1", b"body-1")
    async with conn.transaction():
        first = await checkout_storage.place_order(conn, new_order(cart, idempotency=key))
    async with conn.transaction():
        again = await checkout_storage.place_order(conn, new_order(cart, idempotency=key))
    assert first.created and not again.created and again.order == first.order
    with pytest.raises(IdempotencyKeyReused):
        async with conn.transaction():
            await checkout_storage.place_order(
                conn, new_order(cart, idempotency=Idempotency("cart:1", "k-1", b"x"))
            )
    assert await stock_of(conn, tee["TEE"]) == 4


async def test_two_hundred_buyers_of_ten_units_make_ten_orders(fresh_db, db) -> None:
    tee = await stocked_product(fresh_db, "hot-tee", {"HOT": 10})
    conn = await connect(fresh_db)
    try:
        carts = [await guest_cart(conn, [(tee["HOT"], 1)]) for _ in range(200)]
    finally:
        await conn.close()

    async def buy(cart_id: int) -> str:
        try:
            await retrying_transaction(
                db, lambda c: checkout_storage.place_order(c, new_order(cart_id))
            )
        except OutOfStock:
            return "sold out"
        return "ordered"

    outcomes = await asyncio.gather(*(buy(cart) for cart in carts))
    assert outcomes.count("ordered") == 10 and outcomes.count("sold out") == 190
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, tee["HOT"]) == 0
        assert await conn.fetchval("SELECT count(*) FROM orders") == 10
        assert await conn.fetchval("SELECT sum(quantity) FROM order_lines") == 10
    finally:
        await conn.close()


async def test_cancelling_returns_the_stock_and_illegal_moves_are_refused(fresh_db, conn) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 3})
    cart = await guest_cart(conn, [(tee["TEE"], 2)])
    async with conn.transaction():
        order = (await checkout_storage.place_order(conn, new_order(cart))).order
    with pytest.raises(IllegalTransition):
        async with conn.transaction():
            await orders.transition(conn, order.id, "shipped", actor="staff")
    async with conn.transaction():
        cancelled = await orders.transition(
            conn, order.id, "cancelled", actor="staff", note="asked"
        )
    assert cancelled.status == "cancelled" and await stock_of(conn, tee["TEE"]) == 3
    detail = await orders.detail(conn, cancelled)
    assert detail.payment is not None and detail.payment.status == "voided"
    assert [(t.from_status, t.to_status) for t in detail.transitions] == [
        (None, "pending"),
        ("pending", "cancelled"),
    ]
    with pytest.raises(IllegalTransition):
        async with conn.transaction():
            await orders.transition(conn, order.id, "cancelled", actor="staff")
    assert await stock_of(conn, tee["TEE"]) == 3


async def test_selling_out_and_restocking_rebuild_the_products_search_document(
    fresh_db, conn
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE-S": 2, "TEE-M": 5})
    product_id = await conn.fetchval("SELECT product_id FROM variants WHERE sku = 'TEE-S'")
    reindex = "SELECT count(*) FROM outbox WHERE actor_name = 'search.index_product'"
    first = await guest_cart(conn, [(tee["TEE-S"], 1)])
    async with conn.transaction():
        await checkout_storage.place_order(conn, new_order(first))
    assert await conn.fetchval(reindex) == 0  # one left: nothing a page shows has changed
    last = await guest_cart(conn, [(tee["TEE-S"], 1)])
    async with conn.transaction():
        sold_out = (await checkout_storage.place_order(conn, new_order(last))).order
    events = await conn.fetch(
        "SELECT payload FROM outbox WHERE actor_name = 'search.index_product'"
    )
    assert [e["payload"]["product_id"] for e in events] == [product_id]
    async with conn.transaction():
        await orders.transition(conn, sold_out.id, "cancelled", actor="staff")
    assert await conn.fetchval(reindex) == 2  # back in stock
