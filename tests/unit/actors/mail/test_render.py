"""Rendering the order emails and the low-stock notice (actors.mail.render), without any service."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from actors.mail.render import (
    UnknownEmailKind,
    describe_rate,
    order_summary,
    render_low_stock_email,
    render_order_email,
    shop_url,
)
from domain.checkout import address_lines
from storage.order_payments import Payment
from storage.orders import Order, OrderDetail, OrderLine, Transition
from storage.stock import StockLevel
from tests.support.orders import ADDRESS

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NUMBER = "ABCD-EFGH-JKMN"
LINK = f"https://shop.example/account/orders/{NUMBER}"


def detail(
    *,
    tax: int = 0,
    currency: str = "EUR",
    tracking_number: str | None = None,
    transitions: tuple[tuple[str, str], ...] = (),
    **order: Any,
) -> OrderDetail:
    """An order of 2 x 15.00 (TEE-M) and 1 x 12.00 (MUG) with 4.95 shipping; `transitions` as
    (to_status, note) after the first, pending one."""
    values: dict[str, Any] = {
        "id": 7,
        "number": NUMBER,
        "user_id": None,
        "email": "ada@example.com",
        "status": "pending",
        "currency": currency,
        "subtotal_amount": 4200,
        "shipping_amount": 495,
        "tax_amount": tax,
        "total_amount": 4695 + tax,
        "tax_rate_bps": 2000 if tax else 0,
        "shipping_method": "Standard delivery",
        "shipping_address": ADDRESS,
        "tracking_number": tracking_number,
        "placed_at": NOW,
        "updated_at": NOW,
    }
    lines = [
        OrderLine(1, 10, 1, "TEE-M", "Tee - M", 1500, 2, 3000),
        OrderLine(2, 11, 2, "MUG", "Mug", 1200, 1, 1200),
    ]
    history = [Transition(None, "pending", "guest", None, None, "", NOW)] + [
        Transition(None, to, "system", None, None, note, NOW) for to, note in transitions
    ]
    return OrderDetail(Order(**(values | order)), lines, None, history)


def render(kind: str, order: OrderDetail | None = None, shop_name: str = "aioshop") -> Any:
    return render_order_email(
        kind,
        shop_name=shop_name,
        public_url="https://shop.example/",
        detail=order or detail(),
        locale="en_IE",
        time_zone="Europe/Dublin",
    )


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        ("placed", f"We have your Mug & Co order {NUMBER}"),
        ("confirmed", f"Your Mug & Co order {NUMBER} is confirmed"),
        ("shipped", f"Your Mug & Co order {NUMBER} is on its way"),
        ("delivered", f"Your Mug & Co order {NUMBER} was delivered"),
        ("cancelled", f"Your Mug & Co order {NUMBER} is cancelled"),
    ],
)
def test_every_kind_sums_up_the_order_in_both_parts(kind: str, subject: str) -> None:
    rendered = render(kind, shop_name="Mug & Co")
    assert rendered.subject == subject
    for part in (rendered.text, rendered.html):
        for fragment in (NUMBER, "Tee - M", "TEE-M", "€30.00", "MUG", "€12.00", "€42.00"):
            assert fragment in part
        assert "€4.95" in part and "€46.95" in part
        assert "12 Analytical Row" in part
        assert LINK in part
    assert "Tee - M\n  SKU TEE-M, 2 x €15.00: €30.00\n" in rendered.text
    assert "Subtotal: €42.00\n" in rendered.text
    assert "Shipping (Standard delivery): €4.95\nTotal: €46.95\n" in rendered.text  # no tax
    assert "Tax" not in rendered.html
    assert "12 Analytical Row\nN1 7AA London\nUnited Kingdom\n" in rendered.text
    assert f'href="{LINK}"' in rendered.html
    assert "Mug &amp; Co" in rendered.html and "Mug & Co" in rendered.text


def test_tax_is_shown_with_its_rate_when_charged() -> None:
    rendered = render("confirmed", detail(tax=940))
    assert "Tax (20%): €9.40\nTotal: €56.35\n" in rendered.text
    assert "Tax (20%)" in rendered.html and "€9.40" in rendered.html


def test_shipped_names_the_tracking_number_only_when_there_is_one() -> None:
    with_number = render("shipped", detail(tracking_number="1Z<99>"))
    assert "Tracking number: 1Z<99>\n" in with_number.text
    assert "<strong>1Z&lt;99&gt;</strong>" in with_number.html
    without = render("shipped")
    assert "Tracking number" not in without.text and "Tracking number" not in without.html


@pytest.mark.parametrize(
    "note", ["The card was declined.", "not paid within 30 minutes", "Customer asked & paid"]
)
def test_cancelled_gives_the_reason(note: str) -> None:
    order = detail(transitions=(("confirmed", "paid"), ("cancelled", note)))
    rendered = render("cancelled", order)
    assert f"Your order is cancelled.\nReason: {note}\n" in rendered.text
    assert f"Reason: {note.replace('&', '&amp;')}</p>" in rendered.html
    assert "Reason: paid" not in rendered.text  # the confirmation's note stays out


def test_cancelled_without_a_note_has_no_reason() -> None:
    rendered = render("cancelled", detail(transitions=(("cancelled", ""),)))
    assert "Reason" not in rendered.text and "Reason" not in rendered.html


def test_customer_text_is_escaped_in_html_and_verbatim_in_text() -> None:
    address = ADDRESS | {"full_name": '<script>"x"</script>', "line2": "Flat <3>"}
    rendered = render("placed", detail(shipping_address=address, shipping_method="Post & <Co>"))
    assert "Hello &lt;script&gt;&#34;x&#34;&lt;/script&gt;," in rendered.html
    assert "Flat &lt;3&gt;" in rendered.html
    assert "Shipping (Post &amp; &lt;Co&gt;)</td>" in rendered.html
    assert "Shipping (Post & <Co>): €4.95" in rendered.text
    assert "<script>" not in rendered.html
    assert 'Hello <script>"x"</script>,' in rendered.text
    assert "Flat <3>" in rendered.text


def test_money_follows_the_currency() -> None:
    rendered = render("placed", detail(currency="JPY"))
    assert "2 x JP¥1,500: JP¥3,000" in rendered.text
    assert "Total: JP¥4,695" in rendered.text


def test_summary_reads_the_note_of_the_status_the_email_reports() -> None:
    order = detail(transitions=(("confirmed", "paid"), ("cancelled", "out of ink")))
    assert order_summary(order, "cancelled", locale="en_IE").note == "out of ink"
    assert order_summary(order, "confirmed", locale="en_IE").note == "paid"
    assert order_summary(order, "placed", locale="en_IE").note == ""  # the pending transition's
    assert order_summary(order, "placed", locale="en_IE").tax is None
    assert order_summary(detail(tax=1), "placed", locale="en_IE").tax == "€0.01"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(UnknownEmailKind, match="refunded"):
        render("refunded")
    with pytest.raises(ValueError, match="pending"):
        order_summary(detail(), "pending", locale="en_IE")  # a status, but no email of its own


@pytest.mark.parametrize(
    ("basis_points", "expected"),
    [(2000, "20%"), (750, "7.5%"), (825, "8.25%"), (1000, "10%"), (5, "0.05%"), (0, "0%")],
)
def test_rates_read_naturally(basis_points: int, expected: str) -> None:
    assert describe_rate(basis_points) == expected


def test_address_lines_leave_out_empty_parts() -> None:
    assert address_lines(ADDRESS) == [
        "Ada Lovelace",
        "12 Analytical Row",
        "N1 7AA London",
        "United Kingdom",
    ]
    assert address_lines({"full_name": "A", "line1": "B", "line2": "C", "city": "D"}) == [
        "A",
        "B",
        "C",
        "D",
    ]
    assert address_lines({"postal_code": "1000"}) == ["1000"]
    with_phone = {**ADDRESS, "phone": "+44 20 7946 0000"}
    assert address_lines(with_phone)[-1] == "United Kingdom"
    assert address_lines(with_phone, phone=True)[-2:] == ["United Kingdom", "+44 20 7946 0000"]


@pytest.mark.parametrize("public_url", ["https://shop.example", "https://shop.example/"])
def test_shop_urls_have_no_double_slash(public_url: str) -> None:
    assert shop_url(public_url, "/admin") == "https://shop.example/admin"


def test_low_stock_lists_each_variant_with_a_link_to_its_product() -> None:
    levels = [
        StockLevel(1, 40, "TEE-M", "Tee", "M", 0),
        StockLevel(2, 41, "MUG", "Mug <b>", "", 3),
    ]
    rendered = render_low_stock_email(
        shop_name="aioshop", public_url="https://shop.example/", levels=levels, threshold=5
    )
    assert rendered.subject == "Low stock at aioshop: 2 variants"
    assert "TEE-M: 0 left\n  Tee - M\n  https://shop.example/admin/products/40\n" in rendered.text
    assert "MUG: 3 left\n  Mug <b>\n  https://shop.example/admin/products/41\n" in rendered.text
    assert "5 units or fewer" in rendered.text and "5 units or fewer" in rendered.html
    assert 'href="https://shop.example/admin/products/41"' in rendered.html
    assert "Mug &lt;b&gt;" in rendered.html and "<b>" not in rendered.html


def test_low_stock_subject_counts_one_variant() -> None:
    rendered = render_low_stock_email(
        shop_name="S",
        public_url="http://s",
        levels=[StockLevel(1, 2, "A", "A", "", 1)],
        threshold=1,
    )
    assert rendered.subject == "Low stock at S: 1 variant"


@pytest.mark.parametrize(
    ("status", "refunded"), [("captured", True), ("refunded", True), ("voided", False)]
)
def test_a_cancelled_paid_order_says_it_is_refunded(status: str, refunded: bool) -> None:
    order = detail(transitions=(("cancelled", ""),))
    payment = Payment("test", "tok_ok_1", "visa", "4242", 4695, "EUR", status, None, "ch_1")
    rendered = render("cancelled", replace(order, payment=payment))
    says = "We are refunding €46.95 to your card"
    assert (says in rendered.text, says in rendered.html) == (refunded, refunded)


# -- pictures beside the lines (storage.catalog_reads.line_images) ------------------------------


def img_tags(html_text: str) -> list[dict[str, str | None]]:
    from html.parser import HTMLParser

    found: list[dict[str, str | None]] = []

    class Images(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                found.append(dict(attrs))

    Images().feed(html_text)
    return found


def test_order_emails_show_a_lines_picture_from_the_public_url_with_size_and_alt() -> None:
    from actors.mail.render import ORDER_SUBJECTS
    from storage.catalog_reads import Thumbnail

    renditions = {"640": "products/1/ab-640.webp", "320": "products/1/ab-320.webp"}
    pictures = {1: Thumbnail("products/1/ab.jpg", 880, 660, 'Tee in "Red" <b>', renditions)}
    for kind in ORDER_SUBJECTS:
        email = render_order_email(
            kind,
            shop_name="aioshop",
            public_url="https://shop.example/",
            detail=detail(),
            locale="en_IE",
            time_zone="UTC",
            images=pictures,
        )
        # Only the tee has a picture: its smallest rendition, absolute, 64 wide in proportion.
        assert img_tags(email.html) == [
            {
                "src": "https://shop.example/media/products/1/ab-320.webp",
                "width": "64",
                "height": "48",
                "alt": 'Tee in "Red" <b>',
                "style": img_tags(email.html)[0]["style"],
            }
        ]
        assert "&lt;b&gt;" in email.html and "<b>" not in email.html  # alt text escaped
        assert 'colspan="2"' in email.html  # the totals span the pictures' column
        assert "media/" not in email.text  # the text part has no pictures


def test_order_emails_without_pictures_have_no_image_and_no_empty_column() -> None:
    email = render("placed")
    assert img_tags(email.html) == []
    assert "colspan" not in email.html and 'width="76"' not in email.html
    assert "Tee - M" in email.html and "Mug" in email.html


def test_a_picture_without_alt_text_is_named_after_its_line() -> None:
    from storage.catalog_reads import Thumbnail

    pictures = {2: Thumbnail("products/2/mug.png", 300, 600, "", {})}  # no renditions yet
    email = render_order_email(
        "placed", shop_name="aioshop", public_url="https://shop.example", detail=detail(),
        locale="en_IE", time_zone="UTC", images=pictures,
    )  # fmt: skip
    [tag] = img_tags(email.html)
    assert tag["src"] == "https://shop.example/media/products/2/mug.png"
    assert (tag["width"], tag["height"], tag["alt"]) == ("64", "128", "Mug")


def test_order_emails_say_when_the_order_was_placed_in_the_shops_time_zone() -> None:
    # NOW is 12:00 UTC on 1 March; New York is then on EST (UTC-5).
    email = render_order_email(
        "placed", shop_name="aioshop", public_url="https://shop.example/", detail=detail(),
        locale="en_US", time_zone="America/New_York",
    )  # fmt: skip
    assert 'Placed <time datetime="2025-03-01T12:00:00Z">Mar 1, 2025, 7:00\u202fAM</time>' in (
        email.html
    )
    assert "placed Mar 1, 2025, 7:00\u202fAM\n" in email.text
