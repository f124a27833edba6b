"""The order actors' decisions, called directly with real resources: capture or decline, skip
what is no longer pending, cancel the unpaid; and the relay's tick of the expiry job.

The broker path and its faults are test_order_reliability's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import asyncpg
import pytest

from actors.orders import capture_payment, expire_unpaid, refund_payment
from actors.relay import Relay
from actors.resources import Resources, open_resources
from configs.settings import Settings
from storage import orders
from storage.database import connect, create_pool
from tests.support.orders import DECLINED, place_order, stock_of, stocked_product


@pytest.fixture
async def res(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        yield await open_resources(settings, stack)


@pytest.fixture
async def conn(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(fresh_db)
    yield connection
    await connection.close()


def event() -> str:
    return str(uuid.uuid4())


async def test_a_captured_payment_confirms_the_order_once(res, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)])).id
    first = event()
    await capture_payment(res, event_id=first, order_id=order_id)
    await capture_payment(res, event_id=first, order_id=order_id)  # a redelivery
    detail = await orders.detail(conn, await orders.get(conn, order_id))
    assert detail.order.status == "confirmed"
    assert detail.payment is not None and detail.payment.status == "captured"
    assert detail.payment.reference is not None and detail.payment.reference.startswith("ch_")
    assert [t.to_status for t in detail.transitions] == ["pending", "confirmed"]
    assert await conn.fetchval("SELECT attempts FROM test_gateway_charges") == 1
    assert await stock_of(conn, tee["TEE"]) == 3


async def test_a_declined_card_cancels_the_order_and_returns_the_stock(res, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)], payment=DECLINED)).id
    assert await stock_of(conn, tee["TEE"]) == 3
    await capture_payment(res, event_id=event(), order_id=order_id)
    detail = await orders.detail(conn, await orders.get(conn, order_id))
    assert detail.order.status == "cancelled"
    assert detail.payment is not None
    assert (detail.payment.status, detail.payment.decline_code) == ("declined", "card_declined")
    assert detail.transitions[-1].note == "The card was declined."
    assert await stock_of(conn, tee["TEE"]) == 5


async def test_an_order_no_longer_pending_is_not_charged(res, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 1)])).id
    async with conn.transaction():
        await orders.transition(conn, order_id, "cancelled", actor="customer")
    await capture_payment(res, event_id=event(), order_id=order_id)
    assert await conn.fetchval("SELECT count(*) FROM test_gateway_charges") == 0
    assert (await orders.get(conn, order_id)).status == "cancelled"


async def test_unpaid_orders_past_the_limit_are_cancelled_with_their_stock_back(
    res, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 10})
    old = (await place_order(conn, [(tee["TEE"], 3)])).id
    fresh = (await place_order(conn, [(tee["TEE"], 2)])).id
    paid = (await place_order(conn, [(tee["TEE"], 1)])).id
    await capture_payment(res, event_id=event(), order_id=paid)
    minutes = res.settings.unpaid_order_minutes
    await conn.execute(
        "UPDATE orders SET placed_at = now() - make_interval(mins => $1 + 1) WHERE id = ANY ($2)",
        minutes,
        [old, paid],
    )
    await expire_unpaid(res)
    assert (await orders.get(conn, old)).status == "cancelled"
    assert (await orders.get(conn, fresh)).status == "pending"
    assert (await orders.get(conn, paid)).status == "confirmed"
    assert await stock_of(conn, tee["TEE"]) == 10 - 2 - 1
    history = await orders.detail(conn, await orders.get(conn, old))
    assert history.transitions[-1].actor == "system"
    assert history.transitions[-1].note == f"not paid within {minutes} minutes"


async def test_the_relay_ticks_the_expiry_job(settings, conn, fresh_db, broker, worker) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 4})
    old = (await place_order(conn, [(tee["TEE"], 4)])).id
    await conn.execute("UPDATE orders SET placed_at = now() - interval '1 day'")
    await conn.execute("UPDATE outbox SET published_at = now()")  # only the tick is under test
    pool = await create_pool(fresh_db, 2)
    stop = asyncio.Event()
    relay = Relay(pool, broker, poll_interval=0.1, ticks=[("orders.expire_unpaid", 60.0)])
    running = asyncio.create_task(relay.run(stop))
    try:

        async def cancelled() -> bool:
            return (await orders.get(conn, old)).status == "cancelled"

        deadline = asyncio.get_running_loop().time() + 15
        while not await cancelled():
            assert asyncio.get_running_loop().time() < deadline, "the expiry job never ran"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await running
        await pool.close()
    assert await stock_of(conn, tee["TEE"]) == 4


async def test_cancelling_a_paid_order_refunds_it_once(res, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    paid = (await place_order(conn, [(tee["TEE"], 2)])).id
    unpaid = (await place_order(conn, [(tee["TEE"], 1)])).id
    await capture_payment(res, event_id=event(), order_id=paid)
    for order_id in (paid, unpaid):
        async with conn.transaction():
            await orders.transition(conn, order_id, "cancelled", actor="customer")
    refunds = await conn.fetch(
        "SELECT event_id, payload FROM outbox WHERE actor_name = 'orders.refund_payment'"
    )
    assert [r["payload"]["order_id"] for r in refunds] == [paid]  # the unpaid one is voided
    first = str(refunds[0]["event_id"])
    await refund_payment(res, event_id=first, order_id=paid)
    await refund_payment(res, event_id=first, order_id=paid)  # a redelivery
    await refund_payment(res, event_id=event(), order_id=paid)  # a second event: nothing to do
    payment = await orders.payment_of(conn, paid)
    assert payment is not None and payment.status == "refunded"
    assert payment.refund_reference is not None and payment.refund_reference.startswith("re_")
    ledger = await conn.fetch("SELECT outcome, amount FROM test_gateway_charges ORDER BY outcome")
    total = payment.amount  # 2 x 10.00 + 4.95 shipping
    assert total == 2495
    assert [(r["outcome"], r["amount"]) for r in ledger] == [
        ("captured", total),
        ("refunded", total),
    ]
    unpaid_payment = await orders.payment_of(conn, unpaid)
    assert unpaid_payment is not None and unpaid_payment.status == "voided"


async def test_captures_never_wait_for_their_own_pool(settings_for, conn, fresh_db) -> None:
    # Every connection of the actors' pool held by a capture's transaction, all at once: the
    # gateway must not need one of them (it has its own), or the captures wait forever.
    tee = await stocked_product(fresh_db, "tee", {"TEE": 10})
    placed = [(await place_order(conn, [(tee["TEE"], 1)])).id for _ in range(3)]
    async with AsyncExitStack() as stack:
        tight = await open_resources(settings_for(fresh_db, database_pool_size=1), stack)
        captures = (capture_payment(tight, event_id=event(), order_id=o) for o in placed)
        await asyncio.wait_for(asyncio.gather(*captures), timeout=20)
    statuses = await conn.fetch("SELECT status FROM orders ORDER BY id")
    assert [row["status"] for row in statuses] == ["confirmed"] * 3
