"""The order's payment page without JavaScript: waiting for the payment (a "Check again" link),
"Payment declined: <why>" with a form to pay with another card, then paid; who may pay; a
double submit is one attempt; a bad card, a stale page and a paid order are told in words.

The capture is the real order actor, called with real resources (the broker path is
tests/integration/actors/test_orders_declined.py's)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from actors.resources import Resources, open_resources
from configs.settings import Settings
from tests.integration.web.store.test_checkout import add, form_fields, page, register
from tests.integration.web.store.test_checkout import submit_checkout as checkout
from tests.support.browser import post_form, signed_in
from tests.support.db import sql
from tests.support.orders import run_captures, stocked_product

DECLINED = {"card_number": "4000 0000 0000 0002", "card_expiry": "12/39", "card_cvc": "123"}
INSUFFICIENT = DECLINED | {"card_number": "4000 0000 0000 9995"}
GOOD = DECLINED | {"card_number": "4242 4242 4242 4242"}


@pytest.fixture
async def res(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        yield await open_resources(settings, stack)


def text_of(page_html: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page_html)))


async def declined_order(client: Any, res: Resources, dsn: str, **card: str) -> str:
    """A guest order whose card was declined; its payment page's path."""
    await stocked_product(dsn, "tee", {"TEE-S": 5}, price=3000)
    await add(client, "TEE-S", 2)
    location = await checkout(client, **(DECLINED | card))
    waiting = await page(client, location)
    assert "Waiting for your payment" in waiting
    assert await run_captures(res, dsn) == 1
    return location


async def test_a_declined_card_says_why_and_another_card_pays_the_order(
    client, res, fresh_db
) -> None:
    location = await declined_order(client, res, fresh_db)
    number = location.split("/")[2]
    declined = await page(client, location)
    words = text_of(declined)
    assert "Your payment was declined" in words and "Thank you" not in words
    assert "Payment declined: Your card was declined by its bank." in words
    assert "You have not been charged. Your order is saved" in words
    assert await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE sku = 'TEE-S'") == 3
    assert "Your cart is empty." in await page(client, "/cart")  # the order is what is paid
    fields = form_fields(declined, f"/orders/{number}/pay")
    assert fields["idempotency_key"] and fields["csrf_token"]

    paid = {**GOOD, "idempotency_key": fields["idempotency_key"]}
    first = await post_form(client, f"/orders/{number}/pay", paid)
    second = await post_form(client, f"/orders/{number}/pay", paid)  # a double click
    assert first.status == second.status == 303
    assert first.headers["Location"] == f"/orders/{number}/thanks"
    assert await sql(fresh_db, "SELECT count(*) FROM payment_attempts") == 1
    assert "Waiting for your payment" in await page(client, location)
    assert await run_captures(res, fresh_db) == 1  # one new attempt, one capture
    confirmed = text_of(await page(client, location))
    assert "Thank you for your order" in confirmed and "Visa ending in 4242" in confirmed
    assert await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE sku = 'TEE-S'") == 3

    # A paid order takes no other card: said in words, nothing charged.
    again = await post_form(client, f"/orders/{number}/pay", GOOD | {"idempotency_key": "new"})
    assert again.status == 409
    assert "This order is already paid." in text_of(await again.text())
    assert await sql(fresh_db, "SELECT count(*) FROM test_gateway_charges") == 2


async def test_a_second_declined_card_leaves_the_order_payable(client, res, fresh_db) -> None:
    location = await declined_order(client, res, fresh_db)
    number = location.split("/")[2]
    token = form_fields(await page(client, location), f"/orders/{number}/pay")["idempotency_key"]
    resp = await post_form(
        client, f"/orders/{number}/pay", INSUFFICIENT | {"idempotency_key": token}
    )
    assert resp.status == 303
    # While that capture runs, another card waits for its outcome.
    busy = await post_form(client, f"/orders/{number}/pay", GOOD | {"idempotency_key": "other"})
    assert busy.status == 409 and "being processed" in text_of(await busy.text())
    await run_captures(res, fresh_db)
    words = text_of(await page(client, location))
    assert "Payment declined: Your card has insufficient funds." in words
    assert "Visa ending in 9995" in words and "Pay with another card" in words
    assert await sql(fresh_db, "SELECT status FROM orders") == "pending"


