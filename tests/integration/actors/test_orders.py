"""The order actors' decisions, called directly with real resources: capture or decline, skip
what is no longer pending, cancel the unpaid (only those whose capture was tried and failed, after
asking the gateway); and the relay's tick of the expiry job.

The broker path and its faults are test_orders_under_faults'."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import asyncpg
import dramatiq
import pytest

from actors.orders import capture_key, capture_payment, expire_unpaid, make_refund, refund_payment
from actors.relay import Relay
from actors.resources import Resources, open_resources
from configs.settings import Settings
from domain.events import CAPTURE_PAYMENT
from domain.payments import PaymentMethod
from storage import order_payments, orders, payments, refunds
from storage.database import create_pool
from storage.errors import OrderNotPayable
from tests.support.gateways import LostAnswerGateway, UnreachableGateway
from tests.support.orders import DECLINED, PAID, place_order, stock_of, stocked_product


@pytest.fixture
async def res(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        yield await open_resources(settings, stack)


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


async def test_a_declined_card_leaves_the_order_pending_with_its_stock_held(
    res, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)], payment=DECLINED)).id
    assert await stock_of(conn, tee["TEE"]) == 3
    await capture_payment(res, event_id=event(), order_id=order_id)
    detail = await orders.detail(conn, await orders.get(conn, order_id))
    assert detail.order.status == "pending"
    assert detail.payment is not None
    assert (detail.payment.status, detail.payment.decline_code) == ("declined", "card_declined")
    assert detail.payment.awaiting_customer
    assert [t.to_status for t in detail.transitions] == ["pending"]  # no move, no email
    assert await stock_of(conn, tee["TEE"]) == 3  # held for the customer's next card


async def test_an_order_no_longer_pending_is_not_charged(res, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 1)])).id
    async with conn.transaction():
        await orders.transition(conn, order_id, "cancelled", actor="customer")
    skipped = event()
    await capture_payment(res, event_id=skipped, order_id=order_id)
    assert await conn.fetchval("SELECT count(*) FROM test_gateway_charges") == 0
    assert (await orders.get(conn, order_id)).status == "cancelled"
    # Nothing to do is an effect too: the inbox records it, so the reconciler sees it done.
    recorded = "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = $2"
    assert await conn.fetchval(recorded, "orders.capture_payment", uuid.UUID(skipped)) == 1


@pytest.fixture
async def unreachable(res: Resources) -> AsyncIterator[Resources]:
    """`res` with a payment gateway that cannot be reached."""
    gateway = UnreachableGateway(str(res.settings.database_url))
    yield replace(res, gateway=gateway)
    await gateway.aclose()


@pytest.fixture
async def lost_answers(res: Resources) -> AsyncIterator[Resources]:
    """`res` with a payment gateway that captures but whose answers never come back."""
    gateway = LostAnswerGateway(str(res.settings.database_url))
    yield replace(res, gateway=gateway)
    await gateway.aclose()


async def make_old(conn: asyncpg.Connection, minutes: int, order_ids: list[int]) -> None:
    """Placed `minutes` + 1 minutes ago."""
    await conn.execute(
        "UPDATE orders SET placed_at = now() - make_interval(mins => $1 + 1) WHERE id = ANY ($2)",
        minutes,
        order_ids,
    )


async def test_only_orders_whose_capture_failed_expire_with_their_stock_back(
    res, unreachable, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 20})
    failed = (await place_order(conn, [(tee["TEE"], 3)])).id
    queued = (await place_order(conn, [(tee["TEE"], 4)])).id  # its capture has not run yet
    fresh = (await place_order(conn, [(tee["TEE"], 2)])).id  # failed, but not old enough
    paid = (await place_order(conn, [(tee["TEE"], 1)])).id
    for order_id in (failed, fresh):
        with pytest.raises(ConnectionError):  # the message would be retried
            await capture_payment(unreachable, event_id=event(), order_id=order_id)
    await capture_payment(res, event_id=event(), order_id=paid)
    payment = await order_payments.payment_of(conn, failed)
    assert payment is not None and payment.status == "pending"
    assert (
        await conn.fetchval("SELECT failed_attempts FROM payments WHERE order_id = $1", failed) == 1
    )
    minutes = res.settings.unpaid_order_minutes
    await make_old(conn, minutes, [failed, queued, paid])

    await expire_unpaid(res)

    assert (await orders.get(conn, failed)).status == "cancelled"
    assert (await orders.get(conn, queued)).status == "pending"  # the shop's queue was late
    assert (await orders.get(conn, fresh)).status == "pending"
    assert (await orders.get(conn, paid)).status == "confirmed"
    assert await stock_of(conn, tee["TEE"]) == 20 - 4 - 2 - 1
    history = await orders.detail(conn, await orders.get(conn, failed))
    assert history.transitions[-1].actor == "system"
    assert history.transitions[-1].note == f"not paid within {minutes} minutes"
    assert history.payment is not None and history.payment.status == "voided"
    assert await conn.fetchval("SELECT count(*) FROM test_gateway_charges") == 1  # `paid` only

    # Its capture comes at last (the queue caught up): it pays, as any capture would.
    await capture_payment(res, event_id=event(), order_id=queued)
    assert (await orders.get(conn, queued)).status == "confirmed"


async def test_the_expiry_confirms_an_order_the_gateway_captured_but_the_shop_never_recorded(
    res, lost_answers, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)])).id
    capture_event = event()
    with pytest.raises(TimeoutError):  # charged at the gateway; the answer was lost
        await capture_payment(lost_answers, event_id=capture_event, order_id=order_id)
    assert (await orders.get(conn, order_id)).status == "pending"
    await make_old(conn, res.settings.unpaid_order_minutes, [order_id])

    await expire_unpaid(res)

    detail = await orders.detail(conn, await orders.get(conn, order_id))
    assert detail.order.status == "confirmed"
    assert [t.to_status for t in detail.transitions] == ["pending", "confirmed"]
    charge = await conn.fetchrow("SELECT outcome, reference, attempts FROM test_gateway_charges")
    assert detail.payment is not None and detail.payment.status == "captured"
    assert detail.payment.reference == charge["reference"]
    assert (charge["outcome"], charge["attempts"]) == ("captured", 1)  # asked, never charged again
    assert await stock_of(conn, tee["TEE"]) == 3
    refunds = "SELECT count(*) FROM outbox WHERE actor_name = 'orders.refund_payment'"
    assert await conn.fetchval(refunds) == 0
    # The capture's retry, when it comes, finds the order paid and charges nothing.
    await capture_payment(res, event_id=capture_event, order_id=order_id)
    assert await conn.fetchval("SELECT attempts FROM test_gateway_charges") == 1


async def test_the_expiry_cancels_a_decline_the_shop_never_recorded(
    res, lost_answers, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)], payment=DECLINED)).id
    with pytest.raises(TimeoutError):
        await capture_payment(lost_answers, event_id=event(), order_id=order_id)
    await make_old(conn, res.settings.unpaid_order_minutes, [order_id])
    await expire_unpaid(res)
    detail = await orders.detail(conn, await orders.get(conn, order_id))
    assert detail.order.status == "cancelled"  # past the time: no other card can come now
    assert detail.transitions[-1].note == (
        "the card was declined and no other card paid within 30 minutes"
    )
    assert detail.payment is not None
    assert (detail.payment.status, detail.payment.decline_code) == ("declined", "card_declined")
    assert await stock_of(conn, tee["TEE"]) == 5


async def test_an_unreachable_gateway_defers_the_expiry(res, unreachable, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)])).id
    with pytest.raises(ConnectionError):
        await capture_payment(unreachable, event_id=event(), order_id=order_id)
    await make_old(conn, res.settings.unpaid_order_minutes, [order_id])
    await expire_unpaid(unreachable)  # cannot ask what became of the capture: no cancelling
    assert (await orders.get(conn, order_id)).status == "pending"
    await expire_unpaid(res)  # the gateway answers again: it never saw the capture
    assert (await orders.get(conn, order_id)).status == "cancelled"


async def test_no_order_whose_capture_is_still_queued_expires(res, conn, fresh_db, broker) -> None:
    # The worker is stopped for longer than UNPAID_ORDER_MINUTES while the captures wait in
    # RabbitMQ; the expiry runs meanwhile (another worker, or the same one before the captures).
    tee = await stocked_product(fresh_db, "tee", {"TEE": 100})
    placed = [(await place_order(conn, [(tee["TEE"], 1)])).id for _ in range(30)]
    pool = await create_pool(fresh_db, 2)
    try:
        await Relay(pool, broker).drain()
    finally:
        await pool.close()
    assert broker.get_queue_message_counts("orders")[0] == len(placed)  # stock checks
    assert broker.get_queue_message_counts(CAPTURE_PAYMENT.queue)[0] == len(placed)
    await make_old(conn, res.settings.unpaid_order_minutes, placed)

    await expire_unpaid(res)
    await expire_unpaid(res)

    statuses = await conn.fetch("SELECT DISTINCT status FROM orders")
    assert [row["status"] for row in statuses] == ["pending"]
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        confirmed = "SELECT count(*) FROM orders WHERE status = 'confirmed'"
        deadline = asyncio.get_running_loop().time() + 60
        while await conn.fetchval(confirmed) < len(placed):
            assert asyncio.get_running_loop().time() < deadline, "the captures did not all run"
            await asyncio.sleep(0.2)
    finally:
        worker.stop()
    assert await conn.fetchval("SELECT count(*) FROM test_gateway_charges") == len(placed)


async def test_the_relay_ticks_the_expiry_job(settings, conn, fresh_db, broker, worker) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 4})
    old = (await place_order(conn, [(tee["TEE"], 4)])).id
    await conn.execute("UPDATE orders SET placed_at = now() - interval '1 day'")
    await conn.execute("UPDATE payments SET failed_attempts = 1")  # as a failed capture leaves it
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
    payment = await order_payments.payment_of(conn, paid)
    assert payment is not None and payment.status == "refunded"
    assert payment.refund_reference is not None and payment.refund_reference.startswith("re_")
    ledger = await conn.fetch("SELECT outcome, amount FROM test_gateway_charges ORDER BY outcome")
    total = payment.amount  # 2 x 10.00 + 4.95 shipping
    assert total == 2495
    assert [(r["outcome"], r["amount"]) for r in ledger] == [
        ("captured", total),
        ("refunded", total),
    ]
    unpaid_payment = await order_payments.payment_of(conn, unpaid)
    assert unpaid_payment is not None and unpaid_payment.status == "voided"


async def refund_events(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT event_id, payload FROM outbox WHERE actor_name = 'orders.make_refund'"
        " ORDER BY created_at, event_id"
    )
    return [(str(r["event_id"]), r["payload"]["refund_id"]) for r in rows]


async def ask_refund(conn: asyncpg.Connection, order_id: int, **how: Any) -> refunds.Refund:
    async with conn.transaction():
        asked = await refunds.request(
            conn,
            order_id,
            request_key=uuid.uuid4(),
            lines=how.pop("lines", {}),
            amount=how.pop("amount", None),
            restock=False,
            reason="",
            actor="staff",
            locale="en_IE",
        )
    return asked.refund


async def test_each_refund_reaches_the_provider_once(res, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)])).id  # 2 x 10.00 + 4.95 shipping
    await capture_payment(res, event_id=event(), order_id=order_id)
    first = await ask_refund(conn, order_id, lines={1: 1})
    second = await ask_refund(conn, order_id, amount=495)
    events = await refund_events(conn)
    assert [refund_id for _, refund_id in events] == [first.id, second.id]
    for event_id, refund_id in events:
        await make_refund(res, event_id=event_id, refund_id=refund_id)
        await make_refund(res, event_id=event_id, refund_id=refund_id)  # a redelivery
        await make_refund(res, event_id=event(), refund_id=refund_id)  # the same refund again
    ledger = await conn.fetch(
        "SELECT idempotency_key, amount, attempts FROM test_gateway_charges"
        " WHERE outcome = 'refunded' ORDER BY amount DESC"
    )
    assert [tuple(r) for r in ledger] == [
        (f"refund-{first.id}", 1000, 1),
        (f"refund-{second.id}", 495, 1),
    ]
    done = await refunds.for_order(conn, order_id)
    assert [(r.status, (r.reference or "")[:3]) for r in done] == [("refunded", "re_")] * 2
    payment = await order_payments.payment_of(conn, order_id)
    assert payment is not None and (payment.status, payment.refunded_amount) == ("captured", 1495)
    # The rest refunded: the payment is refunded.
    rest = await ask_refund(conn, order_id, amount=1000)
    event_id, _ = (await refund_events(conn))[-1]
    await make_refund(res, event_id=event_id, refund_id=rest.id)
    payment = await order_payments.payment_of(conn, order_id)
    assert payment is not None and (payment.status, payment.refunded_amount) == ("refunded", 2495)


async def test_a_refund_the_provider_fails_is_retried_with_its_key(
    res, unreachable, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 1)])).id
    await capture_payment(res, event_id=event(), order_id=order_id)
    refund = await ask_refund(conn, order_id, amount=500)
    [(event_id, _)] = await refund_events(conn)
    with pytest.raises(ConnectionError):
        await make_refund(unreachable, event_id=event_id, refund_id=refund.id)
    [still] = await refunds.for_order(conn, order_id)
    assert still.status == "requested"  # nothing recorded: the retry comes
    await make_refund(res, event_id=event_id, refund_id=refund.id)
    [done] = await refunds.for_order(conn, order_id)
    assert done.status == "refunded"
    refunded = "SELECT count(*) FROM test_gateway_charges WHERE outcome = 'refunded'"
    assert await conn.fetchval(refunded) == 1


async def test_cancelling_after_a_partial_refund_gives_back_only_the_rest(
    res, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)])).id
    await capture_payment(res, event_id=event(), order_id=order_id)
    partial = await ask_refund(conn, order_id, lines={1: 1})
    async with conn.transaction():
        await orders.transition(conn, order_id, "cancelled", actor="staff")
    [cancel_event] = await conn.fetch(
        "SELECT event_id FROM outbox WHERE actor_name = 'orders.refund_payment'"
    )
    await refund_payment(res, event_id=str(cancel_event["event_id"]), order_id=order_id)
    payment = await order_payments.payment_of(conn, order_id)
    assert payment is not None and payment.status == "captured"  # the partial one is not done
    [(event_id, _)] = await refund_events(conn)
    await make_refund(res, event_id=event_id, refund_id=partial.id)
    ledger = await conn.fetch(
        "SELECT amount FROM test_gateway_charges WHERE outcome = 'refunded' ORDER BY amount"
    )
    assert [r["amount"] for r in ledger] == [1000, 1495]  # 2495 in all, never more
    payment = await order_payments.payment_of(conn, order_id)
    assert payment is not None and (payment.status, payment.refunded_amount) == ("refunded", 2495)


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


def counted(counter: Any, *labels: str) -> float:
    """A counter's value in this process (the default registry: no multiprocess mode here)."""
    return float(counter.labels(*labels)._value.get())


