"""actors.mail.compose: the bytes written directly parse to the message the `email` package
built before (transport.build_message): the same headers, the same parts, the same text."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy

import pytest

from actors.mail.compose import (
    NotComposable,
    _address_header,
    _parsed_address_header,
    compose,
)
from actors.mail.transport import build_message

MESSAGE_ID = "0123456789abcdef0123456789abcdef"
LONG_HTML = '<table style="width:100%">' + "<tr><td>Tee - M</td><td>2 x 15.00</td></tr>" * 20
CASES = {
    "plain ascii": {
        "sender": "aioshop <no-reply@shop.example>",
        "to": "ada@example.com",
        "subject": "Reset your aioshop password",
        "text": "Hello Ada,\n\nhttps://shop.example/reset-password?token=abc\n",
        "html": "<p>Hello Ada</p>",
    },
    "long lines, accents, a quoted name, several recipients": {
        "sender": '"Mugs, Cups" <no-reply@127.0.0.1>',
        "to": "a@x.example, b@y.example, staff.member.with.a.long.name@warehouse.example",
        "subject": "Votre commande Café Ünïcode est confirmée, et ce sujet dépasse la ligne "
        "de soixante-dix-huit caractères",
        "text": "Bonjour Zoë,\n.a line starting with a dot\nFrom the shop\n",
        "html": LONG_HTML,
    },
    "Japanese text and a shop name outside ASCII": {
        "sender": "喫茶店 ☕ <no-reply@shop.example>",
        "to": "山田 花子 <hanako@example.com>",
        "subject": "ご注文を承りました " * 8,
        "text": "こんにちは、" * 30 + "\nありがとうございます",
        "html": "<p>" + "こんにちは、" * 30 + "</p>",
    },
    "empty text, bare CR and trailing blank lines": {
        "sender": "s <s@x.example>",
        "to": "t@x.example",
        "subject": "  spaced  =?not-encoded?=  ",
        "text": "",
        "html": "a\r\nb\rc\n\n",
    },
}


def parsed(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
def test_composed_bytes_parse_to_the_email_packages_message(fields: dict[str, str]) -> None:
    before = parsed(build_message(**fields, message_id=MESSAGE_ID).as_bytes(policy=SMTP))
    composed = compose(**fields, message_id=MESSAGE_ID)
    after = parsed(composed.data)
    assert not after.defects
    for name in ("From", "To", "Subject", "Message-ID", "MIME-Version"):
        assert str(after[name]) == str(before[name]), name
    assert after["Date"].datetime is not None
    assert list(after.keys()) == list(before.keys())
    assert after.get_content_type() == "multipart/alternative"
    old_parts, new_parts = list(before.iter_parts()), list(after.iter_parts())
    assert [p.get_content_type() for p in new_parts] == ["text/plain", "text/html"]
    for old, new in zip(old_parts, new_parts, strict=True):
        assert isinstance(old, EmailMessage) and isinstance(new, EmailMessage)
        assert new.get_content() == old.get_content()
        assert new.get_content_charset() == "utf-8"
        assert list(new.keys()) == list(old.keys())
    # The envelope: what aiosmtplib's send_message read from the headers before.
    assert composed.sender == before["From"].addresses[0].addr_spec
    assert list(composed.recipients) == [a.addr_spec for a in before["To"].addresses]
    # 7-bit clean and within SMTP's line limit: no 8BITMIME needed, nothing for a relay to fix.
    assert composed.data.isascii()
    assert all(len(line) <= 998 for line in composed.data.split(b"\r\n"))
    assert b"\n" not in composed.data.replace(b"\r\n", b"")


ADDRESSES = [
    "ada@example.com",
    "a.b+tag@sub.example.co.uk",
    "o'hara!#$%&*/=?^_`{|}~-@x-y.example",
    "UPPER@EXAMPLE.COM",
    "x@127.0.0.1",
    # Not bare: these take the policy's way, whatever it makes of them.
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@-x.example",
    "a@x-.example",
    "a@x..example",
    '"quoted local"@example.com',
    "Ada <ada@example.com>",
    "ada@example.com (comment)",
    " ada@example.com",
    "ada@example.com,b@example.com",
    "a@b@example.com",
    "a" * 70 + "@example.com",
    "ada@exämple.com",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_a_bare_address_is_written_as_the_policy_writes_it(address: str) -> None:
    assert _address_header("To", address) == _parsed_address_header("To", address)


def test_a_header_with_a_line_break_is_refused_as_before() -> None:
    fields = dict(CASES["plain ascii"], subject="Hi\r\nBcc: everyone@example.com")
    with pytest.raises(ValueError, match="linefeed"):
        build_message(**fields)
    with pytest.raises(ValueError, match="linefeed"):
        compose(**fields)


def test_a_message_without_a_recipient_is_refused_as_before() -> None:
    with pytest.raises(ValueError, match="To address"):
        compose(**dict(CASES["plain ascii"], to=""))


def test_an_address_outside_ascii_is_left_to_the_email_package() -> None:
    with pytest.raises(NotComposable):
        compose(**dict(CASES["plain ascii"], to="zoë@exämple.com"))


def test_each_message_gets_its_own_id_and_boundary_unless_given_one() -> None:
    first, second = (compose(**CASES["plain ascii"]) for _ in range(2))
    assert first.message_id != second.message_id and len(first.message_id) == 32
    assert parsed(first.data).get_boundary() != parsed(second.data).get_boundary()
    assert parsed(first.data)["Message-ID"] == f"<{first.message_id}@shop.example>"
