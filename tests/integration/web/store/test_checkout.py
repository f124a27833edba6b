"""The storefront's shopping pages without JavaScript: cart, checkout, confirmation, orders."""

from __future__ import annotations

import html
import re
from typing import Any

import aiohttp
from structlog.testing import capture_logs
from yarl import URL

from tests.support.browser import PASSWORD, cookie, post_form
from tests.support.db import fetch, sql
from tests.support.orders import ADDRESS, stocked_product
from web.app import create_app
from web.checkout import ORDERS_PLACED

CARD = {"card_number": "4242 4242 4242 4242", "card_expiry": "12/39", "card_cvc": "123"}
NUMBER = r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}"
TIMES = "\N{MULTIPLICATION SIGN}"


async def page(client: Any, path: str, status: int = 200) -> str:
    resp = await client.get(path, allow_redirects=False)
    text = await resp.text()
    assert resp.status == status, (path, resp.status, text[:3000])
    return text


def form_fields(text: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action`."""
    start = text.index(f'action="{action}"')
    form = text[start : text.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def note_of(text: str, variant_id: int) -> str:
    """The message beside one cart line."""
    match = re.search(
        rf'<p class="field-error cart-line-note" id="note-{variant_id}">([^<]*)<', text
    )
    assert match, text
    return html.unescape(match.group(1))


async def add(client: Any, sku: str, quantity: int = 1, status: int = 303) -> str:
    resp = await post_form(
        client, "/cart/items", {"sku": sku, "quantity": str(quantity), "product": "tee"}
    )
    assert resp.status == status, await resp.text()
    return await resp.text()


def checkout_form(token: str, **changes: str) -> dict[str, str]:
    fields = {
        "email": "guest@example.com",
        "address_id": "new",
        **ADDRESS,
        "shipping_method": "standard",
        **CARD,
        "idempotency_key": token,
    }
    return fields | changes


async def token_of(client: Any) -> str:
    text = await page(client, "/checkout")
    match = re.search(r'name="idempotency_key" value="([^"]+)"', text)
    assert match, text
    return match.group(1)


async def submit_checkout(client: Any, **changes: str) -> str:
    """Submit the storefront's checkout form with the defaults; the confirmation's path."""
    resp = await post_form(client, "/checkout", checkout_form(await token_of(client), **changes))
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    assert re.fullmatch(rf"/orders/{NUMBER}/thanks", location), location
    return location


async def register(client: Any, email: str, next_path: str = "/account") -> aiohttp.ClientResponse:
    resp = await post_form(
        client,
        "/register",
        {"name": "Ada", "email": email, "password": PASSWORD, "next": next_path},
    )
    assert resp.status == 303, await resp.text()
    return resp


async def test_the_product_form_adds_to_the_cart_and_the_header_counts(client, fresh_db) -> None:
    skus = await stocked_product(fresh_db, "tee", {"TEE-S": 3, "TEE-M": 0}, price=1500)
    chosen = await page(client, "/products/tee?sku=TEE-S")
    assert re.search(r'<button class="button" type="submit">Add to cart', chosen)
    sold_out = await page(client, "/products/tee?sku=TEE-M")
    assert re.search(r'<button class="button" type="submit" disabled>Add to cart', sold_out)
    assert 'class="cart-count"' not in chosen  # no cart yet: no count, and no query for one

    fields = form_fields(chosen, "/cart/items")
    assert fields["sku"] == "TEE-S" and fields["quantity"] == "1" and fields["product"] == "tee"
    # The page is the one every anonymous visitor shares: its form carries no CSRF token, and
    # the browser's Sec-Fetch-Site says the post comes from our own page (web.cookies).
    assert "csrf_token" not in fields
    browser = {"Sec-Fetch-Site": "same-origin"}
    resp = await client.post("/cart/items", data=fields, allow_redirects=False, headers=browser)
    assert resp.status == 303 and resp.headers["Location"] == "/cart"
    assert "HttpOnly" in resp.headers["Set-Cookie"] and cookie(client, "aioshop_cart")
    await client.post("/cart/items", data=fields, allow_redirects=False, headers=browser)

    cart = await page(client, "/cart")
    assert 'href="/products/tee">Tee</a>' in cart and "€15.00 each" in cart
    assert f'id="qty-{skus["TEE-S"]}"' in cart and 'value="2"' in cart
    assert "€30.00" in cart and 'href="/checkout"' in cart
    assert re.search(r'Cart <span class="cart-count">2<span class="visually-hidden"> items', cart)
    home = await page(client, "/")
    assert '<span class="cart-count">2<' in home


async def test_quantities_change_and_lines_go(client, fresh_db) -> None:
    skus = await stocked_product(fresh_db, "tee", {"TEE-S": 5, "TEE-M": 5}, price=1000)
    await add(client, "TEE-S")
    await add(client, "TEE-M", 2)
    resp = await post_form(client, f"/cart/items/{skus['TEE-S']}", {"quantity": "4"})
    assert resp.status == 303 and resp.headers["Location"] == "/cart"
    cart = await page(client, "/cart")
    assert "€40.00" in cart and "€60.00" in cart  # the line, and the subtotal

    resp = await post_form(client, f"/cart/items/{skus['TEE-M']}/remove", {})
    assert resp.status == 303
    resp = await post_form(client, f"/cart/items/{skus['TEE-M']}/remove", {})
    assert resp.status == 303  # already gone: nothing to complain about
    resp = await post_form(client, f"/cart/items/{skus['TEE-S']}", {"quantity": "0"})
    assert resp.status == 303
    assert "Your cart is empty." in await page(client, "/cart")
    assert await sql(fresh_db, "SELECT count(*) FROM cart_items") == 0
    # An empty cart has nothing to check out.
    resp = await client.get("/checkout", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/cart"


async def test_stock_and_input_problems_are_pages_that_say_so(client, fresh_db) -> None:
    skus = await stocked_product(fresh_db, "tee", {"TEE-S": 3, "TEE-M": 1}, price=1000)
    await add(client, "TEE-S", 2)
    too_many = await add(client, "TEE-S", 2, status=409)
    assert "we have only 3 of Tee (TEE-S), and your cart has 2 already." in too_many
    assert 'href="/products/tee">Back to Tee (TEE-S)</a>' in too_many
    unknown = await add(client, "NOPE-1", status=404)
    assert "not on sale any more" in unknown
    assert "Choose an option" in await add(client, "", status=422)

    resp = await post_form(client, f"/cart/items/{skus['TEE-S']}", {"quantity": "7"})
    text = await resp.text()
    assert resp.status == 409 and note_of(text, skus["TEE-S"]) == "Only 3 left."
    assert f'id="qty-{skus["TEE-S"]}"' in text and 'value="7"' in text  # as typed
    resp = await post_form(client, f"/cart/items/{skus['TEE-S']}", {"quantity": "lots"})
    assert resp.status == 422 and "Enter a quantity from 0 to 999." in await resp.text()
    resp = await post_form(client, f"/cart/items/{skus['TEE-M']}", {"quantity": "1"})
    assert resp.status == 404 and "not in your cart" in await resp.text()
    resp = await post_form(client, "/cart/items/abc", {"quantity": "1"})
    assert resp.status == 404

    # Stock sold elsewhere since the line was added: the line says so, checkout waits.
    await sql(fresh_db, "UPDATE variants SET stock_on_hand = 0 WHERE sku = 'TEE-S'")
    cart = await page(client, "/cart")
    assert note_of(cart, skus["TEE-S"]) == "Sold out"
    assert 'href="/checkout"' not in cart and 'id="cart-blocked"' in cart
    # The unsafe requests of this test all needed the CSRF token.
    resp = await client.post("/cart/items", data={"sku": "TEE-M"}, allow_redirects=False)
    assert resp.status == 403


async def test_checkout_errors_stand_beside_their_fields_and_keep_what_was_typed(
    client, fresh_db
) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1000)
    await add(client, "TEE-S")
    token = await token_of(client)
    form = checkout_form(
        token,
        email="not-an-email",
        city="",
        country="xx1",
        card_number="4242 4242 4242 4241",
        card_expiry="01/20",
        card_cvc="",
        full_name="Ada <b>Lovelace</b>",
    )
    resp = await post_form(client, "/checkout", form)
    text = await resp.text()
    assert resp.status == 422
    for name in ("email", "city", "country", "card_number", "card_expiry", "card_cvc"):
        assert f'id="e-{name}"' in text, name
        assert f'<a href="#f-{name}">' in text, name  # the summary links to the field
    assert "This card has expired." in text and "Enter the town or city." in text
    assert 'value="not-an-email"' in text and 'value="01/20"' in text
    assert 'value="Ada &lt;b&gt;Lovelace&lt;/b&gt;"' in text and "<b>Lovelace" not in text
    assert "4242 4242 4242 4241" not in text and "4241" not in text  # the card is never echoed
    assert f'name="idempotency_key" value="{token}"' in text  # nothing was placed: kept
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 0


async def test_update_totals_shows_the_chosen_method_without_javascript(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1000)
    await add(client, "TEE-S")
    first = await page(client, "/checkout")
    assert re.search(r'data-total="shipping">€4.95<', first)  # the default: standard
    assert re.search(r'data-total="total">€14.95<', first)
    assert "Free on orders from €50.00: add €40.00 more to get it." in first
    fields = checkout_form(await token_of(client), shipping_method="express", action="update")
    resp = await post_form(client, "/checkout", fields)
    text = await resp.text()
    assert resp.status == 200 and re.search(r'data-total="total">€22.95<', text)
    assert re.search(r'value="express" checked', text)
    assert "4242 4242" not in text and 'value="123"' not in text
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 0


async def test_a_guest_checks_out_once_even_when_the_form_is_sent_twice(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 5}, price=3000)
    await add(client, "TEE-S", 2)
    fields = checkout_form(await token_of(client))
    placed = ORDERS_PLACED.labels("store")._value.get()
    first = await post_form(client, "/checkout", fields)
    second = await post_form(client, "/checkout", fields)  # a double click, or a retry
    assert first.status == second.status == 303
    assert ORDERS_PLACED.labels("store")._value.get() == placed + 1  # one order, counted once
    location = first.headers["Location"]
    assert second.headers["Location"] == location
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 1
    assert await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE sku = 'TEE-S'") == 3

    thanks = await page(client, location)
    number = location.split("/")[2]
    assert number in thanks and "Waiting for your payment" in thanks
    assert f'href="/orders/{number}/thanks">Check again</a>' in thanks  # no JavaScript needed
    assert "Tee - TEE-S" in thanks and "€60.00" in thanks  # free shipping from €50.00
    assert "Ada Lovelace" in thanks and "N1 7AA London" in thanks
    assert "guest@example.com" in thanks and "Visa ending in 4242" in thanks
    assert "Your cart is empty." in await page(client, "/cart")
    # A page of this checkout with other details cannot place a second order with its token.
    again = await post_form(client, "/checkout", fields | {"city": "Paris"})
    assert again.status == 409 and "already placed" in await again.text()


async def test_only_the_browser_that_ordered_sees_a_guest_confirmation(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 5}, price=1000)
    await add(client, "TEE-S")
    location = await submit_checkout(client)
    await page(client, location)
    jar_cookie = cookie(client, "aioshop-orders")
    assert jar_cookie and jar_cookie.startswith(location.split("/")[2] + ":")

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(str(client.make_url("")), cookie_jar=jar) as other:
        resp = await other.get(location)
        assert resp.status == 404 and "We could not find that order" in await resp.text()
        # A forged list (someone else's number with a made-up signature) is not believed.
        jar.update_cookies(
            {"aioshop-orders": jar_cookie[:-4] + "AAAA"}, URL(str(client.make_url("")))
        )
        assert (await other.get(location)).status == 404
        jar.update_cookies({"aioshop-orders": jar_cookie}, URL(str(client.make_url(""))))
        assert (await other.get(location)).status == 200  # the genuine cookie is the proof
    assert (await client.get("/orders/NOPE/thanks")).status == 404


async def test_out_of_stock_at_checkout_names_the_sku(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3, "TEE-M": 3}, price=1000)
    await add(client, "TEE-S", 2)
    await add(client, "TEE-M", 1)
    token = await token_of(client)
    await sql(fresh_db, "UPDATE variants SET stock_on_hand = 1 WHERE sku = 'TEE-S'")
    resp = await post_form(client, "/checkout", checkout_form(token))
    text = html.unescape(await resp.text())
    assert resp.status == 409
    assert "Not enough stock for Tee (TEE-S): only 1 left." in text and "TEE-M)" not in text
    assert 'value="Ada Lovelace"' in text and "4242 4242" not in text
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 0


async def test_a_customer_sees_their_orders_and_cancels_one(client, fresh_db) -> None:
    skus = await stocked_product(fresh_db, "tee", {"TEE-S": 4}, price=1000)
    await register(client, "ada@example.com")
    await add(client, "TEE-S", 3)
    location = await submit_checkout(client, email="", shipping_method="express")
    number = location.split("/")[2]
    thanks = await page(client, location)
    assert f'href="/account/orders/{number}"' in thanks and "ada@example.com" in thanks
    assert 'href="/account/orders"' in await page(client, "/account")

    listed = await page(client, "/account/orders")
    assert f'href="/account/orders/{number}"' in listed and "€42.95" in listed
    detail = await page(client, f"/account/orders/{number}")
    assert "Payment processing" in detail and "Placed" in detail
    # The order page only links to a page that asks first: one tap cannot cancel.
    assert f'href="/account/orders/{number}/cancel#cancel">Cancel order</a>' in detail
    assert f'action="/account/orders/{number}/cancel"' not in detail
    confirm = await page(client, f"/account/orders/{number}/cancel")
    assert "Cancel this order?" in confirm and "Yes, cancel the order" in confirm
    assert form_fields(confirm, f"/account/orders/{number}/cancel")["csrf_token"]
    assert f'href="/account/orders/{number}">Keep the order</a>' in confirm
    assert (
        await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE id = $1", skus["TEE-S"]) == 1
    )

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(str(client.make_url("")), cookie_jar=jar) as bob:
        await bob.get("/login")
        csrf = next(m.value for m in jar if m.key == "aioshop-csrf")
        resp = await bob.post(
            "/register",
            data={
                "name": "Bob",
                "email": "bob@example.com",
                "password": PASSWORD,
                "csrf_token": csrf,
            },
        )
        assert resp.status == 200  # followed to /account
        assert (await bob.get(f"/account/orders/{number}")).status == 404
        assert (await bob.get(f"/account/orders/{number}/cancel")).status == 404
        assert (await bob.get(location)).status == 404
        resp = await bob.post(
            f"/account/orders/{number}/cancel", data={"csrf_token": csrf}, allow_redirects=False
        )
        assert resp.status == 404
        assert number not in await (await bob.get("/account/orders")).text()

    resp = await post_form(client, f"/account/orders/{number}/cancel", {})
    assert (
        resp.status == 303 and resp.headers["Location"] == f"/account/orders/{number}?cancelled=1"
    )
    detail = await page(client, f"/account/orders/{number}?cancelled=1")
    assert "Your order is cancelled." in detail and "by you" in detail
    assert "Cancel order" not in detail
    assert (
        await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE id = $1", skus["TEE-S"]) == 4
    )
    again = await post_form(client, f"/account/orders/{number}/cancel", {})
    assert again.status == 409 and "can no longer be cancelled" in await again.text()
    too_late = await page(client, f"/account/orders/{number}/cancel")
    assert "can no longer be cancelled" in too_late and "Yes, cancel" not in too_late


async def test_a_customer_can_ship_to_a_saved_address(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 4}, price=1000)
    await register(client, "ada@example.com")
    saved = ADDRESS | {"full_name": "Ada at Work", "city": "Cambridge"}
    assert (await post_form(client, "/account/addresses", saved)).status == 303
    address_id = await sql(fresh_db, "SELECT id FROM addresses")
    await add(client, "TEE-S")
    text = await page(client, "/checkout")
    assert f'name="address_id" value="{address_id}" checked' in text
    assert "Signed in as <strong>ada@example.com</strong>" in text
    location = await submit_checkout(
        client, email="", address_id=str(address_id), full_name="", line1="", city=""
    )
    assert "Ada at Work" in await page(client, location)
    assert await sql(fresh_db, "SELECT shipping_address->>'city' FROM orders") == "Cambridge"


async def test_a_new_address_is_saved_to_the_account_when_asked(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 9}, price=1000)
    await add(client, "TEE-S")
    assert 'name="save_address"' not in await page(client, "/checkout")  # a guest has no account
    await register(client, "ada@example.com")
    checkout = await page(client, "/checkout")
    assert re.search(r'name="save_address" value="1"> Save this address to my account', checkout)
    saved = "SELECT full_name, city FROM addresses ORDER BY id"

    await submit_checkout(client, email="", city="Bath")  # not asked: not saved
    assert await fetch(fresh_db, saved) == []
    await add(client, "TEE-S")
    await submit_checkout(client, email="", save_address="1")
    await add(client, "TEE-S")
    await submit_checkout(client, email="", save_address="1", line2="")  # the same again: kept once
    assert [tuple(row) for row in await fetch(fresh_db, saved)] == [("Ada Lovelace", "London")]
    # Saved addresses are offered at the next checkout.
    await add(client, "TEE-S")
    address_id = await sql(fresh_db, "SELECT id FROM addresses")
    assert f'name="address_id" value="{address_id}" checked' in await page(client, "/checkout")


async def test_an_address_that_cannot_be_saved_leaves_the_order_placed(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 9}, price=1000)
    await register(client, "ada@example.com")
    await add(client, "TEE-S")
    await sql(
        fresh_db,
        """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'addresses are read-only today'; END $$""",
    )
    await sql(fresh_db, "CREATE TRIGGER no BEFORE INSERT ON addresses EXECUTE FUNCTION refuse()")
    with capture_logs() as logs:
        location = await submit_checkout(client, email="", save_address="1")
    assert "Ada Lovelace" in await page(client, location)
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 1
    assert await sql(fresh_db, "SELECT count(*) FROM addresses") == 0
    [failed] = [e for e in logs if e["event"] == "checkout.address_not_saved"]
    assert failed["reason"] == "error" and "read-only today" in failed["error"]


async def test_signing_up_during_checkout_keeps_the_guest_cart(client, fresh_db) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 4, "TEE-M": 4}, price=1000)
    await add(client, "TEE-S", 2)
    await add(client, "TEE-M")
    guest = await page(client, "/checkout")
    assert 'href="/register?next=/checkout"' in guest and 'href="/login?next=/checkout"' in guest

    resp = await register(client, "ada@example.com", next_path="/checkout")
    assert resp.headers["Location"] == "/checkout"
    signed_in = await page(client, "/checkout")
    assert "Signed in as <strong>ada@example.com</strong>" in signed_in
    assert (
        "Tee (TEE-S)" not in signed_in
        and f"2 {TIMES} €10.00" in signed_in
        and f"1 {TIMES} €10.00" in signed_in
    )
    assert not cookie(client, "aioshop_cart")  # merged: the guest's cookie is gone
    owner = "SELECT u.email FROM carts c JOIN users u ON u.id = c.user_id"
    assert await sql(fresh_db, owner) == "ada@example.com"
    assert await sql(fresh_db, "SELECT sum(quantity) FROM cart_items") == 3
    assert '<span class="cart-count">3<' in await page(client, "/")  # the user's cart, counted
    location = await submit_checkout(client, email="")
    assert await sql(fresh_db, "SELECT count(*) FROM orders WHERE user_id IS NOT NULL") == 1
    number = location.split("/")[2]
    assert f'href="/account/orders/{number}"' in await page(client, "/account/orders")


async def test_tax_shows_in_the_cart_and_the_checkout_when_the_shop_charges_it(
    aiohttp_client, settings_for, fresh_db
) -> None:
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1000)
    taxed = await aiohttp_client(create_app(settings_for(fresh_db, tax_rate_bps=2000)))
    try:
        await add(taxed, "TEE-S")
        cart = await page(taxed, "/cart")
        assert re.search(r"<dt>Tax</dt><dd>€2.00</dd>", cart)
        assert re.search(r"<dt>Total</dt><dd>€12.00</dd>", cart)
        checkout = await page(taxed, "/checkout")
        assert re.search(r'data-total="tax">€2.99<', checkout)  # 20% of 10.00 + 4.95 shipping
        assert re.search(r'data-total="total">€17.94<', checkout)
    finally:
        await taxed.close()
