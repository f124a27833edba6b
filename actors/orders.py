"""The orders queue: capture an order's payment, cancel the unpaid, tell staff of low stock.

Every actor that acts on an event records it in the inbox in the transaction of its effect, so
a redelivered message changes nothing twice. The payment capture calls the gateway inside that
transaction with an idempotency key per capture attempt: if the worker dies after the gateway
charged and before the commit, the redelivery captures again with the same key, and the gateway
answers with the first charge instead of charging twice. A declined card leaves the order
pending, its stock held, for the customer to pay with another card (storage.payments: a new
attempt, a new CAPTURE_PAYMENT event, the next key). The unpaid-order expiry cancels what is
still unpaid UNPAID_ORDER_MINUTES after placing, asking the gateway by the current attempt's key
first, so a charge the shop never recorded confirms the order.
"""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg
import prometheus_client
import structlog

from actors.mail import deliveries
from actors.mail.render import render_low_stock_email
from actors.registry import handles
from actors.resources import Resources
from domain.events import (
    CAPTURE_PAYMENT,
    CHECK_STOCK,
    EXPIRE_UNPAID,
    MAKE_REFUND,
    REFUND_PAYMENT,
    SEND_ORDER_EMAIL,
    SEND_REFUND_EMAIL,
)
from domain.money import Money
from domain.payments import Capture
from storage import inbox, order_payments, orders, outbox, refunds, stock, users
from storage.errors import OrderNotFound
from storage.orders import Order
from storage.refunds import RefundNotFound

log = structlog.get_logger(__name__)

EXPIRY_BATCH = 100
EXPIRY_MAX_BATCHES = 50  # per tick: the next one goes on
ACQUIRE_TIMEOUT_SECONDS = 10.0
MAX_ERROR_CHARACTERS = 500

CAPTURES = prometheus_client.Counter(
    "aioshop_payment_captures_total",
    "Payment captures recorded (captured, declined), or whose gateway call failed (error).",
    ["result"],
)
REFUNDS = prometheus_client.Counter(
    "aioshop_payment_refunds_total",
    "Refunds recorded (refunded), or whose gateway call failed (error).",
    ["result"],
)


def capture_key(order_id: int, attempt: int = 1) -> str:
    """The gateway idempotency key of an order's capture attempt: one charge per attempt, ever
    (attempt 1 is the checkout's card; later ones are cards given after a decline)."""
    return f"order-{order_id}-capture" + (f"-{attempt}" if attempt > 1 else "")


@handles(CAPTURE_PAYMENT, max_retries=20, throws=(OrderNotFound,))
async def capture_payment(res: Resources, event_id: str, order_id: int) -> None:
    """Capture a pending order's payment (its current attempt): confirmed when it succeeds;
    declined leaves it pending, its stock held, the decline recorded for the customer to see and
    pay with another card. An order no longer pending (cancelled, or confirmed by the expiry
    that found the capture at the gateway), or whose current attempt is decided already (an
    earlier attempt's event delivered late), is left alone. A gateway call that fails is counted
    on the payment (what `expire_unpaid` looks for) and raised for a retry."""
    gateway_error: Exception | None = None
    try:
        async with res.db.primary.acquire() as conn, conn.transaction():
            if not await inbox.first_delivery(conn, CAPTURE_PAYMENT, uuid.UUID(event_id)):
                log.info("event.skipped_duplicate", order_id=order_id)
                return
            order = await orders.lock(conn, order_id)
            if order.status != "pending":
                log.info("payment.skipped", order_id=order_id, status=order.status)
                return
            payment = await order_payments.payment_of(conn, order_id)
            if payment is None:
                raise OrderNotFound(order.number)  # an order always has one: not worth retrying
            if payment.status != "pending":  # this attempt was answered: a new card starts anew
                log.info("payment.skipped", order_id=order_id, payment=payment.status)
                return
            key = capture_key(order_id, payment.attempt)
            try:
                result = await res.gateway.capture(
                    payment.method, Money(payment.amount, payment.currency), key
                )
            except Exception as exc:
                gateway_error = exc
                raise
            await apply_capture(conn, order_id, result, locked=order)
            if result.outcome != "captured":  # the customer is told why, and where to pay again
                await outbox.add(conn, SEND_ORDER_EMAIL, order_id=order_id, kind="payment_declined")
    except Exception:
        if gateway_error is not None:  # after the rollback, in a transaction of its own
            CAPTURES.labels("error").inc()
            await _count_failed_capture(res, order_id, gateway_error)
        raise
    CAPTURES.labels("captured" if result.outcome == "captured" else "declined").inc()
    log.info("payment.processed", order_id=order_id, outcome=result.outcome)


