"""Order emails and the low-stock notice for real: an order placed in storage, its outbox event
through the relay and RabbitMQ to the worker's actor, and the message into an SMTP server."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
import dramatiq
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from actors.relay import Relay
from domain import events
from domain.events import SEND_ORDER_EMAIL
from storage import orders, outbox, refunds
from storage.database import connect, create_pool
from storage.orders import Order
from tests.support.orders import ADDRESS, DECLINED, place_order, stocked_product
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

PUBLIC_URL = "https://shop.example/"
ORDER_EMAIL = SEND_ORDER_EMAIL.name
REFUND_EMAIL = events.SEND_REFUND_EMAIL.name
CHECK_STOCK = events.CHECK_STOCK.name
THRESHOLD = 3
QUIET_SECONDS = 0.5  # how long to watch for an email that must not come
# Marks every waiting outbox event published except the one a test relays, so that a test sees
# only the message it is about (placing an order also asks for a capture and a stock check).
SKIP_OTHER_EVENTS = """
    UPDATE outbox SET published_at = now()
    WHERE published_at IS NULL
      AND NOT (actor_name = $1 AND payload->>'kind' IS NOT DISTINCT FROM $2)
"""
WAITING_EVENT = "SELECT payload FROM outbox WHERE published_at IS NULL"
BY_CHECK = f"WHERE consumer = '{CHECK_STOCK}'"


@pytest.fixture
def settings_overrides(smtp: SmtpServer) -> dict[str, Any]:
    """Mail goes to `smtp`."""
    return {"smtp_url": smtp.url, "public_url": PUBLIC_URL, "low_stock_threshold": THRESHOLD}


@dataclass(frozen=True)
class Shop:
    """The test's database, broker (with a worker running) and SMTP server, and what a test
    does with them."""

    dsn: str
    conn: asyncpg.Connection
    broker: dramatiq.Broker
    smtp: SmtpServer

    async def product(self, slug: str, stocks: dict[str, int], **options: Any) -> dict[str, int]:
        return await stocked_product(self.dsn, slug, stocks, **options)

    async def place_order(self, lines: list[tuple[int, int]], **changes: Any) -> Order:
        """What checkout does: the order and its outbox events in one transaction."""
        return await place_order(self.conn, lines, **changes)

    async def relay(self, actor: str, kind: str | None = None) -> dict[str, Any]:
        """Publish the one waiting event of `actor` (and `kind`) through the relay; its payload."""
        await self.conn.execute(SKIP_OTHER_EVENTS, actor, kind)
        [row] = await self.conn.fetch(WAITING_EVENT)
        pool = await create_pool(self.dsn, 2)
        try:
            # One batch: the one event (a drain would also publish what its actor, already
            # running in the worker, writes meanwhile).
            assert await Relay(pool, self.broker).publish_batch() == 1
        finally:
            await pool.close()
        payload: dict[str, Any] = row["payload"]
        return payload

    async def order_email(self, kind: str) -> tuple[EmailMessage, str, str]:
        """Relay the waiting order email of `kind`; the one message it sends, text and HTML."""
        await self.relay(ORDER_EMAIL, kind)
        assert await self.smtp.wait_for(1)
        [message] = self.smtp.messages
        return (message, *bodies(message))

    async def redeliver_twice(self, actor: str, payload: dict[str, Any]) -> None:
        """What the broker does after a lost ack: the same message (id and event_id) again."""
        message = (
            self.broker.get_actor(actor)
            .message_with_options(args=(), kwargs=payload)
            .copy(message_id=payload["event_id"])
        )
        for _ in range(2):
            await asyncio.to_thread(self.broker.enqueue, message)

    async def add_user(self, email: str, role: str, *, active: bool = True) -> None:
        await self.conn.execute(
            "INSERT INTO users (email, name, password_hash, role, is_active)"
            " VALUES ($1, $2, 'not-a-real-hash', $3, $4)",
            email,
            email.partition("@")[0],
            role,
            active,
        )

    async def became_true(self, query: str, *args: Any) -> bool:
        """Poll a boolean query every 50 ms for up to 15 s: True once it answers true."""
        for _ in range(300):
            if await self.conn.fetchval(query, *args):
                return True
            await asyncio.sleep(0.05)
        return False


@pytest.fixture
async def shop(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> AsyncIterator[Shop]:
    conn = await connect(fresh_db)
    yield Shop(fresh_db, conn, broker, smtp)
    await conn.close()


def bodies(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML part, with the wire's CRLF line ends back to LF."""
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return lf(text.get_content()), lf(html.get_content())


