"""Paying an order again after a decline: a new capture attempt with another card.

`retry_payment` runs in the caller's transaction on the primary:
1. the order is locked (a capture holds the same lock, so the two take turns);
2. an attempt already made with this Idempotency-Key is the answer (a double submit starts
   nothing; the same key with another card is IdempotencyKeyReused);
3. the order must take another card (domain.payments.retry_refusal: pending, its last capture
   declined), else OrderNotPayable;
4. the payment becomes the new card's (pending, the attempt number one higher, the decline and
   failure counts cleared), the attempt is recorded, and the outbox gets a CAPTURE_PAYMENT
   event: the same actor as checkout's capture, which captures with the attempt's own gateway
   key (actors.orders.capture_key).
The stock stays held by the order throughout; the unpaid-order expiry still cancels it if no
card has paid by UNPAID_ORDER_MINUTES after it was placed.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from domain.events import CAPTURE_PAYMENT
from domain.payments import PaymentMethod, retry_refusal
from storage import order_payments, orders, outbox
from storage.errors import IdempotencyKeyReused, OrderNotFound, OrderNotPayable
from storage.orders import Order

FIND_ATTEMPT = """
    SELECT attempt, request_digest FROM payment_attempts
    WHERE order_id = $1 AND idempotency_key = $2
"""
INSERT_ATTEMPT = """
    INSERT INTO payment_attempts (order_id, attempt, idempotency_key, request_digest,
                                  card_brand, card_last4)
    VALUES ($1, $2, $3, $4, $5, $6)
"""
NEW_ATTEMPT = """
    UPDATE payments SET gateway = $2, token = $3, card_brand = $4, card_last4 = $5,
                        status = 'pending', decline_code = NULL, reference = NULL,
                        failed_attempts = 0, last_error = NULL, attempt = $6, updated_at = now()
    WHERE order_id = $1
"""


@dataclass(frozen=True)
class NewAttempt:
    """Another card for an order: its token, and the request's Idempotency-Key and digest."""

    payment: PaymentMethod
    idempotency_key: str
    digest: bytes
    request_id: str | None = None


@dataclass(frozen=True)
class Retried:
    order: Order
    attempt: int
    created: bool  # False: an earlier request with the same Idempotency-Key made this attempt


async def retry_payment(conn: asyncpg.Connection, order_id: int, new: NewAttempt) -> Retried:
    """Start a new capture attempt of the order with `new.payment`, in the caller's transaction.

    Raises OrderNotFound, IdempotencyKeyReused and OrderNotPayable."""
    order = await orders.lock(conn, order_id)
    earlier = await conn.fetchrow(FIND_ATTEMPT, order_id, new.idempotency_key)
    if earlier is not None:
        if earlier["request_digest"] != new.digest:
            raise IdempotencyKeyReused(new.idempotency_key)
        return Retried(order, earlier["attempt"], created=False)
    payment = await order_payments.payment_of(conn, order_id)
    if payment is None:
        raise OrderNotFound(order.number)
    refusal = retry_refusal(order.status, payment.status)
    if refusal is not None:
        raise OrderNotPayable(order.number, refusal)
    attempt = payment.attempt + 1
    method = new.payment
    await conn.execute(
        INSERT_ATTEMPT,
        order_id,
        attempt,
        new.idempotency_key,
        new.digest,
        method.brand,
        method.last4,
    )
    await conn.execute(
        NEW_ATTEMPT, order_id, method.gateway, method.token, method.brand, method.last4, attempt
    )
    await outbox.add(conn, CAPTURE_PAYMENT, new.request_id, order_id=order_id)
    return Retried(order, attempt, created=True)
