"""Account emails for real: outbox -> relay -> RabbitMQ -> actor -> SMTP server (or the mailbox)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from actors import dead_letters
from actors.mail.mailbox import read as read_mailbox
from actors.relay import Relay
from auth.tokens import digest
from configs.settings import Settings
from domain.events import SEND_ACCOUNT_EMAIL
from storage import outbox
from storage.database import connect, create_pool
from tests.support.db import fetch
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

PUBLIC_URL = "https://shop.example/"  # the trailing slash must not double in the links
ACTOR = SEND_ACCOUNT_EMAIL.name
LINK = re.compile(r"https://shop\.example/(?P<page>[a-z-]+)\?token=(?P<token>[A-Za-z0-9_-]+)")
QUIET_SECONDS = 0.5  # how long to watch for an email that must not come


@pytest.fixture
def smtp_url(smtp: SmtpServer) -> str | None:
    """Where the worker sends mail; a test parametrizes it to None for the local mailbox."""
    return smtp.url


@pytest.fixture
def broker_kind() -> str:
    """The broker the worker uses; a test parametrizes it to "redis" for the embedded one."""
    return "rabbitmq"


@pytest.fixture
def settings_overrides(smtp_url: str | None, broker_kind: str, redis_url: str) -> dict[str, Any]:
    """Mail to `smtp_url` (None: the local mailbox), links to PUBLIC_URL."""
    overrides: dict[str, Any] = {"smtp_url": smtp_url, "public_url": PUBLIC_URL}
    if broker_kind == "redis":
        overrides["broker_url"] = redis_url
    return overrides


async def create_user(
    dsn: str, *, email: str = "ada@example.com", name: str = "Ada", verified: bool = False
) -> int:
    conn = await connect(dsn)
    try:
        user_id: int = await conn.fetchval(
            """
            INSERT INTO users (email, name, password_hash, role, email_verified_at)
            VALUES ($1, $2, 'not-a-real-hash', 'customer', CASE WHEN $3 THEN now() END)
            RETURNING id
            """,
            email,
            name,
            verified,
        )
        return user_id
    finally:
        await conn.close()


async def request_email(dsn: str, broker: dramatiq.Broker, user_id: int, kind: str) -> uuid.UUID:
    """What the web side will do: an outbox row in its transaction; then the relay publishes it."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            event_id = await outbox.add(conn, SEND_ACCOUNT_EMAIL, user_id=user_id, kind=kind)
    finally:
        await conn.close()
    pool = await create_pool(dsn, 2)
    try:
        assert await Relay(pool, broker).drain() == 1
    finally:
        await pool.close()
    return event_id


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_password_reset_is_sent_once_even_when_redelivered(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> None:
    user_id = await create_user(fresh_db)
    with capture_logs(processors=[merge_contextvars]) as logs:
        event_id = await request_email(fresh_db, broker, user_id, "password_reset")
        assert await smtp.wait_for(1)
        # email.sent is logged after the commit: the token row is visible from here on.
        assert await eventually(lambda: bool(events(logs, "email.sent")))
    assert events(logs, "email.sent")[0]["user_id"] == user_id

    [message] = smtp.messages
    assert smtp.recipients == [["ada@example.com"]]
    assert message["To"] == "ada@example.com"
    assert message["From"] == "aioshop <no-reply@shop.example>"
    assert message["Subject"] == "Reset your aioshop password"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    text_link, html_link = LINK.search(text), LINK.search(html)
    assert text_link and html_link
    assert text_link.group(0) == html_link.group(0)
    assert text_link["page"] == "reset-password"
    assert "1 hour" in text
    assert not any(text_link["token"] in repr(entry) for entry in logs)  # never logged

    [token] = await fetch(
        fresh_db,
        "SELECT token_hash, purpose, used_at, expires_at - created_at AS lifetime"
        " FROM one_time_tokens WHERE user_id = $1",
        user_id,
    )
    assert token["token_hash"] == digest(text_link["token"])
    assert token["purpose"] == "password_reset"
    assert token["used_at"] is None
    assert token["lifetime"] == timedelta(hours=1)

    # The broker delivers the same message (same id and event_id) twice more.
    message_again = (
        broker.get_actor(ACTOR)
        .message_with_options(
            args=(),
            kwargs={"event_id": str(event_id), "user_id": user_id, "kind": "password_reset"},
        )
        .copy(message_id=str(event_id))
    )
    with capture_logs(processors=[merge_contextvars]) as logs:
        for _ in range(2):
            await asyncio.to_thread(broker.enqueue, message_again)
        assert await eventually(lambda: len(events(logs, "event.skipped_duplicate")) == 2)
        await asyncio.sleep(QUIET_SECONDS)
    assert not events(logs, "email.sent")
    assert len(smtp.messages) == 1
    rows = await fetch(fresh_db, "SELECT purpose FROM one_time_tokens WHERE user_id = $1", user_id)
    assert len(rows) == 1


@pytest.mark.parametrize("smtp_url", [None])
async def test_without_smtp_url_the_email_lands_in_the_mailbox(
    fresh_db: str,
    broker: dramatiq.Broker,
    worker: dramatiq.Worker,
    smtp: SmtpServer,
    settings: Settings,
    tmp_path: Path,
) -> None:
    user_id = await create_user(fresh_db)
    with capture_logs(processors=[merge_contextvars]) as logs:
        await request_email(fresh_db, broker, user_id, "verify_email")
        assert await eventually(lambda: bool(events(logs, "email.sent")))

    mailbox = tmp_path / "mailbox"
    assert settings.data_dir / "mailbox" == mailbox
    [eml] = mailbox.iterdir()  # and no temporary file left behind
    assert eml.suffix == ".eml"
    [entry] = read_mailbox(tmp_path)
    assert entry.file_name == eml.name
    assert entry.to == "ada@example.com"
    assert entry.subject == "Confirm your email for aioshop"
    assert entry.date is not None
    assert b"https://shop.example/verify-email?token=" in eml.read_bytes()
    [token] = await fetch(fresh_db, "SELECT purpose FROM one_time_tokens")
    assert token["purpose"] == "verify_email"
    assert smtp.messages == []


async def test_user_name_is_escaped_in_html_and_verbatim_in_text(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> None:
    user_id = await create_user(fresh_db, name="<b>x</b>")
    await request_email(fresh_db, broker, user_id, "verify_email")
    assert await smtp.wait_for(1)
    text, html = parts(smtp.messages[0])
    assert "Hello &lt;b&gt;x&lt;/b&gt;," in html
    assert "<b>x</b>" not in html
    assert "Hello <b>x</b>," in text
    link = LINK.search(text)
    assert link and link["page"] == "verify-email"
    assert "48 hours" in text


async def test_verify_email_for_a_verified_user_sends_nothing(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> None:
    user_id = await create_user(fresh_db, verified=True)
    with capture_logs(processors=[merge_contextvars]) as logs:
        event_id = await request_email(fresh_db, broker, user_id, "verify_email")
        assert await eventually(lambda: bool(events(logs, "email.skipped")))
        await asyncio.sleep(QUIET_SECONDS)
    assert events(logs, "email.skipped")[0]["reason"] == "already_verified"
    assert smtp.messages == []
    assert await fetch(fresh_db, "SELECT 1 FROM one_time_tokens") == []
    processed = await fetch(fresh_db, "SELECT consumer, event_id FROM processed_events")
    assert [tuple(row) for row in processed] == [(ACTOR, event_id)]


async def test_missing_user_is_skipped_not_retried(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> None:
    with capture_logs(processors=[merge_contextvars]) as logs:
        await request_email(fresh_db, broker, 987654, "password_reset")
        assert await eventually(lambda: bool(events(logs, "email.skipped")))
    assert events(logs, "email.skipped")[0]["reason"] == "user_missing"
    assert not events(logs, "message.failed")
    assert smtp.messages == []


async def test_unknown_kind_goes_straight_to_dead_letters(
    fresh_db: str, broker: dramatiq.Broker, worker: dramatiq.Worker, smtp: SmtpServer
) -> None:
    user_id = await create_user(fresh_db)
    await request_email(fresh_db, broker, user_id, "newsletter")
    assert await eventually(
        lambda: broker.get_queue_message_counts(SEND_ACCOUNT_EMAIL.queue)[2] == 1
    )
    assert smtp.messages == []
    assert await fetch(fresh_db, "SELECT 1 FROM processed_events") == []


@pytest.mark.parametrize("broker_kind", ["rabbitmq", "redis"])
async def test_a_permanent_smtp_refusal_is_dead_lettered_at_once_and_a_temporary_one_retried(
    fresh_db: str,
    broker: dramatiq.Broker,
    worker: dramatiq.Worker,
    smtp: SmtpServer,
    broker_kind: str,
) -> None:
    smtp.refuse("gone@example.com", "550 5.1.1 No such mailbox here")
    smtp.refuse("busy@example.com", "451 4.3.0 Mailbox busy, try later")
    gone = await create_user(fresh_db, email="gone@example.com")
    busy = await create_user(fresh_db, email="busy@example.com")

    def failures(event_id: uuid.UUID) -> list[dict[str, Any]]:
        return [e for e in events(logs, "message.failed") if e["message_id"] == str(event_id)]

    with capture_logs(processors=[merge_contextvars]) as logs:
        refused = await request_email(fresh_db, broker, gone, "password_reset")
        delayed = await request_email(fresh_db, broker, busy, "password_reset")
        # The 550: in the dead letters after its first attempt, with the server's reply.
        assert await eventually(
            lambda: dead_letters.counts(broker)[SEND_ACCOUNT_EMAIL.queue] == 1, timeout=20
        )
        # The 451: retried, and sent once the mailbox takes mail again.
        assert await eventually(lambda: len(failures(delayed)) >= 2, timeout=30)
        smtp.accept("busy@example.com")
        assert await smtp.wait_for(1, timeout=30)
        assert await eventually(lambda: bool(events(logs, "email.sent")))

    assert len(failures(refused)) == 1  # never retried
    assert all("SMTPRecipientsRefused" in e["error"] for e in failures(delayed))
    [letter] = await asyncio.to_thread(dead_letters.peek, broker, SEND_ACCOUNT_EMAIL.queue)
    assert letter.message_id == str(refused) and letter.retries == 0
    assert letter.error == (
        "actors.mail.transport.MailRefused:"
        " SMTP 550 for gone@example.com: 5.1.1 No such mailbox here"
    )
    assert letter.traceback is not None and "SMTPRecipientsRefused" in letter.traceback
    assert smtp.recipients == [["busy@example.com"]]
    assert dead_letters.counts(broker)[SEND_ACCOUNT_EMAIL.queue] == 1  # the 451 never died
    # The refused email's token and inbox row rolled back with it: a requeue sends it afresh.
    tokens = await fetch(fresh_db, "SELECT user_id FROM one_time_tokens")
    assert [row["user_id"] for row in tokens] == [busy]
