"""Outgoing email: over SMTP when SMTP_URL is set, else into a local mailbox directory.

SMTP_URL is `smtp://user:pass@host:port` (STARTTLS when the server offers it) or `smtps://...`
(TLS from the first byte). Without it, each message is written to `DATA_DIR/mailbox` as an `.eml`
file (written to a temporary name, then renamed, so a reader never sees half a message); the ops
pages list them with `actors.mail.mailbox.read`.

An SMTP refusal is permanent when the server's reply is 5xx (RFC 5321: "do not repeat the
request"): `send` raises MailRefused, which no actor retries (actors.broker), so the message goes
to the dead letters at once with the server's reply as its error. A 4xx reply, a timeout or a
dropped connection raises aiosmtplib's own error, which is retried with backoff.

Connections are kept open between emails, a pool per worker process (actors.mail.connections):
SMTP_POOL_SIZE idle at most, none older than SMTP_CONNECTION_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib
import structlog
from prometheus_client import Counter

from actors.mail import connections, mailbox
from actors.mail.compose import ComposedEmail, NotComposable, compose
from configs.settings import Settings
from configs.urls import SmtpServer

if TYPE_CHECKING:
    from actors.mail.render import RenderedEmail

log = structlog.get_logger(__name__)

SMTP_TIMEOUT_SECONDS = connections.SMTP_TIMEOUT_SECONDS
FIRST_PERMANENT_CODE = 500

# The kinds of email are the templates (a bounded set); anything else is counted as "other".
EMAIL_KINDS = frozenset(
    path.stem
    for path in (Path(__file__).parent / "templates" / "email").glob("*.txt")
    if not path.stem.endswith("_base")
)
EMAILS = Counter(
    "aioshop_emails_total",
    "Emails handed to SMTP (or the local mailbox) by kind: sent, failed (retried) or refused"
    " for good (an SMTP 5xx).",
    ["kind", "result"],
)


def kind_label(kind: str) -> str:
    """`kind` as a label value: a known template's name, else "other"."""
    return kind if kind in EMAIL_KINDS else "other"


class MailRefused(Exception):
    """The SMTP server refused the message for good (a 5xx reply): retrying cannot deliver it."""

    def __init__(self, code: int, reply: str, recipients: tuple[str, ...] = ()) -> None:
        to = f" for {', '.join(recipients)}" if recipients else ""
        super().__init__(f"SMTP {code}{to}: {reply}")
        self.code, self.reply, self.recipients = code, reply, recipients


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


async def send(settings: Settings, message: EmailMessage | ComposedEmail) -> None:
    """Deliver one message (SMTP, or the local mailbox). Raises MailRefused when the server
    refuses it for good, and aiosmtplib's or the file system's errors for the caller to retry.

    A ComposedEmail (actors.mail.compose) goes out as its bytes, flattened once; an
    EmailMessage (an address outside ASCII) is flattened by aiosmtplib, as before."""
    server = settings.smtp_server  # checked when Settings were read
    if server is None:
        if isinstance(message, ComposedEmail):
            # Kept with LF line ends, as EmailMessage.as_bytes wrote them (CRLF is for SMTP).
            data = message.data.replace(b"\r\n", b"\n")
            await asyncio.to_thread(
                mailbox.deliver_bytes, settings.data_dir, data, message.message_id
            )
        else:
            await asyncio.to_thread(mailbox.deliver, settings.data_dir, message)
        return
    try:
        refused, _ = await _smtp_send(settings, server, message)
    except aiosmtplib.SMTPRecipientsRefused as exc:  # every recipient refused
        codes = [refusal.code for refusal in exc.recipients]
        if codes and min(codes) >= FIRST_PERMANENT_CODE:
            reply = "; ".join(dict.fromkeys(refusal.message for refusal in exc.recipients))
            recipients = tuple(refusal.recipient for refusal in exc.recipients)
            raise MailRefused(max(codes), reply, recipients) from exc
        raise  # a 4xx among them: later may work
    except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM, DATA, AUTH, the greeting...
        if exc.code >= FIRST_PERMANENT_CODE:
            raise MailRefused(exc.code, exc.message) from exc
        raise
    if refused:
        # Sent to the others: a retry would send them a second copy. The refusals are logged
        # for the operator instead.
        log.warning(
            "email.recipients_refused",
            refused={
                address: f"{reply.code} {reply.message}" for address, reply in refused.items()
            },
        )


async def _smtp_send(
    settings: Settings, server: SmtpServer, message: EmailMessage | ComposedEmail
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """Send on one of the worker's open connections (actors.mail.connections)."""
    pool = connections.pool_for(
        server,
        size=settings.smtp_pool_size,
        max_age=settings.smtp_connection_max_age_seconds,
        noop_after=settings.smtp_noop_after_seconds,
    )
    async with pool.connection() as client:
        if isinstance(message, ComposedEmail):
            return await client.sendmail(
                message.sender, list(message.recipients), message.data, timeout=SMTP_TIMEOUT_SECONDS
            )
        return await client.send_message(message, timeout=SMTP_TIMEOUT_SECONDS)


async def deliver(
    settings: Settings, to: str, rendered: RenderedEmail, *, event_id: str | None = None
) -> None:
    """Send one rendered email from the shop's address to `to` (one address, or several
    separated by commas). Raises MailRefused when the server refuses it for good, other errors
    when a retry may succeed; either way the caller's transaction rolls back.

    `event_id`: the Message-ID's local part, so the resend that a crash between sending and
    committing can cause is the same message to mail clients (they show one). Not for account
    emails: a resent one carries a new link, and only that one works.
    """
    sender = sender_for(settings)
    local_part = uuid.UUID(event_id).hex if event_id is not None else None
    parts = {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}
    message: EmailMessage | ComposedEmail
    try:
        message = compose(sender=sender, to=to, message_id=local_part, **parts)
    except NotComposable:  # an address outside ASCII: SMTPUTF8, as the email package does it
        message = build_message(sender=sender, to=to, message_id=local_part, **parts)
    kind = kind_label(rendered.kind)
    try:
        await send(settings, message)
    except MailRefused:
        EMAILS.labels(kind, "refused").inc()
        raise
    except Exception:
        EMAILS.labels(kind, "failed").inc()
        raise
    EMAILS.labels(kind, "sent").inc()
