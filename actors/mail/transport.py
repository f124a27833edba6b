"""Outgoing email: over SMTP when SMTP_URL is set, else into a local mailbox directory.

SMTP_URL is `smtp://user:pass@host:port` (STARTTLS when the server offers it) or `smtps://...`
(TLS from the first byte). Without it, each message is written to `DATA_DIR/mailbox` as an `.eml`
file (written to a temporary name, then renamed, so a reader never sees half a message); the ops
pages list them with `actors.mail.mailbox.read`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import TYPE_CHECKING

import aiosmtplib

from configs.settings import Settings

if TYPE_CHECKING:
    from actors.mail.render import RenderedEmail
from actors.mail import mailbox

SMTP_TIMEOUT_SECONDS = 10.0


def sender_for(settings: Settings) -> str:
    """The From address of the shop's mail: `shop_name <no-reply@host of PUBLIC_URL>`."""
    host = settings.public_url.host or "localhost"
    return formataddr((settings.shop_name, f"no-reply@{host}"))


def build_message(
    *, sender: str, to: str, subject: str, text: str, html: str, message_id: str | None = None
) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with a Message-ID and a Date.

    `message_id`: the local part of the Message-ID (default: a new uuid). Actors pass their
    event id, so the rare resend after a crash between sending and committing carries the same
    Message-ID as the first, and mail clients show one message.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{message_id or uuid.uuid4().hex}@{domain}>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


async def send(settings: Settings, message: EmailMessage) -> None:
    """Deliver one message (SMTP, or the local mailbox); raises on failure so the caller retries."""
    server = settings.smtp_server  # checked when Settings were read
    if server is None:
        await asyncio.to_thread(mailbox.deliver, settings.data_dir, message)
        return
    await aiosmtplib.send(
        message,
        hostname=server.hostname,
        port=server.port,
        username=server.username,
        password=server.password,
        use_tls=server.use_tls,
        # smtp://: upgrade with STARTTLS when the server offers it; smtps:// is TLS already.
        start_tls=False if server.use_tls else None,
        timeout=SMTP_TIMEOUT_SECONDS,
    )


async def deliver(
    settings: Settings, to: str, rendered: RenderedEmail, *, event_id: str | None = None
) -> None:
    """Send one rendered email from the shop's address to `to` (one address, or several
    separated by commas); raises on failure so the caller's transaction rolls back and retries.

    `event_id`: the Message-ID's local part, so the resend that a crash between sending and
    committing can cause is the same message to mail clients (they show one). Not for account
    emails: a resent one carries a new link, and only that one works.
    """
    message = build_message(
        sender=sender_for(settings),
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=uuid.UUID(event_id).hex if event_id is not None else None,
    )
    await send(settings, message)
