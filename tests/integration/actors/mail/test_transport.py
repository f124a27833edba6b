"""aioshop_emails_total: each email handed to a real SMTP server, counted by kind and result."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from actors.mail import mailbox
from actors.mail.render import RenderedEmail, render_account_email
from actors.mail.transport import EMAILS, MailRefused, build_message, deliver, send, sender_for
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


async def test_the_server_receives_the_message_the_email_package_built(
    settings_for: Any, fresh_db: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    """actors.mail.compose's bytes, as a real SMTP server parses them: the headers and parts of
    transport.build_message's message; and the local mailbox keeps the same message."""
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url)
    rendered = RenderedEmail(
        "Votre commande Café est confirmée — merci, et à bientôt chez nous, Zoë !",
        "Bonjour Zoë,\n.une ligne qui commence par un point\n" + "détail " * 30,
        '<p style="color:#333">' + "Bonjour Zoë &amp; merci " * 20 + "</p>",
        "order_confirmed",
    )
    event_id = str(uuid.uuid4())
    await deliver(settings, "Zoë Martin <zoe@example.com>", rendered, event_id=event_id)
    before = build_message(  # sent as it was before: an EmailMessage aiosmtplib flattens
        sender=sender_for(settings),
        to="Zoë Martin <zoe@example.com>",
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=uuid.UUID(event_id).hex,
    )
    await send(settings, before)
    received, expected = smtp.messages
    assert smtp.recipients == [["zoe@example.com"], ["zoe@example.com"]]
    assert list(received.keys()) == list(expected.keys())
    for name in ("From", "To", "Subject", "Message-ID", "MIME-Version"):
        assert str(received[name]) == str(expected[name]), name
    assert received["Date"].datetime is not None
    assert [(part.get_content_type(), part.get_content()) for part in received.iter_parts()] == [
        (part.get_content_type(), part.get_content()) for part in expected.iter_parts()
    ]
    plain = received.get_body(("plain",))
    assert plain is not None and "Bonjour Zoë,\n.une ligne" in plain.get_content()

    local: Settings = settings_for(fresh_db, data_dir=tmp_path)
    await deliver(local, "zoe@example.com", rendered, event_id=event_id)
    [entry] = mailbox.read(tmp_path)
    assert entry.file_name.endswith(f"-{uuid.UUID(event_id).hex}.eml")
    opened = mailbox.open_message(tmp_path, entry.file_name)
    assert opened is not None
    assert (opened.subject, opened.to) == (rendered.subject, "zoe@example.com")
    assert (opened.text, opened.html) == (rendered.text + "\n", rendered.html + "\n")
