"""SMTP connections kept open between emails, against a real SMTP server in the test process:
several emails go over one connection, and one the server dropped is replaced, losing no email."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pytest

from actors.mail import connections
from actors.mail.render import RenderedEmail
from actors.mail.transport import deliver
from configs.settings import Settings
from tests.support.smtp import SmtpServer

EMAIL = RenderedEmail("Your order", "Hello", "<p>Hello</p>", "order_confirmed")


@pytest.fixture(autouse=True)
async def _no_pool_left() -> Any:
    """Each test starts with no connection open and closes what it opened."""
    await connections.close_pools()
    yield
    await connections.close_pools()


async def test_several_emails_go_over_one_connection(
    settings_for: Any, fresh_db: str, smtp: SmtpServer
) -> None:
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url)
    for n in range(5):
        await deliver(settings, f"buyer{n}@example.com", EMAIL)
    assert [r for (r,) in smtp.recipients] == [f"buyer{n}@example.com" for n in range(5)]
    assert len(set(smtp.peers)) == 1  # one client port: one connection for all five


async def test_a_pool_of_size_zero_opens_a_connection_per_email(
    settings_for: Any, fresh_db: str, smtp: SmtpServer
) -> None:
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url, smtp_pool_size=0)
    for n in range(3):
        await deliver(settings, f"buyer{n}@example.com", EMAIL)
    assert len(set(smtp.peers)) == 3


async def test_a_connection_the_server_dropped_is_replaced(
    settings_for: Any, fresh_db: str, smtp: SmtpServer
) -> None:
    # 0: every reused connection is asked NOOP first.
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url, smtp_noop_after_seconds=0.0)
    await deliver(settings, "first@example.com", EMAIL)
    # The server goes away and comes back on the same port: the open connection is dead.
    smtp.restart()
    await deliver(settings, "second@example.com", EMAIL)
    assert [r for (r,) in smtp.recipients] == ["first@example.com", "second@example.com"]
    assert smtp.peers[0] != smtp.peers[1]  # a new connection


async def test_a_connection_whose_send_failed_is_not_used_again(
    settings_for: Any, fresh_db: str, smtp: SmtpServer
) -> None:
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url)
    await deliver(settings, "first@example.com", EMAIL)
    smtp.refuse("busy@example.com", "451 4.3.0 Mailbox busy, try later")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await deliver(settings, "busy@example.com", EMAIL)
    await deliver(settings, "third@example.com", EMAIL)
    assert [r for (r,) in smtp.recipients] == ["first@example.com", "third@example.com"]
    assert smtp.peers[0] != smtp.peers[1]  # the failed session was closed, a new one opened
