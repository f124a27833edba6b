"""The email delivery log for real: outbox -> relay -> broker -> actor -> SMTP server, and every
attempt in email_deliveries (sent, refused for good, failed then retried), even when the log
itself cannot be written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import dramatiq
import pytest
from prometheus_client import REGISTRY
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from actors import dead_letters
from actors.mail import deliveries
from actors.mail.render import RenderedEmail
from actors.resources import open_resources
from configs.settings import Settings
from domain.events import SEND_ACCOUNT_EMAIL
from storage.database import connect
from tests.integration.actors.test_email import create_user, events, request_email
from tests.support.db import fetch
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

WRITE_FAILURES = "aioshop_email_log_write_failures_total"


@pytest.fixture
def broker_kind() -> str:
    return "rabbitmq"


@pytest.fixture
def settings_overrides(smtp: SmtpServer, broker_kind: str, redis_url: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {"smtp_url": smtp.url, "public_url": "https://shop.example/"}
    if broker_kind == "redis":
        overrides["broker_url"] = redis_url
    return overrides


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Poll an async `predicate` every 100 ms until it is true, at most `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.1)
    except TimeoutError:
        return False
    return True


async def attempts(dsn: str, event_id: uuid.UUID) -> list[Any]:
    return await fetch(
        dsn,
        "SELECT kind, recipient, subject, result, attempt, error, event_name"
        " FROM email_deliveries WHERE event_id = $1 ORDER BY id",
        event_id,
    )


@pytest.mark.parametrize("broker_kind", ["rabbitmq", "redis"])
async def test_every_attempt_is_logged_sent_refused_and_failed_then_retried(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> None:
    smtp.refuse("gone@example.com", "550 5.1.1 No such mailbox here")
    smtp.refuse("busy@example.com", "451 4.3.0 Mailbox busy, try later")
    ada = await create_user(fresh_db)
    gone = await create_user(fresh_db, email="gone@example.com")
    busy = await create_user(fresh_db, email="busy@example.com")

    sent = await request_email(fresh_db, broker, ada, "verify_email")
    refused = await request_email(fresh_db, broker, gone, "password_reset")
    retried = await request_email(fresh_db, broker, busy, "password_reset")
    assert await eventually(
        lambda: dead_letters.counts(broker)[SEND_ACCOUNT_EMAIL.queue] == 1, timeout=20
    )

    async def failed_twice() -> bool:
        return len(await attempts(fresh_db, retried)) >= 2

    assert await until(failed_twice, timeout=30)
    smtp.accept("busy@example.com")

    async def finally_sent() -> bool:
        rows = await attempts(fresh_db, retried)
        return bool(rows) and rows[-1]["result"] == "sent"

    assert await until(finally_sent, timeout=30)

    [first] = await attempts(fresh_db, sent)
    assert dict(first) == {
        "kind": "verify_email",
        "recipient": "ada@example.com",
        "subject": "Confirm your email for aioshop",
        "result": "sent",
        "attempt": 1,
        "error": None,
        "event_name": SEND_ACCOUNT_EMAIL.name,
    }
    [no] = await attempts(fresh_db, refused)
    assert (no["result"], no["attempt"], no["recipient"]) == ("refused", 1, "gone@example.com")
    assert no["error"] == "SMTP 550 for gone@example.com: 5.1.1 No such mailbox here"
    rows = await attempts(fresh_db, retried)
    assert [row["attempt"] for row in rows] == list(range(1, len(rows) + 1))
    assert [row["result"] for row in rows] == ["failed"] * (len(rows) - 1) + ["sent"]
    assert all("SMTPRecipientsRefused" in row["error"] for row in rows[:-1])
    assert rows[-1]["error"] is None
    assert smtp.recipients == [["ada@example.com"], ["busy@example.com"]]


async def test_an_email_whose_log_cannot_be_written_is_still_sent(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> None:
    conn = await connect(fresh_db)
    try:  # every write of the log fails from here on
        await conn.execute("ALTER TABLE email_deliveries RENAME TO email_deliveries_elsewhere")
    finally:
        await conn.close()
    user_id = await create_user(fresh_db)
    before = REGISTRY.get_sample_value(WRITE_FAILURES) or 0.0
    with capture_logs(processors=[merge_contextvars]) as logs:
        event_id = await request_email(fresh_db, broker, user_id, "verify_email")
        assert await smtp.wait_for(1)
        assert await eventually(lambda: bool(events(logs, "email.sent")))
        assert await eventually(lambda: bool(events(logs, "email_log.write_failed")))

    [failure] = events(logs, "email_log.write_failed")
    assert "email_deliveries" in failure["error"] and failure["result"] == "sent"
    assert not events(logs, "message.failed")
    assert (REGISTRY.get_sample_value(WRITE_FAILURES) or 0.0) == before + 1
    processed = await fetch(fresh_db, "SELECT event_id FROM processed_events")
    assert [row["event_id"] for row in processed] == [event_id]  # committed: never sent again
    assert len(smtp.messages) == 1


async def test_the_log_is_written_on_the_actors_connection_else_on_another(
    settings: Settings, fresh_db: str, smtp: SmtpServer
) -> None:
    """`mail.on(conn)` writes the attempts when its block ends, on the actor's connection; what
    it cannot write there (the connection broke) `logged` writes on a connection of its own."""
    rendered = RenderedEmail("Hi", "text", "<p>html</p>", "verify_email")
    async with AsyncExitStack() as stack:
        res = await open_resources(settings, stack)
        kept, broken = uuid.uuid4(), uuid.uuid4()
        async with deliveries.logged(res.db, SEND_ACCOUNT_EMAIL, kept) as mail:
            async with res.db.primary.acquire() as conn, mail.on(conn):
                await mail.deliver(settings, "ada@example.com", rendered, kind="verify_email")
            assert [row["result"] for row in await attempts(fresh_db, kept)] == ["sent"]
        async with deliveries.logged(res.db, SEND_ACCOUNT_EMAIL, broken) as mail:
            async with res.db.primary.acquire() as conn, mail.on(conn):
                await mail.deliver(settings, "bob@example.com", rendered, kind="verify_email")
                conn.terminate()  # the actor's connection is gone when its block ends
            assert await attempts(fresh_db, broken) == []
        [row] = await attempts(fresh_db, broken)
        assert (row["recipient"], row["result"], row["attempt"]) == ("bob@example.com", "sent", 1)
    assert len(smtp.messages) == 2