async def apply_capture(
    conn: asyncpg.Connection, order_id: int, result: Capture, *, locked: Order | None = None
) -> None:
    """Record the gateway's answer on a pending order (locked by the caller): captured confirms
    it; declined records the decline and leaves the order pending, its stock held, until the
    customer pays with another card or the unpaid-order expiry cancels it. `locked`: the order
    as the caller read it under that lock, if it has it (orders.transition need not lock again)."""
    if result.outcome == "captured":
        await order_payments.set_payment(conn, order_id, "captured", reference=result.reference)
        await orders.transition(
            conn, order_id, "confirmed", actor="system", note="paid", locked=locked
        )
        return
    code = result.decline_code or "declined"
    await order_payments.set_payment(
        conn, order_id, "declined", reference=result.reference, decline_code=code
    )


async def _count_failed_capture(res: Resources, order_id: int, error: Exception) -> None:
    try:
        async with res.db.primary.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
            await order_payments.count_failed_capture(
                conn, order_id, repr(error)[:MAX_ERROR_CHARACTERS]
            )
    except Exception as exc:  # the retry still comes; only the count is lost
        log.warning("payment.failure_not_counted", order_id=order_id, error=repr(exc))


def refund_key(order_id: int) -> str:
    """The gateway idempotency key of a cancelled order's refund of what was left: once."""
    return f"order-{order_id}-refund"


def partial_refund_key(refund_id: int) -> str:
    """The gateway idempotency key of one refund (storage.refunds): one refund per row, ever."""
    return f"refund-{refund_id}"


