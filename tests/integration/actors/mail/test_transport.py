"""aioshop_emails_total: each email handed to a real SMTP server, counted by kind and result."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pytest

from actors.mail.render import RenderedEmail, render_account_email
from actors.mail.transport import EMAILS, MailRefused, deliver
from configs.settings import Settings
from tests.support.smtp import SmtpServer


def counted(kind: str, result: str) -> float:
    return float(EMAILS.labels(kind, result)._value.get())


async def test_sent_failed_and_refused_are_counted_by_kind(
    settings_for: Any, fresh_db: str, smtp: SmtpServer
) -> None:
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url)
    smtp.refuse("gone@example.com", "550 5.1.1 No such mailbox here")
    smtp.refuse("busy@example.com", "451 4.3.0 Mailbox busy, try later")
    rendered = render_account_email(
        "password_reset", shop_name="Shop", name="Ada", link="https://shop.example/reset?token=x"
    )
    assert rendered.kind == "password_reset"
    before = {result: counted("password_reset", result) for result in ("sent", "failed", "refused")}
    await deliver(settings, "ada@example.com", rendered)
    with pytest.raises(MailRefused):
        await deliver(settings, "gone@example.com", rendered)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await deliver(settings, "busy@example.com", rendered)
    after = {result: counted("password_reset", result) - before[result] for result in before}
    assert after == {"sent": 1, "failed": 1, "refused": 1}
    assert len(smtp.messages) == 1


async def test_an_email_of_no_known_kind_is_counted_as_other(
    settings_for: Any, fresh_db: str, smtp: SmtpServer
) -> None:
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url)
    before = counted("other", "sent")
    await deliver(settings, "ada@example.com", RenderedEmail("Hi", "text", "<p>html</p>", "ad-hoc"))
    assert counted("other", "sent") == before + 1
    assert ("ad-hoc", "sent") not in {
        (s.labels["kind"], s.labels["result"]) for m in EMAILS.collect() for s in m.samples
    }
