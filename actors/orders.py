"""The orders queue: capture an order's payment, cancel the unpaid, tell staff of low stock.

Every actor that acts on an event records it in the inbox in the transaction of its effect, so
a redelivered message changes nothing twice. The payment capture calls the gateway inside that
transaction with an idempotency key per order: if the worker dies after the gateway charged and
before the commit, the redelivery captures again with the same key, and the gateway answers
with the first charge instead of charging twice.
"""

from __future__ import annotations

import uuid

import structlog

from actors.mail.render import render_low_stock_email
from actors.mail.transport import deliver
from actors.registry import handles
from actors.resources import Resources
from domain.events import CAPTURE_PAYMENT, CHECK_STOCK, EXPIRE_UNPAID, REFUND_PAYMENT
from domain.money import Money
from domain.payments import DECLINE_MESSAGES
from storage import inbox, orders, stock, users
from storage.errors import OrderNotFound

log = structlog.get_logger(__name__)

EXPIRY_BATCH = 100


def capture_key(order_id: int) -> str:
    """The gateway idempotency key of an order's capture: one charge per order, ever."""
    return f"order-{order_id}-capture"


@handles(CAPTURE_PAYMENT, max_retries=20, throws=(OrderNotFound,))
async def capture_payment(res: Resources, event_id: str, order_id: int) -> None:
    """Capture a pending order's payment: confirmed when it succeeds, cancelled (stock back)
    when the card is declined. An order no longer pending (cancelled as unpaid) is left alone."""
    async with res.db.primary.acquire() as conn, conn.transaction():
        if not await inbox.first_delivery(conn, CAPTURE_PAYMENT, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", order_id=order_id)
            return
        order = await orders.lock(conn, order_id)
        if order.status != "pending":
            log.info("payment.skipped", order_id=order_id, status=order.status)
            return
        payment = await orders.payment_of(conn, order_id)
        if payment is None:
            raise OrderNotFound(order.number)  # an order always has one: not worth retrying
        result = await res.gateway.capture(
            payment.method, Money(payment.amount, payment.currency), capture_key(order_id)
        )
        if result.outcome == "captured":
            await orders.set_payment(conn, order_id, "captured", reference=result.reference)
            await orders.transition(conn, order_id, "confirmed", actor="system", note="paid")
        else:
            code = result.decline_code or "declined"
            await orders.set_payment(
                conn, order_id, "declined", reference=result.reference, decline_code=code
            )
            await orders.transition(
                conn,
                order_id,
                "cancelled",
                actor="system",
                note=DECLINE_MESSAGES.get(code, "The payment was declined."),
            )
    log.info("payment.processed", order_id=order_id, outcome=result.outcome)


def refund_key(order_id: int) -> str:
    """The gateway idempotency key of an order's refund: one refund per order, ever."""
    return f"order-{order_id}-refund"


@handles(REFUND_PAYMENT, max_retries=20, throws=(OrderNotFound,))
async def refund_payment(res: Resources, event_id: str, order_id: int) -> None:
    """Give a cancelled order's captured payment back, once (the key makes a retry harmless)."""
    async with res.db.primary.acquire() as conn, conn.transaction():
        if not await inbox.first_delivery(conn, REFUND_PAYMENT, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", order_id=order_id)
            return
        order = await orders.lock(conn, order_id)
        payment = await orders.payment_of(conn, order_id)
        if order.status != "cancelled" or payment is None or payment.status != "captured":
            log.info("refund.skipped", order_id=order_id, status=order.status)
            return
        assert payment.reference is not None  # a captured payment has its capture's reference
        reference = await res.gateway.refund(
            payment.reference, Money(payment.amount, payment.currency), refund_key(order_id)
        )
        await orders.set_refunded(conn, order_id, reference)
    log.info("payment.refunded", order_id=order_id, amount=payment.amount)


@handles(EXPIRE_UNPAID, max_retries=3)
async def expire_unpaid(res: Resources) -> None:
    """Cancel pending orders older than UNPAID_ORDER_MINUTES, returning their stock.

    Sent every minute by the relay; several at once are harmless (locked orders are skipped,
    and an order is cancelled only while still pending).
    """
    minutes = res.settings.unpaid_order_minutes
    cancelled = 0
    while True:
        async with res.db.primary.acquire() as conn, conn.transaction():
            due = await orders.unpaid_order_ids(conn, minutes * 60, EXPIRY_BATCH)
            for order_id in due:
                await orders.transition(
                    conn,
                    order_id,
                    "cancelled",
                    actor="system",
                    note=f"not paid within {minutes} minutes",
                )
        cancelled += len(due)
        if len(due) < EXPIRY_BATCH:
            break
    if cancelled:
        log.info("orders.expired", count=cancelled)


@handles(CHECK_STOCK, max_retries=10)
async def check_stock(res: Resources, event_id: str, variant_ids: list[int]) -> None:
    """Email staff (one message to all active staff and admins) the variants among `variant_ids`
    at or below LOW_STOCK_THRESHOLD units, each once until it is restocked (storage.stock).
    Idempotent: a redelivered event sends nothing."""
    threshold = res.settings.low_stock_threshold
    # Sent inside the transaction that records the event, as actors.email explains.
    async with res.db.primary.acquire() as conn, conn.transaction():
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
        await deliver(res.settings, ", ".join(recipients), rendered, event_id=event_id)
    log.info("email.sent", kind="low_stock", skus=skus, recipients=len(recipients))