@handles(REFUND_PAYMENT, max_retries=20, throws=(OrderNotFound,))
async def refund_payment(res: Resources, event_id: str, order_id: int) -> None:
    """Give back what is left of a cancelled order's captured payment (all of it, unless staff
    refunded part before), once: the rest is recorded as a system refund (storage.refunds) in
    this transaction, and the key makes a retry after a lost answer harmless."""
    async with res.db.primary.acquire() as conn, conn.transaction():
        if not await inbox.first_delivery(conn, REFUND_PAYMENT, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", order_id=order_id)
            return
        order = await orders.lock(conn, order_id)
        payment = await order_payments.payment_of(conn, order_id)
        if order.status != "cancelled" or payment is None or payment.status != "captured":
            log.info("refund.skipped", order_id=order_id, status=order.status)
            return
        rest = payment.amount - payment.refunded_amount
        if rest <= 0:  # refunded part by part already; their own refunds settle the payment
            log.info("refund.skipped", order_id=order_id, reason="nothing_left")
            return
        assert payment.reference is not None  # a captured payment has its capture's reference
        key = refund_key(order_id)
        refund = await refunds.record_rest(
            conn, order_id, rest, payment.currency, uuid.uuid5(uuid.NAMESPACE_URL, key)
        )
        try:
            reference = await res.gateway.refund(
                payment.reference, Money(rest, payment.currency), key
            )
        except Exception:
            REFUNDS.labels("error").inc()
            raise
        await refunds.mark_refunded(conn, refund, reference)
    REFUNDS.labels("refunded").inc()
    log.info("payment.refunded", order_id=order_id, amount=rest)


@handles(MAKE_REFUND, max_retries=20, throws=(RefundNotFound,))
async def make_refund(res: Resources, event_id: str, refund_id: int) -> None:
    """Give back one refund staff asked for (storage.refunds.request) through the payment
    provider, once: a redelivered event is skipped by the inbox, a refund already given is
    skipped, and the key `refund-<id>` makes a retry after a lost answer harmless."""
    async with res.db.primary.acquire() as conn, conn.transaction():
        if not await inbox.first_delivery(conn, MAKE_REFUND, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", refund_id=refund_id)
            return
        refund = await refunds.lock(conn, refund_id)
        if refund.status == "refunded":
            log.info("refund.skipped", refund_id=refund_id, reason="done")
            return
        payment = await order_payments.payment_of(conn, refund.order_id)
        if payment is None or payment.reference is None:
            raise RefundNotFound(refund_id)  # a refund has a captured payment: no use retrying
        try:
            reference = await res.gateway.refund(
                payment.reference,
                Money(refund.amount, refund.currency),
                partial_refund_key(refund_id),
            )
        except Exception:
            REFUNDS.labels("error").inc()
            raise
        await refunds.mark_refunded(conn, refund, reference)
        await outbox.add(conn, SEND_REFUND_EMAIL, refund_id=refund_id)  # the customer is told
    REFUNDS.labels("refunded").inc()
    log.info(
        "payment.refunded", order_id=refund.order_id, refund_id=refund_id, amount=refund.amount
    )


@handles(EXPIRE_UNPAID, max_retries=3)
async def expire_unpaid(res: Resources) -> None:
    """Settle the orders still pending UNPAID_ORDER_MINUTES after they were placed whose capture
    was declined (and no other card paid since) or tried and failed
    (`storage.order_payments.unpaid_orders`). A declined one is cancelled, its stock returned. For a
    failed one the gateway is asked first what became of the capture: one it captured confirms
    the order, and one it declined or never saw cancels it as unpaid, its stock returned.

    An order whose capture has not run yet is never touched, however late the queue is: its
    capture decides. A gateway that does not answer leaves the order for the next tick. Sent
    every minute by the relay; several at once are harmless (each order is settled under its
    lock, skipped while a capture or another expiry holds it, and only while still unpaid).
    """
    minutes = res.settings.unpaid_order_minutes
    outcomes: Counter[str] = Counter()
    after: order_payments.Unpaid | None = None
    for _ in range(EXPIRY_MAX_BATCHES):
        due = await order_payments.unpaid_orders(res.db.primary, minutes * 60, after, EXPIRY_BATCH)
        for order in due:
            outcome = await _expire_one(res, order.id, minutes)
            outcomes[outcome] += 1
            if outcome in ("confirmed", "declined"):  # a capture found at the gateway, recorded
                CAPTURES.labels("captured" if outcome == "confirmed" else "declined").inc()
        if len(due) < EXPIRY_BATCH:
            break
        after = due[-1]
    outcomes.pop("skipped", None)
    if outcomes:
        log.info("orders.expired", **outcomes)


async def _expire_one(res: Resources, order_id: int, minutes: int) -> str:
    """Settle one unpaid order under its lock; what became of it."""
    async with res.db.primary.acquire() as conn, conn.transaction():
        payment_status = await order_payments.lock_unpaid(conn, order_id, minutes * 60)
        if payment_status is None:
            return "skipped"  # paid or cancelled meanwhile, or a capture holds it now
        outcome = "cancelled"
        if payment_status != "declined":  # a capture that failed: did it reach the gateway?
            payment = await order_payments.payment_of(conn, order_id)
            attempt = payment.attempt if payment is not None else 1
            try:
                found = await res.gateway.find_capture(capture_key(order_id, attempt))
            except Exception as exc:  # not knowing is no reason to cancel: the next tick asks
                log.warning("orders.expiry_deferred", order_id=order_id, error=repr(exc))
                return "deferred"
            if found is not None:  # the gateway has the capture the shop never recorded
                await apply_capture(conn, order_id, found)
                log.info("payment.found_at_gateway", order_id=order_id, outcome=found.outcome)
                if found.outcome == "captured":
                    return "confirmed"
                outcome = "declined"
        declined = payment_status == "declined" or outcome == "declined"
        await orders.transition(
            conn,
            order_id,
            "cancelled",
            actor="system",
            note=(
                f"the card was declined and no other card paid within {minutes} minutes"
                if declined
                else f"not paid within {minutes} minutes"
            ),
        )
        return outcome


@handles(CHECK_STOCK, max_retries=10)
async def check_stock(res: Resources, event_id: str, variant_ids: list[int]) -> None:
    """Email staff (one message to all active staff and admins) the variants among `variant_ids`
    at or below LOW_STOCK_THRESHOLD units, each once until it is restocked (storage.stock).
    Idempotent: a redelivered event sends nothing."""
    threshold = res.settings.low_stock_threshold
    # Sent inside the transaction that records the event, as actors.email explains; the attempt
    # is written to the delivery log after it (actors.mail.deliveries).
    async with (
        deliveries.logged(res.db, CHECK_STOCK, event_id) as mail,
        res.db.primary.acquire() as conn,
        mail.on(conn),
        conn.transaction(),
    ):
        if not await inbox.first_delivery(conn, CHECK_STOCK, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", variant_ids=variant_ids)
            return
        # On the primary: the stock just taken. Only what staff have not heard of at this level.
        low = await stock.low_stock_to_tell(conn, variant_ids, threshold)
        if not low:
            return
        skus = [level.sku for level in low]
        recipients = await users.staff_emails(conn)
        if not recipients:
            log.info("email.skipped", reason="no_staff", kind="low_stock", skus=skus)
            return
        rendered = render_low_stock_email(
            shop_name=res.settings.shop_name,
            public_url=str(res.settings.public_url),
            levels=low,
            threshold=threshold,
        )
        await mail.deliver(
            res.settings, ", ".join(recipients), rendered, kind="low_stock", message_id=event_id
        )
    log.info("email.sent", kind="low_stock", skus=skus, recipients=len(recipients))