async def test_captures_declines_errors_refunds_and_inbox_deliveries_are_counted(
    res, unreachable, conn, fresh_db
) -> None:
    from actors.orders import CAPTURES, REFUNDS
    from storage.inbox import DELIVERIES

    tee = await stocked_product(fresh_db, "tee", {"TEE": 9})
    paid = (await place_order(conn, [(tee["TEE"], 1)])).id
    declined = (await place_order(conn, [(tee["TEE"], 1)], payment=DECLINED)).id
    failing = (await place_order(conn, [(tee["TEE"], 1)])).id
    before = {r: counted(CAPTURES, r) for r in ("captured", "declined", "error")}
    first, duplicate = (
        counted(DELIVERIES, "orders.capture_payment", r) for r in ("first", "duplicate")
    )
    once = event()
    await capture_payment(res, event_id=once, order_id=paid)
    await capture_payment(res, event_id=once, order_id=paid)  # a redelivery
    await capture_payment(res, event_id=event(), order_id=declined)
    with pytest.raises(ConnectionError):
        await capture_payment(unreachable, event_id=event(), order_id=failing)
    assert {r: counted(CAPTURES, r) - before[r] for r in before} == {
        "captured": 1,
        "declined": 1,
        "error": 1,
    }
    # The failed capture's inbox row rolled back with it, but it was a first delivery when
    # decided: counted as such (its retry will be counted again).
    assert counted(DELIVERIES, "orders.capture_payment", "first") == first + 3
    assert counted(DELIVERIES, "orders.capture_payment", "duplicate") == duplicate + 1

    refunded, errors = counted(REFUNDS, "refunded"), counted(REFUNDS, "error")
    async with conn.transaction():
        await orders.transition(conn, paid, "cancelled", actor="customer")
    with pytest.raises(ConnectionError):
        await refund_payment(unreachable, event_id=event(), order_id=paid)
    await refund_payment(res, event_id=event(), order_id=paid)
    assert (counted(REFUNDS, "refunded"), counted(REFUNDS, "error")) == (refunded + 1, errors + 1)


