"""Rendering and building account emails, the SMTP_URL parser and the local mailbox."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from actors.mail import mailbox
from actors.mail import transport as mailer
from actors.mail.render import account_link, describe_duration, render_account_email
from tests.support.settings import offline_settings


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://shop.example", "https://shop.example/reset-password?token=abc_-1"),
        ("https://shop.example/", "https://shop.example/reset-password?token=abc_-1"),
        ("https://example.com/shop/", "https://example.com/shop/reset-password?token=abc_-1"),
    ],
)
def test_links_have_no_double_slash(public_url: str, expected: str) -> None:
    assert (
        account_link(offline_settings(public_url=public_url), "password_reset", "abc_-1")
        == expected
    )


def test_verify_link_points_at_the_verify_page() -> None:
    link = account_link(offline_settings(public_url="http://127.0.0.1:8080"), "verify_email", "t")
    assert link == "http://127.0.0.1:8080/verify-email?token=t"


def test_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="newsletter"):
        render_account_email("newsletter", shop_name="S", name="N", link="L")


@pytest.mark.parametrize(
    ("kind", "subject", "valid_for"),
    [
        ("verify_email", "Confirm your email for Mug & Co", "48 hours"),
        ("password_reset", "Reset your Mug & Co password", "1 hour"),
    ],
)
def test_both_parts_carry_name_link_and_validity(kind: str, subject: str, valid_for: str) -> None:
    link = "https://shop.example/page?token=abc"
    rendered = render_account_email(kind, shop_name="Mug & Co", name="Zoë", link=link)
    assert rendered.subject == subject
    for part in (rendered.text, rendered.html):
        assert "Zoë" in part
        assert link in part
        assert valid_for in part
    assert "Mug & Co" in rendered.text
    assert "Mug &amp; Co" in rendered.html
    assert f'href="{link}"' in rendered.html
    assert "<img" not in rendered.html and "<link" not in rendered.html
    assert 'name="viewport"' in rendered.html


def test_html_is_escaped_and_text_is_verbatim() -> None:
    rendered = render_account_email(
        "verify_email", shop_name="S", name='<script>"x"</script>', link="L"
    )
    assert "&lt;script&gt;&#34;x&#34;&lt;/script&gt;" in rendered.html
    assert "<script>" not in rendered.html
    assert '<script>"x"</script>' in rendered.text


def test_durations_read_naturally() -> None:
    assert describe_duration(timedelta(hours=48)) == "48 hours"
    assert describe_duration(timedelta(hours=1)) == "1 hour"
    assert describe_duration(timedelta(minutes=30)) == "30 minutes"
    assert describe_duration(timedelta(minutes=1)) == "1 minute"


def test_sender_uses_shop_name_and_public_host() -> None:
    assert mailer.sender_for(offline_settings(public_url="https://shop.example:8443/x")) == (
        "aioshop <no-reply@shop.example>"
    )
    assert mailer.sender_for(offline_settings(shop_name="Mugs, Cups")) == (
        '"Mugs, Cups" <no-reply@127.0.0.1>'
    )


def test_message_is_multipart_alternative_with_id_and_date() -> None:
    message = mailer.build_message(
        sender="Shop <no-reply@shop.example>",
        to="ada@example.com",
        subject="Hi",
        text="plain body",
        html="<p>html body</p>",
    )
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert str(message["Message-ID"]).endswith("@shop.example>")
    assert message["Date"].datetime is not None
    parsed = message_from_bytes(message.as_bytes(), policy=default_policy)
    assert parsed["To"] == "ada@example.com"


async def test_mailbox_keeps_messages_newest_first(tmp_path: Path) -> None:
    local = offline_settings(data_dir=tmp_path)
    for number in range(3):
        message = mailer.build_message(
            sender="S <s@x.example>",
            to=f"user{number}@example.com",
            subject=f"Message {number}",
            text="t",
            html="<p>h</p>",
        )
        await mailer.send(local, message)
    names = sorted(path.name for path in (tmp_path / "mailbox").iterdir())
    assert len(names) == 3 and all(name.endswith(".eml") for name in names)
    entries = mailbox.read(tmp_path)
    assert [entry.subject for entry in entries] == ["Message 2", "Message 1", "Message 0"]
    assert entries[0].to == "user2@example.com"
    assert entries[0].date is not None
    assert [entry.subject for entry in mailbox.read(tmp_path, limit=1)] == ["Message 2"]


def test_missing_mailbox_is_empty(tmp_path: Path) -> None:
    assert mailbox.read(tmp_path) == []