async def test_bad_cards_and_stale_pages_are_told_beside_their_fields(
    client, res, fresh_db
) -> None:
    location = await declined_order(client, res, fresh_db)
    number = location.split("/")[2]
    token = form_fields(await page(client, location), f"/orders/{number}/pay")["idempotency_key"]
    bad = {"card_number": "4242 4242 4242 4241", "card_expiry": "", "card_cvc": "1"}
    resp = await post_form(client, f"/orders/{number}/pay", bad | {"idempotency_key": token})
    text = await resp.text()
    assert resp.status == 422
    assert 'id="pe-card_number">This is not a valid card number.<' in text
    assert 'id="pe-card_expiry">Enter the expiry date as MM/YY.<' in text
    assert "4242 4242 4242 4241" not in text  # a card number is never written back
    stale = await post_form(client, f"/orders/{number}/pay", GOOD | {"idempotency_key": ""})
    assert stale.status == 422 and "This page has expired" in await stale.text()
    assert await sql(fresh_db, "SELECT count(*) FROM payment_attempts") == 0


async def test_only_the_owner_or_the_guests_browser_may_pay(client, res, fresh_db) -> None:
    location = await declined_order(client, res, fresh_db)
    number = location.split("/")[2]
    client.session.cookie_jar.clear()  # another browser: no guest cookie
    resp = await post_form(client, f"/orders/{number}/pay", GOOD | {"idempotency_key": "k"})
    assert resp.status == 404
    assert (await client.get(location)).status == 404
    await register(client, "mallory@example.com")  # signed in, but not the order's owner
    resp = await post_form(client, f"/orders/{number}/pay", GOOD | {"idempotency_key": "k"})
    assert resp.status == 404
    no_csrf = await client.post(
        f"/orders/{number}/pay", data=GOOD | {"idempotency_key": "k"}, allow_redirects=False
    )
    assert no_csrf.status == 403
    assert await sql(fresh_db, "SELECT count(*) FROM payment_attempts") == 0


async def test_the_account_order_page_offers_another_card(client, res, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 5}, price=3000)
    await register(client, "ada@example.com")
    await add(client, "TEE-S")
    location = await checkout(client, email="", **DECLINED)
    number = location.split("/")[2]
    await run_captures(res, fresh_db)
    detail = await page(client, f"/account/orders/{number}")
    words = text_of(detail)
    assert "Payment declined: Your card was declined by its bank." in words
    assert "Payment declined — pay with another card" in words and "processing" not in words
    assert 'href="#pay">Payment declined — pay with another card</a>' in detail
    # The list says so too, its row going to the order's payment form.
    listed = await page(client, "/account/orders")
    assert f'href="/account/orders/{number}#pay"' in listed
    assert "Payment declined — pay with another card" in html.unescape(listed)
    assert "Payment processing" not in listed
    token = form_fields(detail, f"/orders/{number}/pay")["idempotency_key"]
    resp = await post_form(client, f"/orders/{number}/pay", GOOD | {"idempotency_key": token})
    assert resp.status == 303
    await run_captures(res, fresh_db)
    assert "Confirmed" in await page(client, f"/account/orders/{number}")
    listed = await page(client, "/account/orders")
    assert "Confirmed" in listed and "Payment declined" not in html.unescape(listed)


async def test_the_staff_order_list_tells_a_declined_order(client, res, fresh_db) -> None:
    location = await declined_order(client, res, fresh_db)
    number = location.split("/")[2]
    client.session.cookie_jar.clear()
    await signed_in(client, role="admin", fresh_db=fresh_db)
    listed = html.unescape(await page(client, "/admin/orders"))
    row = re.search(rf"<tr>\s*<td><a href=\"/admin/orders/{number}\">.*?</tr>", listed, re.S)
    assert row is not None, listed
    assert "payment declined — waiting for another card" in row.group(0)