# -- paying again after a decline ----------------------------------------------------------------

INSUFFICIENT = PaymentMethod("test", "tok_insufficient_funds_0000000000000000", "visa", "9995")


async def retry(conn: asyncpg.Connection, order_id: int, method: PaymentMethod, key: str) -> int:
    """Another card for the order, as the storefront and the API give it; the attempt number."""
    async with conn.transaction():
        new = payments.NewAttempt(method, key, key.encode())
        return (await payments.retry_payment(conn, order_id, new)).attempt


async def test_another_card_after_a_decline_pays_the_order_with_a_key_of_its_own(
    res, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 2)], payment=DECLINED)).id
    first = event()
    await capture_payment(res, event_id=first, order_id=order_id)
    assert await retry(conn, order_id, PAID, "pay-again-1") == 2
    captures = await conn.fetch(
        "SELECT event_id FROM outbox WHERE actor_name = 'orders.capture_payment'"
        " AND (payload->>'order_id')::bigint = $1 ORDER BY created_at, event_id",
        order_id,
    )
    assert len(captures) == 2  # checkout's, and the retry's own event for the same actor
    second = captures[-1]
    await capture_payment(res, event_id=str(second["event_id"]), order_id=order_id)
    detail = await orders.detail(conn, await orders.get(conn, order_id))
    assert detail.order.status == "confirmed"
    assert detail.payment is not None
    assert (detail.payment.status, detail.payment.card_last4) == ("captured", "4242")
    assert (detail.payment.attempt, detail.payment.decline_code) == (2, None)
    ledger = await conn.fetch(
        "SELECT idempotency_key, outcome FROM test_gateway_charges ORDER BY idempotency_key"
    )
    assert [(r["idempotency_key"], r["outcome"]) for r in ledger] == [
        (capture_key(order_id), "declined:card_declined"),
        (capture_key(order_id, 2), "captured"),
    ]
    assert await stock_of(conn, tee["TEE"]) == 3  # taken once, by the order
    # The first attempt's event, delivered again late, finds the attempt answered.
    await capture_payment(res, event_id=event(), order_id=order_id)
    assert await conn.fetchval("SELECT sum(attempts) FROM test_gateway_charges") == 2