def lf(content: str) -> str:
    return content.replace("\r\n", "\n")


def logged(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


async def test_placed_email_sums_up_the_order_in_both_parts(shop: Shop) -> None:
    tee = await shop.product("tee", {"TEE-M": 5}, price=1500)
    mug = await shop.product("mug", {"MUG": 9}, price=1200)
    order = await shop.place_order([(tee["TEE-M"], 2), (mug["MUG"], 3)], tax_rate_bps=2000)
    message, text, html = await shop.order_email("placed")
    assert shop.smtp.recipients == [["ada@example.com"]]
    assert message["From"] == "aioshop <no-reply@shop.example>"
    assert message["Subject"] == f"We have your aioshop order {order.number}"
    link = f"https://shop.example/account/orders/{order.number}"
    assert "Hello Ada Lovelace," in text
    assert f"Order {order.number}, placed " in text
    assert "Tee - TEE-M\n  SKU TEE-M, 2 x €15.00: €30.00" in text
    assert "Mug - MUG\n  SKU MUG, 3 x €12.00: €36.00" in text
    assert "Subtotal: €66.00" in text
    assert "Shipping (Standard delivery (3-5 working days)): €0.00" in text  # free from €50
    assert "Tax (20%): €13.20" in text
    assert "Total: €79.20" in text
    assert "12 Analytical Row\nN1 7AA London\nUnited Kingdom" in text
    assert link in text
    assert f"Order {order.number}</h2>" in html
    for fragment in ("Tee - TEE-M", "SKU TEE-M", "€30.00", "€36.00", "€66.00", "€13.20"):
        assert fragment in html
    assert re.search(r"Total</td>\s*<td[^>]*>€79\.20</td>", html)
    assert "12 Analytical Row<br>" in html
    assert f'href="{link}"' in html


async def test_redelivered_order_email_is_sent_once(shop: Shop) -> None:
    mug = await shop.product("mug", {"MUG": 9})
    order = await shop.place_order([(mug["MUG"], 1)])
    with capture_logs(processors=[merge_contextvars]) as logs:
        payload = await shop.relay(ORDER_EMAIL, "placed")
        assert await shop.smtp.wait_for(1)
        assert await eventually(lambda: bool(logged(logs, "email.sent")))
        await shop.redeliver_twice(ORDER_EMAIL, payload)
        assert await eventually(lambda: len(logged(logs, "event.skipped_duplicate")) == 2)
        await asyncio.sleep(QUIET_SECONDS)
    assert len(shop.smtp.messages) == 1
    assert [(e["order_id"], e["kind"]) for e in logged(logs, "email.sent")] == [
        (order.id, "placed")
    ]
    inbox = await shop.conn.fetch("SELECT consumer FROM processed_events")
    assert [row["consumer"] for row in inbox] == [ORDER_EMAIL]
    # One attempt in the delivery log: the duplicates sent nothing, so they logged nothing.
    log = await shop.conn.fetch("SELECT kind, recipient, result, attempt FROM email_deliveries")
    assert [tuple(row) for row in log] == [("order_placed", "ada@example.com", "sent", 1)]


async def test_shipped_email_carries_the_tracking_number(shop: Shop) -> None:
    mug = await shop.product("mug", {"MUG": 9})
    order = await shop.place_order([(mug["MUG"], 1)])
    async with shop.conn.transaction():
        await orders.transition(shop.conn, order.id, "confirmed", actor="system", note="paid")
        await orders.transition(
            shop.conn, order.id, "shipped", actor="staff", tracking_number="1Z999AA10123456784"
        )
    message, text, html = await shop.order_email("shipped")
    assert message["Subject"] == f"Your aioshop order {order.number} is on its way"
    assert "Tracking number: 1Z999AA10123456784" in text
    assert "<strong>1Z999AA10123456784</strong>" in html
    assert "Total: €14.95" in text  # €10.00 and €4.95 shipping
    assert "Tax" not in text and "Tax" not in html  # none charged: no line


async def test_a_declined_order_left_unpaid_gives_a_cancelled_email_with_the_reason(
    shop: Shop,
) -> None:
    mug = await shop.product("mug", {"MUG": 9})
    order = await shop.place_order([(mug["MUG"], 1)], payment=DECLINED)
    await shop.relay("orders.capture_payment")

    # The worker records the decline; the order waits for another card, and the customer is
    # told why, where to pay with another card, and until when.
    declined = "SELECT status = 'declined' FROM payments WHERE order_id = $1"
    assert await shop.became_true(declined, order.id)
    assert await shop.conn.fetchval("SELECT status FROM orders WHERE id = $1", order.id) == (
        "pending"
    )
    message, text, html = await shop.order_email("payment_declined")
    assert message["Subject"] == f"Your payment for aioshop order {order.number} was declined"
    assert "Your payment was declined: Your card was declined by its bank." in text
    pay_by = order.placed_at.astimezone(UTC) + timedelta(minutes=30)
    when = pay_by.strftime("%H:%M UTC on %-d %b %Y")
    assert f"held for you until\n{when}: pay with another card" in text
    link = f"https://shop.example/orders/{order.number}/thanks#pay"  # a guest's: the payment page
    assert f"Pay with another card: {link}" in text
    assert f'href="{link}"' in html and "Your card was declined by its bank.</strong>" in html
    assert f"until {when}" in html
    shop.smtp.messages.clear()
    # Past UNPAID_ORDER_MINUTES, the expiry (the relay's tick) cancels it, which asks for the email.
    await shop.conn.execute("UPDATE orders SET placed_at = now() - interval '31 minutes'")
    await asyncio.to_thread(
        shop.broker.enqueue, shop.broker.get_actor("orders.expire_unpaid").message()
    )
    cancelled = "SELECT status = 'cancelled' FROM orders WHERE id = $1"
    assert await shop.became_true(cancelled, order.id)
    message, text, html = await shop.order_email("cancelled")
    assert message["Subject"] == f"Your aioshop order {order.number} is cancelled"
    reason = "the card was declined and no other card paid within 30 minutes"
    assert f"Your order is cancelled.\nReason: {reason}" in text
    assert f"Reason: {reason}</p>" in html


async def test_a_refund_tells_the_customer_the_amount_and_what_remains(shop: Shop) -> None:
    mug = await shop.product("mug", {"MUG": 9}, price=1000)
    order = await shop.place_order([(mug["MUG"], 2)])  # €20.00 and €4.95 shipping
    await shop.relay("orders.capture_payment")
    assert await shop.became_true("SELECT status = 'confirmed' FROM orders WHERE id = $1", order.id)
    async with shop.conn.transaction():
        await refunds.request(
            shop.conn,
            order.id,
            request_key=uuid.uuid4(),
            lines={},
            amount=750,
            restock=False,
            reason="a chipped mug",
            actor="staff",
            locale="en_IE",
        )
    # The refund, then its email (one drain may publish both: the worker can be that quick).
    await shop.conn.execute(SKIP_OTHER_EVENTS, "orders.make_refund", None)
    pool = await create_pool(shop.dsn, 2)
    try:
        relay = Relay(pool, shop.broker)
        await relay.drain()
        given = "SELECT bool_and(status = 'refunded') FROM refunds WHERE order_id = $1"
        assert await shop.became_true(given, order.id)
        await relay.drain()
    finally:
        await pool.close()
    assert await shop.smtp.wait_for(1)
    payload = await shop.conn.fetchval(
        "SELECT payload FROM outbox WHERE actor_name = $1", REFUND_EMAIL
    )
    [message] = shop.smtp.messages
    text, html = bodies(message)
    assert message["Subject"] == f"€7.50 refunded on your aioshop order {order.number}"
    assert shop.smtp.recipients == [["ada@example.com"]]
    assert "We have refunded €7.50 to your card" in text
    assert "Of your payment of €24.95, €17.45 remains paid." in text
    assert "<strong>€7.50</strong>" in html and "€17.45 remains paid" in html
    assert f"Order {order.number}, placed " in text
    # Once: a redelivery sends nothing; the attempt is in the delivery log and the order's emails.
    await shop.redeliver_twice(REFUND_EMAIL, payload)
    await asyncio.sleep(QUIET_SECONDS)
    assert len(shop.smtp.messages) == 1
    sent = await orders.emails_of(shop.conn, order.id)
    assert [(e.kind, e.result) for e in sent if e.kind == "order_refunded"] == [
        ("order_refunded", "sent")
    ]


async def test_customer_text_is_escaped_in_html_and_verbatim_in_text(shop: Shop) -> None:
    mug = await shop.product("mug", {"MUG": 9})
    address = ADDRESS | {"full_name": "Ada <b>Lovelace</b>", "line2": 'Flat "3" & co'}
    await shop.place_order([(mug["MUG"], 1)], shipping_address=address)
    _, text, html = await shop.order_email("placed")
    assert "Hello Ada &lt;b&gt;Lovelace&lt;/b&gt;," in html
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;<br>" in html  # the address too
    assert "Flat &#34;3&#34; &amp; co" in html
    assert "<b>" not in html
    assert "Hello Ada <b>Lovelace</b>," in text
    assert 'Flat "3" & co' in text


async def test_low_stock_goes_once_to_active_staff_only(shop: Shop) -> None:
    for email, role, active in [
        ("staff@example.com", "staff", True),
        ("boss@example.com", "admin", True),
        ("gone@example.com", "staff", False),
        ("customer@example.com", "customer", True),
    ]:
        await shop.add_user(email, role, active=active)
    tee = await shop.product("tee", {"TEE-S": 5, "TEE-M": 10, "TEE-L": 4})
    await shop.place_order([(tee["TEE-S"], 2), (tee["TEE-M"], 1), (tee["TEE-L"], 4)])
    # Left: TEE-S 3 (at the threshold of 3: low), TEE-M 9 (fine), TEE-L 0 (low).
    with capture_logs(processors=[merge_contextvars]) as logs:
        payload = await shop.relay(CHECK_STOCK)
        assert sorted(payload["variant_ids"]) == sorted(tee.values())
        assert await shop.smtp.wait_for(1)
        await shop.redeliver_twice(CHECK_STOCK, payload)
        assert await eventually(lambda: len(logged(logs, "event.skipped_duplicate")) == 2)
        await asyncio.sleep(QUIET_SECONDS)

    [message] = shop.smtp.messages
    assert shop.smtp.recipients == [["boss@example.com", "staff@example.com"]]
    assert message["Subject"] == "Low stock at aioshop: 2 variants"
    text, html = bodies(message)
    assert text.index("TEE-L: 0 left") < text.index("TEE-S: 3 left")  # emptiest first
    assert "TEE-M" not in text and "TEE-M" not in html
    product_id = await shop.conn.fetchval(
        "SELECT product_id FROM variants WHERE id = $1", tee["TEE-L"]
    )
    product_link = f"https://shop.example/admin/products/{product_id}"
    assert product_link in text and f'href="{product_link}"' in html
    assert "down to 3 units or fewer" in html
    log = await shop.conn.fetch("SELECT kind, recipient, result, attempt FROM email_deliveries")
    assert [tuple(row) for row in log] == [
        ("low_stock", "boss@example.com, staff@example.com", "sent", 1)
    ]


async def test_stock_above_the_threshold_sends_nothing(shop: Shop) -> None:
    await shop.add_user("staff@example.com", "staff")
    mug = await shop.product("mug", {"MUG": THRESHOLD + 2})
    await shop.place_order([(mug["MUG"], 1)])  # THRESHOLD + 1 left
    await shop.relay(CHECK_STOCK)
    assert await shop.became_true(f"SELECT EXISTS (SELECT FROM processed_events {BY_CHECK})")
    await asyncio.sleep(QUIET_SECONDS)
    assert shop.smtp.messages == []


async def test_low_stock_without_staff_is_logged_and_not_sent(shop: Shop) -> None:
    await shop.add_user("customer@example.com", "customer")
    mug = await shop.product("mug", {"MUG": 1})
    await shop.place_order([(mug["MUG"], 1)])
    with capture_logs(processors=[merge_contextvars]) as logs:
        await shop.relay(CHECK_STOCK)
        assert await eventually(lambda: bool(logged(logs, "email.skipped")))
        await asyncio.sleep(QUIET_SECONDS)
    [skipped] = logged(logs, "email.skipped")
    assert (skipped["reason"], skipped["skus"]) == ("no_staff", ["MUG"])
    assert shop.smtp.messages == []
    assert await shop.became_true(f"SELECT EXISTS (SELECT FROM processed_events {BY_CHECK})")


@pytest.mark.parametrize(("order_exists", "kind"), [(False, "placed"), (True, "refunded")])
async def test_missing_order_or_unknown_kind_goes_straight_to_dead_letters(
    shop: Shop, order_exists: bool, kind: str
) -> None:
    order_id = 987654
    if order_exists:
        mug = await shop.product("mug", {"MUG": 9})
        order_id = (await shop.place_order([(mug["MUG"], 1)])).id
    async with shop.conn.transaction():
        await outbox.add(shop.conn, SEND_ORDER_EMAIL, order_id=order_id, kind=kind)
    await shop.relay(ORDER_EMAIL, kind)
    assert await eventually(lambda: shop.broker.get_queue_message_counts("email")[2] == 1)
    assert shop.smtp.messages == []
    assert await shop.conn.fetch("SELECT 1 FROM processed_events") == []


async def test_the_placed_email_shows_each_lines_picture_from_the_public_url(shop: Shop) -> None:
    """The actor reads each line's picture (the variant's, by colour) for the email's HTML."""
    from tests.support.catalog import add_image

    tee = await shop.product("tee", {"TEE-M": 5}, price=1500)
    mug = await shop.product("mug", {"MUG": 5}, price=900)  # no picture: alt-free, no <img>
    product_id = await shop.conn.fetchval("SELECT product_id FROM variants WHERE sku = 'TEE-M'")
    await add_image(
        shop.dsn,
        product_id,
        f"products/{product_id}/tee.jpg",
        width=880,
        height=660,
        alt="Tee in Navy",
        renditions={"320": f"products/{product_id}/tee-320.webp"},
    )
    await shop.place_order([(tee["TEE-M"], 1), (mug["MUG"], 1)])
    _, text, html = await shop.order_email("placed")
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 1, html
    assert f'src="{PUBLIC_URL}media/products/{product_id}/tee-320.webp"' in images[0]
    assert 'width="64"' in images[0] and 'height="48"' in images[0]
    assert 'alt="Tee in Navy"' in images[0]
    assert "media/" not in text
