"""The local mailbox: where emails go when no SMTP server is configured (embedded mode).

Each message is one `.eml` file in `DATA_DIR/mailbox`, named by its UTC delivery time, written to
a temporary name and renamed, so a reader never sees half a message. The ops pages list them
and open one by its file name (`open_message`), which must have the shape `deliver` gives it:
nothing else, no path, ever reaches the file system.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default as default_policy
from pathlib import Path

MAILBOX_DIR = "mailbox"

_UUID_HEX = re.compile(r"[0-9a-f]{32}")
# What `deliver` names a message: its UTC time, then its Message-ID's uuid.
MESSAGE_NAME = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{32}\.eml")


@dataclass(frozen=True)
class MailboxEntry:
    """One message in the local mailbox, as the ops pages list it."""

    file_name: str
    to: str
    subject: str
    date: datetime | None


def read(data_dir: Path, limit: int = 50) -> list[MailboxEntry]:
    """The newest `limit` messages of `data_dir/mailbox`, newest first (none if it is missing)."""
    folder = data_dir / MAILBOX_DIR
    if not folder.is_dir():
        return []
    # The file names start with a UTC timestamp, so name order is delivery order.
    names = sorted((path.name for path in folder.glob("*.eml")), reverse=True)[:limit]
    parser = BytesHeaderParser(policy=default_policy)
    entries = []
    for name in names:
        try:
            headers = parser.parsebytes((folder / name).read_bytes())
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


@dataclass(frozen=True)
class MailboxMessage:
    """One message of the local mailbox, opened: its headers and both of its bodies."""

    file_name: str
    sender: str
    to: str
    subject: str
    date: datetime | None
    text: str
    html: str | None


def open_message(data_dir: Path, file_name: str) -> MailboxMessage | None:
    """The message `file_name` of `data_dir/mailbox`, None when there is none by that name (or
    the name is not one `deliver` gives)."""
    if MESSAGE_NAME.fullmatch(file_name) is None:
        return None
    try:
        raw = (data_dir / MAILBOX_DIR / file_name).read_bytes()
    except FileNotFoundError:
        return None
    message = BytesParser(policy=default_policy).parsebytes(raw)
    if not isinstance(message, EmailMessage):  # the default policy always gives one
        return None
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    return MailboxMessage(
        file_name=file_name,
        sender=str(message["From"] or ""),
        to=str(message["To"] or ""),
        subject=str(message["Subject"] or ""),
        date=getattr(message["Date"], "datetime", None),
        text=_content(text_part) or "",
        html=_content(html_part),
    )


def _content(part: object) -> str | None:
    if not isinstance(part, EmailMessage):
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def deliver(data_dir: Path, message: EmailMessage) -> Path:
    """Write one message into `data_dir/mailbox` atomically (temp file, then rename)."""
    return deliver_bytes(data_dir, message.as_bytes(), _message_uuid(message))


def deliver_bytes(data_dir: Path, data: bytes, message_uuid: str) -> Path:
    """Write one message's bytes (actors.mail.compose's) into `data_dir/mailbox` atomically;
    `message_uuid` names the file (a new uuid unless it is 32 hex digits)."""
    mailbox = data_dir / MAILBOX_DIR
    mailbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name_uuid = message_uuid if _UUID_HEX.fullmatch(message_uuid) else uuid.uuid4().hex
    name = f"{stamp}-{name_uuid}.eml"
    temporary = mailbox / f".{name}.tmp"  # not *.eml: read_mailbox never lists it
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(mailbox / name)
    return mailbox / name


def _message_uuid(message: EmailMessage) -> str:
    """The uuid of a Message-ID made by build_message, else a new one."""
    local_part = str(message["Message-ID"] or "").strip("<>").partition("@")[0]
    return local_part if _UUID_HEX.fullmatch(local_part) else uuid.uuid4().hex
