"""Outgoing email: over SMTP when SMTP_URL is set, else into a local mailbox directory.

SMTP_URL is `smtp://user:pass@host:port` (STARTTLS when the server offers it) or `smtps://...`
(TLS from the first byte). Without it, each message is written to `DATA_DIR/mailbox` as an `.eml`
file (written to a temporary name, then renamed, so a reader never sees half a message); the ops
pages list them with `read_mailbox`.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from configs.settings import Settings

SMTP_TIMEOUT_SECONDS = 10.0
MAILBOX_DIR = "mailbox"

_UUID_HEX = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class MailboxEntry:
    """One message in the local mailbox, as the ops pages list it."""

    file_name: str
    to: str
    subject: str
    date: datetime | None


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send, from SMTP_URL."""

    hostname: str
    port: int | None  # None: aiosmtplib's default for the mode (465 for TLS, else 25)
    username: str | None
    password: str | None
    use_tls: bool


def sender_for(settings: Settings) -> str:
    """The From address of the shop's mail: `shop_name <no-reply@host of PUBLIC_URL>`."""
    host = settings.public_url.host or "localhost"
    return formataddr((settings.shop_name, f"no-reply@{host}"))


def build_message(*, sender: str, to: str, subject: str, text: str, html: str) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with a Message-ID and a Date."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def parse_smtp_url(url: str) -> SmtpServer:
    """Split SMTP_URL into connection settings; raises ValueError for a malformed URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:pass@host:port or smtps://...")
    return SmtpServer(
        hostname=parts.hostname,
        port=parts.port,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        use_tls=parts.scheme == "smtps",
    )


async def send(settings: Settings, message: EmailMessage) -> None:
    """Deliver one message (SMTP, or the local mailbox); raises on failure so the caller retries."""
    if settings.smtp_url is None:
        await asyncio.to_thread(_write_to_mailbox, settings.data_dir / MAILBOX_DIR, message)
        return
    server = parse_smtp_url(settings.smtp_url)
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


def read_mailbox(data_dir: Path, limit: int = 50) -> list[MailboxEntry]:
    """The newest `limit` messages of `data_dir/mailbox`, newest first (none if it is missing)."""
    mailbox = data_dir / MAILBOX_DIR
    if not mailbox.is_dir():
        return []
    # The file names start with a UTC timestamp, so name order is delivery order.
    names = sorted((path.name for path in mailbox.glob("*.eml")), reverse=True)[:limit]
    parser = BytesHeaderParser(policy=default_policy)
    entries = []
    for name in names:
        try:
            headers = parser.parsebytes((mailbox / name).read_bytes())
        except FileNotFoundError:  # deleted between listing and reading
            continue
        date_header = headers["Date"]
        entries.append(
            MailboxEntry(
                file_name=name,
                to=str(headers["To"] or ""),
                subject=str(headers["Subject"] or ""),
                date=getattr(date_header, "datetime", None),
            )
        )
    return entries


def _write_to_mailbox(mailbox: Path, message: EmailMessage) -> Path:
    mailbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{stamp}-{_message_uuid(message)}.eml"
    temporary = mailbox / f".{name}.tmp"  # not *.eml: read_mailbox never lists it
    with temporary.open("wb") as file:
        file.write(message.as_bytes())
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(mailbox / name)
    return mailbox / name


def _message_uuid(message: EmailMessage) -> str:
    """The uuid of a Message-ID made by build_message, else a new one."""
    local_part = str(message["Message-ID"] or "").strip("<>").partition("@")[0]
    return local_part if _UUID_HEX.fullmatch(local_part) else uuid.uuid4().hex
