"""A bundle of order emails applied together (actors.email.send_order_emails): one transaction
for the bundle, yet each event as if it came alone. Real PostgreSQL, RabbitMQ, worker and SMTP
server: the emails that can go go once each with their own event's ids, and each event that
fails (a missing order, an unknown kind, a refused address, the SMTP server failing) leaves no
inbox row and goes on alone as its own message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import dramatiq
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from actors import dead_letters
from actors.bundles import bundle_message
from actors.email import send_order_emails
from actors.mail.transport import MailRefused
from actors.registry import Bundled
from actors.resources import Resources, open_resources
from configs.settings import Settings
from domain.events import SEND_ORDER_EMAIL
from storage.errors import OrderNotFound
from tests.support.orders import place_order, stocked_product
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

ORDER_EMAIL = SEND_ORDER_EMAIL.name
REFUSED = "nobody@example.com"
MISSING_ORDER = 987_654


@pytest.fixture
def settings_overrides(smtp: SmtpServer) -> dict[str, Any]:
    return {"smtp_url": smtp.url, "public_url": "https://shop.example/"}


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        yield await open_resources(settings, stack)


async def orders_for(conn: asyncpg.Connection, fresh_db: str, emails: list[str]) -> list[int]:
    mug = await stocked_product(fresh_db, "mug", {"MUG": 50})
    return [(await place_order(conn, [(mug["MUG"], 1)], email=email)).id for email in emails]


def event(order_id: int, kind: str = "placed") -> tuple[str, dict[str, Any], str]:
    event_id = str(uuid.uuid4())
    return event_id, {"event_id": event_id, "order_id": order_id, "kind": kind}, f"req-{event_id}"


async def inbox(conn: asyncpg.Connection) -> set[str]:
    query = "SELECT event_id FROM processed_events WHERE consumer = $1"
    rows = await conn.fetch(query, ORDER_EMAIL)
    return {str(row["event_id"]) for row in rows}


async def test_a_bundle_sends_each_email_once_and_each_failure_goes_on_alone(
    fresh_db: str,
    conn: asyncpg.Connection,
    broker: dramatiq.Broker,
    worker: dramatiq.Worker,
    smtp: SmtpServer,
) -> None:
    first, second, refused = await orders_for(
        conn, fresh_db, ["ada@example.com", "bob@example.com", REFUSED]
    )
    smtp.refuse(REFUSED, "550 5.1.1 No such user")
    sent = [event(first), event(second, "confirmed")]
    done_before = event(first, "confirmed")  # applied by an earlier delivery: skipped
    await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)",
        ORDER_EMAIL,
        uuid.UUID(done_before[0]),
    )
    failing = [event(MISSING_ORDER), event(first, "refunded"), event(refused)]
    bundle = [sent[0], failing[0], done_before, sent[1], sent[0], failing[1], failing[2]]
    with capture_logs(processors=[merge_contextvars]) as logs:
        broker.enqueue(bundle_message(broker, ORDER_EMAIL, "email", bundle))

        def buried() -> list[dead_letters.DeadLetter]:
            return dead_letters.peek(broker, "email")

        assert await eventually(lambda: len(buried()) == 3, timeout=20)
        await asyncio.sleep(0.3)  # nothing more comes
    # Sent once each (the event given twice in the bundle too), to their own orders' addresses.
    assert sorted(r[0] for r in smtp.recipients) == ["ada@example.com", "bob@example.com"]
    ids = {str(uuid.UUID(m["Message-ID"].strip("<>").partition("@")[0])) for m in smtp.messages}
    assert ids == {sent[0][0], sent[1][0]}
    assert await inbox(conn) == {sent[0][0], sent[1][0], done_before[0]}
    # Each failure alone, as its own message: its event's id, its reason.
    letters = {letter.message_id: letter for letter in buried()}
    assert set(letters) == {e[0] for e in failing}
    assert all(letter.actor_name == ORDER_EMAIL for letter in letters.values())
    assert "OrderNotFound" in (letters[failing[0][0]].error or "")
    assert "UnknownEmailKind" in (letters[failing[1][0]].error or "")
    assert "550" in (letters[failing[2][0]].error or "")
    # The delivery log: each attempt under its own event (the refused one tried in the bundle,
    # then alone).
    rows = await conn.fetch(
        "SELECT event_id::text, result, attempt FROM email_deliveries ORDER BY id"
    )
    assert sorted((r["event_id"], r["result"], r["attempt"]) for r in rows) == sorted(
        [
            (sent[0][0], "sent", 1),
            (sent[1][0], "sent", 1),
            (failing[2][0], "refused", 1),
            (failing[2][0], "refused", 2),
        ]
    )
    # The logs of each email carry its own event's ids, and the bundle's.
    emailed = [entry for entry in logs if entry["event"] == "email.sent"]
    assert sorted(e["message_id"] for e in emailed) == sorted(e[0] for e in sent)
    assert sorted(e["request_id"] for e in emailed) == sorted(e[2] for e in sent)
    assert all(e["bundle"] and e["actor"] == ORDER_EMAIL for e in emailed)
    skipped = [entry for entry in logs if entry["event"] == "event.skipped_duplicate"]
    assert [e["message_id"] for e in skipped] == [done_before[0]]


async def test_with_the_smtp_server_failing_every_email_of_the_bundle_is_handed_back(
    fresh_db: str, conn: asyncpg.Connection, resources: Resources, smtp: SmtpServer
) -> None:
    order_ids = await orders_for(conn, fresh_db, ["ada@example.com"] * 3)
    events = [Bundled(*event(order_id)) for order_id in order_ids]
    smtp.refuse_all_for(60)  # a 451 for every message: try again later
    outcomes = await send_order_emails(resources, events)
    assert all(isinstance(o, Exception) and not isinstance(o, MailRefused) for o in outcomes)
    assert smtp.refused == 1  # the rest were not tried: each goes on alone, through its retries
    assert await inbox(conn) == set()
    smtp.refuse_all_for(0)
    outcomes = await send_order_emails(resources, events)  # the retry, say
    assert outcomes == [None, None, None]
    assert await smtp.wait_for(3)
    assert await inbox(conn) == {e.event_id for e in events}
    # Delivered again, a bundle whose events took effect sends nothing.
    assert await send_order_emails(resources, events) == [None, None, None]
    await asyncio.sleep(0.2)
    assert len(smtp.messages) == 3


async def test_a_payload_that_is_not_the_actors_fails_alone(
    fresh_db: str, conn: asyncpg.Connection, resources: Resources, smtp: SmtpServer
) -> None:
    [order_id] = await orders_for(conn, fresh_db, ["ada@example.com"])
    good = Bundled(*event(order_id))
    odd_id = str(uuid.uuid4())
    odd = [
        Bundled(odd_id, {"event_id": odd_id, "order_id": str(order_id), "kind": "placed"}, None),
        Bundled(odd_id, {"event_id": odd_id, "order_id": order_id}, None),
        Bundled(odd_id, {"event_id": odd_id, "order_id": order_id, "kind": 3}, None),
        Bundled(odd_id, {**good.payload, "extra": 1}, None),
    ]
    outcomes = await send_order_emails(resources, [*odd, good])
    assert [type(o) for o in outcomes] == [TypeError] * 4 + [type(None)]
    assert await smtp.wait_for(1)
    assert await inbox(conn) == {good.event_id}
    missing = Bundled(*event(MISSING_ORDER))
    [outcome] = await send_order_emails(resources, [missing])
    assert isinstance(outcome, OrderNotFound)
    assert await inbox(conn) == {good.event_id}
