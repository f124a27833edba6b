"""Values read as words on the storefront: dates in the shopper's time zone (the browser's
cookie), countries by name from a select, booleans and choices by name, money in the shop's
locale; the error summary at the top of each form."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp.test_utils import make_mocked_request

from domain.dates import format_moment
from storage import attributes, categories, products
from storage.database import connect
from storage.products import NewVariant
from tests.integration.web.store.test_checkout import add, checkout_form, submit_checkout, token_of
from tests.support.browser import PASSWORD, post_form
from tests.support.db import sql
from tests.support.orders import stocked_product
from web.app import create_app
from web.cookies import shopper_zone

ZONE_COOKIE = "aioshop-tz"


async def text_of(client: Any, path: str, status: int = 200, **kwargs: Any) -> str:
    resp = await client.get(path, **kwargs)
    text = await resp.text()
    assert resp.status == status, (path, resp.status, text[:2000])
    return text


def summary_box(text: str) -> str:
    """The error summary at the top of the form."""
    match = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', text, re.S)
    assert match, text
    return match.group(1)


def summary_links(text: str) -> list[str]:
    """The fields the error summary links to, in its order."""
    return re.findall(r'<a href="#f-([a-z_0-9]+)">', summary_box(text))


def time_in(text: str) -> str:
    """The words of the first <time> on an order row."""
    match = re.search(r'<span class="order-row-date"><time datetime="([^"]+)">([^<]+)</time>', text)
    assert match, text
    return html.unescape(match.group(2))


async def register(client: Any) -> None:
    resp = await post_form(
        client,
        "/register",
        {"name": "Ada", "email": "ada@example.com", "password": PASSWORD, "next": "/account"},
    )
    assert resp.status == 303, await resp.text()


async def test_dates_follow_the_browsers_time_zone_cookie_when_it_names_a_zone(
    client, fresh_db
) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1000)
    await register(client)
    await add(client, "TEE-S")
    await submit_checkout(client, email="")
    placed_at = await sql(fresh_db, "SELECT placed_at FROM orders")
    # No cookie: the shop's zone (SHOP_TIMEZONE, UTC here), as SHOP_LOCALE writes it.
    plain = await text_of(client, "/account/orders")
    assert time_in(plain) == format_moment(placed_at, "UTC", "en_IE")
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">', plain)
    for zone in ("Pacific/Chatham", "America/St_Johns", "Asia/Kathmandu"):  # odd offsets
        page = await text_of(client, "/account/orders", headers={"Cookie": f"{ZONE_COOKIE}={zone}"})
        assert time_in(page) == format_moment(placed_at, zone, "en_IE"), zone
        assert time_in(page) != time_in(plain)
    # A name zoneinfo does not know, a path, an overlong value, an empty one: the shop's zone.
    for sent in ("Mars/Olympus", "../../etc/passwd", "Europe/" + "x" * 80, "", "europe/paris"):
        page = await text_of(client, "/account/orders", headers={"Cookie": f"{ZONE_COOKIE}={sent}"})
        assert time_in(page) == time_in(plain), sent


async def test_a_nul_in_the_time_zone_cookie_is_ignored(client, fresh_db, settings) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1000)
    await register(client)
    await add(client, "TEE-S")
    await submit_checkout(client, email="")
    plain = await text_of(client, "/account/orders")
    # Over HTTP a NUL comes percent-encoded (aiohttp's client refuses to send a raw one) ...
    for sent in ("Asia/Tokyo%00", "Asia/Tokyo%00Z"):
        page = await text_of(client, "/account/orders", headers={"Cookie": f"{ZONE_COOKIE}={sent}"})
        assert time_in(page) == time_in(plain), sent
    # ... and raw, should a server in front pass one through.
    app = create_app(settings)
    for sent, zone in (("Asia/Tokyo\x00", "UTC"), ("Asia/Tokyo", "Asia/Tokyo")):
        request = make_mocked_request(
            "GET", "/", headers={"Cookie": f"{ZONE_COOKIE}={sent}"}, app=app
        )
        assert shopper_zone(request) == zone


async def test_the_shop_time_zone_and_locale_are_settings(aiohttp_client, settings_for, fresh_db):  # type: ignore[no-untyped-def]
    app = create_app(settings_for(fresh_db, shop_timezone="Asia/Tokyo", shop_locale="de_DE"))
    client = await aiohttp_client(app)
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=123456)
    await register(client)
    await add(client, "TEE-S")
    assert "1.234,56\xa0€" in html.unescape(await text_of(client, "/cart"))
    await submit_checkout(client, email="", country="DE")
    placed_at = await sql(fresh_db, "SELECT placed_at FROM orders")
    orders = await text_of(client, "/account/orders")
    assert time_in(orders) == format_moment(placed_at, "Asia/Tokyo", "de_DE")
    # The address form starts on the locale's country.
    account = await text_of(client, "/account")
    assert '<option value="DE" selected>Germany</option>' in account


async def test_the_account_address_form_chooses_a_country_by_name(client) -> None:
    await register(client)
    account = await text_of(client, "/account")
    select = account[account.index('<select id="f-country"') :]
    select = select[: select.index("</select>")]
    assert 'name="country"' in select and 'autocomplete="country"' in select
    names = [
        html.unescape(n) for n in re.findall(r'<option value="[A-Z]{2}"[^>]*>([^<]+)<', select)
    ]
    assert len(names) == 249 and names.index("Åland Islands") < names.index("Albania")
    assert '<option value="IE" selected>Ireland</option>' in select  # en_IE's country
    address = {"full_name": "Ada", "line1": "1 Row", "city": "London", "postal_code": "N1"}
    for bad in ("XX", "gb", "England", "G\x00", ""):
        resp = await post_form(client, "/account/addresses", {**address, "country": bad})
        text = await resp.text()
        assert resp.status == 422, (bad, text[:2000])
        assert 'id="e-country"' in text and summary_links(text) == ["country"], bad
        assert 'class="field field-invalid"' in text
    ok = await post_form(client, "/account/addresses", {**address, "country": "GB"})
    assert ok.status == 303
    assert "N1 London, United Kingdom</address>" in await text_of(client, "/account")


async def test_checkout_offers_countries_and_refuses_a_code_that_is_none(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1000)
    await add(client, "TEE-S")
    page = await text_of(client, "/checkout")
    assert '<select id="f-country" name="country" required autocomplete="shipping country"' in page
    assert '<option value="IE" selected>Ireland</option>' in page
    for bad in ("ZZ", "UK", "\x00\x00"):
        form = checkout_form(await token_of(client), country=bad)
        resp = await post_form(client, "/checkout", form)
        text = await resp.text()
        assert resp.status == 422, (bad, text[:2000])
        assert '<p class="field-error" id="e-country">Choose a country from the list.</p>' in text
        assert summary_links(text) == ["country"]
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 0
    await submit_checkout(client, country="FR")
    assert await sql(fresh_db, "SELECT shipping_address->>'country' FROM orders") == "FR"


async def test_the_error_summary_lists_errors_in_the_forms_order_and_takes_focus(client) -> None:
    resp = await post_form(
        client, "/register", {"name": "", "email": "not-an-email", "password": "short"}
    )
    text = await resp.text()
    assert resp.status == 422
    assert summary_links(text) == ["name", "email", "password"]
    box = re.search(r'<div class="error-summary"[^>]*>', text).group(0)  # type: ignore[union-attr]
    assert 'tabindex="-1"' in box and "autofocus" in box and 'role="alert"' in box
    assert text.index("error-summary") < text.index('id="f-name"')  # above the form's fields
    # Each link says what the message beside its field says.
    for name in ("name", "email", "password"):
        beside = re.search(rf'<p class="field-error" id="e-{name}">([^<]*)</p>', text)
        assert beside and beside.group(1) in summary_box(text), name
    resp = await post_form(client, "/login", {"email": "", "password": ""})
    assert summary_links(await resp.text()) == ["email", "password"]


async def test_checkout_summary_follows_the_fields_order(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1000)
    await add(client, "TEE-S")
    form = checkout_form(
        await token_of(client), card_cvc="", country="ZZ", city="", email="not-an-email"
    )
    text = await (await post_form(client, "/checkout", form)).text()
    assert summary_links(text) == ["email", "city", "country", "card_cvc"]


async def test_the_footer_links_answer_and_unknown_pages_are_not_found(client, fresh_db) -> None:
    conn = await connect(fresh_db)
    try:
        await categories.create(conn, slug="mugs", name="Mugs")
    finally:
        await conn.close()
    home = await text_of(client, "/")
    footer = home[home.index('<footer class="site-footer">') :]
    links = re.findall(r'<a href="([^"]+)"', footer)
    for expected in ("/c/mugs", "/pages/shipping", "/pages/returns", "/pages/contact",
                     "/pages/faq", "/pages/privacy", "/pages/terms", "/login",
                     "/account/orders"):  # fmt: skip
        assert expected in links, expected
    assert re.search(r"© \d{4} aioshop", footer)
    for link in links:
        page = await text_of(client, link)  # redirects followed: orders ask to sign in first
        assert '<footer class="site-footer">' in page, link
    contact = await text_of(client, "/pages/contact")
    assert "<h1>Contact us</h1>" in contact and "<title>Contact us · aioshop</title>" in contact
    for unknown in ("/pages/nope", "/pages/_page", "/pages/..%2Fbase", "/pages/FAQ"):
        assert "We could not find that page" in await text_of(client, unknown, status=404)


async def test_product_and_cart_show_booleans_and_choices_by_name(client, fresh_db) -> None:
    conn = await connect(fresh_db)
    try:
        await attributes.create_attribute(
            conn, slug="colour", name="Colour", kind="choice",
            choices=[("navy", "Navy blue", "#000080")],
        )  # fmt: skip
        await attributes.create_attribute(conn, slug="recycled", name="Recycled", kind="boolean")
        await attributes.create_attribute(
            conn, slug="volume", name="Volume", kind="number", unit="ml"
        )
        async with conn.transaction():
            await products.create(
                conn,
                slug="cup",
                name="Cup",
                attributes={"recycled": False, "volume": 350, "colour": "navy"},
                variants=[NewVariant("CUP-N", 1250, "EUR", 5, attributes={"colour": "navy"})],
            )
    finally:
        await conn.close()
    page = html.unescape(await text_of(client, "/products/cup"))
    assert "<dt>Recycled</dt>\n      <dd>No</dd>" in page
    assert "<dt>Colour</dt>\n      <dd>Navy blue</dd>" in page
    assert "<dt>Volume</dt>\n      <dd>350 ml</dd>" in page
    assert "False" not in page and ">navy<" not in page
    await add(client, "CUP-N")
    cart = html.unescape(await text_of(client, "/cart"))
    assert "Navy blue" in cart and "€12.50" in cart
    await submit_checkout(client)
    assert await sql(fresh_db, "SELECT name FROM order_lines") == "Cup - Navy blue"
