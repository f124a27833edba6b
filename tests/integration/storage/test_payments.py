"""storage.payments.retry_payment: another card for a declined order, in one transaction under
the order's lock; one attempt per Idempotency-Key; refused unless the last card was declined."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage import payments
from storage.database import connect
from storage.errors import IdempotencyKeyReused, OrderNotPayable
from tests.support.orders import DECLINED, PAID, place_order, stocked_product

CAPTURES = "SELECT count(*) FROM outbox WHERE actor_name = 'orders.capture_payment'"


async def declined_order(conn: asyncpg.Connection, dsn: str) -> int:
    tee = await stocked_product(dsn, "tee", {"TEE": 5})
    order_id = (await place_order(conn, [(tee["TEE"], 1)], payment=DECLINED)).id
    await conn.execute(
        "UPDATE payments SET status = 'declined', decline_code = 'card_declined',"
        " failed_attempts = 1 WHERE order_id = $1",
        order_id,
    )
    return order_id


async def retry(dsn: str, order_id: int, key: str, digest: bytes) -> payments.Retried:
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            return await payments.retry_payment(
                conn, order_id, payments.NewAttempt(PAID, key, digest)
            )
    finally:
        await conn.close()


async def test_one_key_sent_ten_times_at_once_is_one_attempt(conn, fresh_db) -> None:
    order_id = await declined_order(conn, fresh_db)
    done = await asyncio.gather(*(retry(fresh_db, order_id, "k", b"card") for _ in range(10)))
    assert sorted(r.created for r in done) == [False] * 9 + [True]
    assert {r.attempt for r in done} == {2}
    assert await conn.fetchval(CAPTURES) == 2  # checkout's, and this attempt's
    row = await conn.fetchrow(
        "SELECT status, attempt, card_last4, decline_code, failed_attempts FROM payments"
    )
    assert dict(row) == {
        "status": "pending",
        "attempt": 2,
        "card_last4": "4242",
        "decline_code": None,
        "failed_attempts": 0,  # the new attempt's capture has not run: nothing to expire yet
    }


async def test_refusals_name_their_reason(conn, fresh_db) -> None:
    order_id = await declined_order(conn, fresh_db)
    await retry(fresh_db, order_id, "k", b"card")
    with pytest.raises(IdempotencyKeyReused):
        await retry(fresh_db, order_id, "k", b"another card")
    with pytest.raises(OrderNotPayable) as busy:  # its capture has not answered yet
        await retry(fresh_db, order_id, "k2", b"card")
    assert busy.value.reason == "processing"
    await conn.execute("UPDATE payments SET status = 'captured'")
    await conn.execute("UPDATE orders SET status = 'confirmed'")
    with pytest.raises(OrderNotPayable) as paid:
        await retry(fresh_db, order_id, "k3", b"card")
    assert (paid.value.reason, str(paid.value)) == ("paid", "This order is already paid.")
    assert await conn.fetchval("SELECT count(*) FROM payment_attempts") == 1
