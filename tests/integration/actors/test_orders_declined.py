"""A declined card through the real broker path, on RabbitMQ and on Redis: the relay publishes
the checkout's capture, a Dramatiq worker declines it and the order stays pending with its stock
held; another card is a new event for the same actor, which pays it (or declines it again, and
the order stays payable); the unpaid-order expiry, sent through the broker as the relay's tick
sends it, cancels a declined order past UNPAID_ORDER_MINUTES and returns its stock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import dramatiq
import pytest

from actors.broker import build_broker
from configs.settings import Settings
from domain.events import EXPIRE_UNPAID
from domain.payments import PaymentMethod
from storage import payments
from tests.support.orders import DECLINED, PAID, place_order, stock_of, stocked_product
from tests.support.relays import relaying

INSUFFICIENT = PaymentMethod("test", "tok_insufficient_funds_0000000000000000", "visa", "9995")
STATE = "SELECT o.status, p.status AS payment, p.attempt FROM orders o JOIN payments p ON p.order_id = o.id WHERE o.id = $1"  # noqa: E501


@pytest.fixture(params=["rabbitmq", "redis"])
def broker_settings(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., Settings],
    fresh_db: str,
    broker_url: str,
    redis_url: str,
) -> Settings:
    """Settings whose broker is this run's RabbitMQ vhost, or its Redis database."""
    chosen = broker_url if request.param == "rabbitmq" else redis_url
    return settings_for(fresh_db, broker_url=chosen)


@pytest.fixture
async def running(broker_settings: Settings) -> AsyncIterator[dramatiq.Broker]:
    """The relay and an in-process worker on the chosen broker, as a shop runs them."""
    broker = build_broker(broker_settings)
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        async with relaying(str(broker_settings.database_url), broker):
            yield broker
    finally:
        await asyncio.to_thread(worker.stop)
        broker.flush_all()
        broker.close()


async def state(conn: asyncpg.Connection, order_id: int) -> tuple[Any, ...]:
    row = await conn.fetchrow(STATE, order_id)
    return (row["status"], row["payment"], row["attempt"])


async def becomes(conn: asyncpg.Connection, order_id: int, wanted: tuple[Any, ...]) -> None:
    """Wait (30 s at most) until the order and its payment reach `wanted`."""
    deadline = asyncio.get_running_loop().time() + 30
    while (now := await state(conn, order_id)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, now
        await asyncio.sleep(0.1)


async def pay_with(
    conn: asyncpg.Connection, order_id: int, method: PaymentMethod, key: str
) -> None:
    async with conn.transaction():
        await payments.retry_payment(conn, order_id, payments.NewAttempt(method, key, b"d"))


async def test_declined_then_paid_declined_again_and_expired(
    running: dramatiq.Broker, broker_settings: Settings, conn: asyncpg.Connection, fresh_db: str
) -> None:
    tee = await stocked_product(fresh_db, "tee", {"TEE": 10})
    paid_later = (await place_order(conn, [(tee["TEE"], 2)], payment=DECLINED)).id
    left_unpaid = (await place_order(conn, [(tee["TEE"], 3)], payment=DECLINED)).id
    for order_id in (paid_later, left_unpaid):
        await becomes(conn, order_id, ("pending", "declined", 1))
    assert await stock_of(conn, tee["TEE"]) == 5  # both still hold their units

    await pay_with(conn, paid_later, PAID, "again-1")
    await becomes(conn, paid_later, ("confirmed", "captured", 2))
    await pay_with(conn, left_unpaid, INSUFFICIENT, "again-1")
    await becomes(conn, left_unpaid, ("pending", "declined", 2))  # still payable

    minutes = broker_settings.unpaid_order_minutes
    await conn.execute(
        "UPDATE orders SET placed_at = now() - make_interval(mins => $1 + 1)", minutes
    )
    running.enqueue(running.get_actor(EXPIRE_UNPAID.name).message())  # the relay's tick
    await becomes(conn, left_unpaid, ("cancelled", "declined", 2))
    assert await state(conn, paid_later) == ("confirmed", "captured", 2)
    assert await stock_of(conn, tee["TEE"]) == 8  # the cancelled order's 3 back
    ledger = await conn.fetch("SELECT idempotency_key FROM test_gateway_charges ORDER BY 1")
    assert [r["idempotency_key"] for r in ledger] == sorted(
        [f"order-{i}-capture{s}" for i in (paid_later, left_unpaid) for s in ("", "-2")]
    )
