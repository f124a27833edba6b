"""An email's bytes, composed once: the multipart/alternative message that actors.mail.transport
sends, without the `email` package's object model.

Building an `email.message.EmailMessage` and having aiosmtplib flatten it cost about 9 ms of a
worker's CPU per email (2026-12 profile, docs/architecture.md): every header parsed into
objects, then folded back to text, the message copied, the parts walked by a generator. The
message is always the same shape (two text parts), so this writes it directly: a header that is
plain ASCII, one line and short is written as it is (what the header objects wrote too); any
other header (an address, a long or non-ASCII subject) goes through `email.policy.SMTP`, which
parses, encodes (RFC 2047) and folds it exactly as before. A part whose text is ASCII in short
lines is 7bit, any other is quoted-printable or base64, whichever is shorter (the `email`
package's own choice, less its `8bit`): the message is 7-bit clean, so it needs no 8BITMIME.
A receiver parses it to the same headers and parts as the old message
(tests/unit/actors/mail/test_compose.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import AddressHeader
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

MAX_LINE = 78  # SMTP.max_line_length: longer header lines are folded, longer body lines encoded
CRLF = "\r\n"


class NotComposable(ValueError):
    """An address outside ASCII (SMTPUTF8): the caller sends an EmailMessage as before."""


@dataclass(frozen=True)
class ComposedEmail:
    """A message ready for SMTP DATA (CRLF lines) with its envelope."""

    sender: str  # MAIL FROM: the From header's address
    recipients: tuple[str, ...]  # RCPT TO: the To header's addresses
    message_id: str  # the Message-ID's local part (a uuid hex)
    data: bytes


def compose(
    *, sender: str, to: str, subject: str, text: str, html: str, message_id: str | None = None
) -> ComposedEmail:
    """The bytes of transport.build_message's message (same headers, same parts), CRLF lines.

    Raises ValueError for a header value with a line break (as EmailMessage does) or no address
    to send from or to (as aiosmtplib does), and NotComposable for an address outside ASCII.
    """
    from_line, envelope_sender = _from_header(sender)
    to_line, recipients = _address_header("To", to)
    if not envelope_sender or not recipients:  # as aiosmtplib's send_message refused it
        raise ValueError("a message needs a From and a To address")
    if not envelope_sender.isascii() or not all(r.isascii() for r in recipients):
        raise NotComposable("an address outside ASCII needs SMTPUTF8")
    local_part = message_id or uuid.uuid4().hex
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    boundary = _boundary(text, html)
    head = [
        from_line,
        to_line,
        _header("Subject", subject),
        _header("Date", format_datetime(datetime.now(UTC))),
        _header("Message-ID", f"<{local_part}@{domain}>"),
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
    ]
    # The HTML part carries MIME-Version as well: EmailMessage.add_alternative writes it there.
    body = [
        f"\r\n--{boundary}\r\n",
        *_part("plain", text, mime_version=False),
        f"\r\n--{boundary}\r\n",
        *_part("html", html, mime_version=True),
        f"\r\n--{boundary}--\r\n",
    ]
    data = "".join(head + body).encode("ascii")
    return ComposedEmail(envelope_sender, tuple(recipients), local_part, data)


def _header(name: str, value: str) -> str:
    """One header line (folded lines), CRLF-terminated."""
    if (
        value.isascii()
        and "\r" not in value
        and "\n" not in value
        and len(name) + 2 + len(value) <= MAX_LINE
        and value == value.strip()
        and "=?" not in value  # would read as an encoded word: let the policy decide
    ):
        return f"{name}: {value}\r\n"
    stored = SMTP.header_store_parse(name, value)[1]  # raises on a line break
    folded: str = stored.fold(policy=SMTP)
    return folded


# One bare address (no display name, no comment): a dot-atom local part and a domain of labels,
# which the policy writes back unchanged (RFC 5322 3.2.3, 3.4.1). A customer's To header.
BARE_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def _address_header(name: str, value: str) -> tuple[str, list[str]]:
    """An address header's folded line and its addresses (the envelope's): a bare address that
    fits a line is written as it is (what the policy writes for it, without parsing it into
    objects: most of an email's header work); any other goes through the policy."""
    if len(name) + 2 + len(value) <= MAX_LINE and BARE_ADDRESS.fullmatch(value):
        return f"{name}: {value}\r\n", [value]
    return _parsed_address_header(name, value)


def _parsed_address_header(name: str, value: str) -> tuple[str, list[str]]:
    """_address_header through `email.policy.SMTP`: parsed, encoded and folded."""
    stored = SMTP.header_store_parse(name, value)[1]  # raises on a line break
    assert isinstance(stored, AddressHeader)
    addresses = [address.addr_spec for address in stored.addresses]
    folded: str = stored.fold(policy=SMTP)  # type: ignore[attr-defined]  # BaseHeader's
    return folded, addresses


@functools.lru_cache(maxsize=16)
def _from_header(sender: str) -> tuple[str, str]:
    """The From line and the envelope's sender: the shop's address, the same for every email."""
    line, addresses = _address_header("From", sender)
    return line, addresses[0] if addresses else ""


def _part(subtype: str, content: str, *, mime_version: bool) -> list[str]:
    """A text part's headers and body (without the last line break: the boundary's)."""
    encoding, body = _encoded(content)
    headers = [
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n',
        f"Content-Transfer-Encoding: {encoding}\r\n",
    ]
    if mime_version:
        headers.append("MIME-Version: 1.0\r\n")
    return [*headers, "\r\n", body]


def _encoded(content: str) -> tuple[str, str]:
    """7bit when ASCII in short lines; else quoted-printable or base64, whichever is shorter.
    The body's lines end in CRLF, the last one too (as EmailMessage.set_content's)."""
    raw = content.encode("utf-8")
    lines = raw.splitlines()
    if content.isascii() and max((len(line) for line in lines), default=0) <= MAX_LINE:
        return "7bit", CRLF.join(line.decode("ascii") for line in lines) + CRLF
    normal = b"\n".join(lines) + b"\n"
    # binascii's encoder (C; lines of at most 76), a tenth of the `email` package's (Python).
    quoted = binascii.b2a_qp(normal, istext=True).decode("ascii")
    encoded = base64.encodebytes(normal).decode("ascii")
    if len(quoted) <= len(encoded):
        ending = "" if quoted.endswith("\n") else CRLF
        return "quoted-printable", quoted.replace("\n", CRLF) + ending
    return "base64", encoded.replace("\n", CRLF)


def _boundary(*bodies: str) -> str:
    """A boundary of the shape the `email` package makes (`===============<digits>==`), drawn
    again in the (astronomically rare) case that a body holds it, as the package does."""
    while True:
        boundary = f"==============={10**18 + secrets.randbelow(9 * 10**18)}=="
        if not any(boundary in body for body in bodies):
            return boundary