async def test_a_second_declined_card_leaves_the_order_payable(res, conn, fresh_db) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 1)], payment=DECLINED)).id
    await capture_payment(res, event_id=event(), order_id=order_id)
    assert await retry(conn, order_id, INSUFFICIENT, "pay-again-1") == 2
    await capture_payment(res, event_id=event(), order_id=order_id)
    detail = await orders.detail(conn, await orders.get(conn, order_id))
    assert detail.order.status == "pending"
    assert detail.payment is not None
    assert (detail.payment.status, detail.payment.decline_code) == (
        "declined",
        "insufficient_funds",
    )
    assert detail.payment.card_last4 == "9995"
    assert await retry(conn, order_id, PAID, "pay-again-2") == 3  # still payable
    await capture_payment(res, event_id=event(), order_id=order_id)
    assert (await orders.get(conn, order_id)).status == "confirmed"
    assert await stock_of(conn, tee["TEE"]) == 4


async def test_the_expiry_cancels_a_declined_order_in_time_and_returns_its_stock(
    res, conn, fresh_db
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 5})
    declined = (await place_order(conn, [(tee["TEE"], 2)], payment=DECLINED)).id
    recent = (await place_order(conn, [(tee["TEE"], 1)], payment=DECLINED)).id
    for order_id in (declined, recent):
        await capture_payment(res, event_id=event(), order_id=order_id)
    await make_old(conn, res.settings.unpaid_order_minutes, [declined])
    await expire_unpaid(res)
    detail = await orders.detail(conn, await orders.get(conn, declined))
    assert detail.order.status == "cancelled"
    assert detail.transitions[-1].note == (
        "the card was declined and no other card paid within 30 minutes"
    )
    assert detail.payment is not None and detail.payment.status == "declined"
    assert (await orders.get(conn, recent)).status == "pending"  # still in its time
    assert await stock_of(conn, tee["TEE"]) == 4  # the expired order's 2 back, 1 still held
    # The gateway was never asked again: the decline was recorded.
    assert await conn.fetchval("SELECT sum(attempts) FROM test_gateway_charges") == 2
    with pytest.raises(OrderNotPayable) as refused:
        await retry(conn, declined, PAID, "too-late")
    assert refused.value.reason == "cancelled"
