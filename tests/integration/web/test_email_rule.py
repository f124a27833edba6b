"""One email rule everywhere: the API, the storefront's forms, the checkout and createadmin accept
and refuse the same addresses, and store them in the form sign-in looks up."""

from __future__ import annotations

import pytest

from auth.admins import create_admin
from tests.support.browser import PASSWORD, post_form
from tests.support.db import sql
from tests.support.orders import ADDRESS, stocked_product

# Each is refused by sign-in; createadmin used to take every one of them.
REFUSED = [
    "admin@localhost",
    "ops@shop.local",
    "Ada <ada@example.com>",
    '"ada lovelace"@example.com',
    "ada@[127.0.0.1]",
]
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}


@pytest.mark.parametrize("address", REFUSED)
async def test_every_entry_point_refuses_the_same_addresses(client, fresh_db, address) -> None:
    register = await client.post(
        "/api/v1/auth/register", json={"email": address, "password": PASSWORD, "name": "Ada"}
    )
    assert register.status == 422 and "email" in (await register.json())["errors"]
    login = await client.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert login.status == 422 and "email" in (await login.json())["errors"]
    checkout = await client.post(
        "/api/v1/checkout",
        json={"email": address, "shipping_address": ADDRESS, "shipping_method": "standard"}
        | {"card": CARD},
    )
    assert checkout.status == 422 and "email" in (await checkout.json())["errors"]

    for path, fields in [
        ("/register", {"name": "Ada", "password": PASSWORD}),
        ("/login", {"password": PASSWORD}),
        ("/forgot-password", {}),
    ]:
        resp = await post_form(client, path, {"email": address, **fields})
        assert resp.status == 422, path
        assert 'id="e-email"' in await resp.text(), path

    await stocked_product(fresh_db, "tee", {"TEE-S": 3})
    added = await post_form(client, "/cart/items", {"sku": "TEE-S", "quantity": "1"})
    assert added.status == 303
    form = {"email": address, "address_id": "new", **ADDRESS, "shipping_method": "standard"}
    card = {"card_number": CARD["number"], "card_expiry": CARD["expiry"], "card_cvc": "123"}
    placed = await post_form(client, "/checkout", form | card | {"idempotency_key": "k" * 32})
    assert placed.status == 422 and 'id="e-email"' in await placed.text()

    with pytest.raises(ValueError, match="is not an email address"):
        await create_admin(
            fresh_db, email=address, name="Boss", password="a long admin secret", role="admin"
        )
    assert await sql(fresh_db, "SELECT count(*) FROM users") == 0
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 0


async def test_createadmin_stores_the_address_as_sign_in_finds_it(client, fresh_db) -> None:
    outcome = await create_admin(
        fresh_db,
        email="  Grace.Hopper@Navy.EXAMPLE.com ",
        name="Grace",
        password="a long admin secret",
        role="admin",
    )
    assert outcome == "created admin Grace.Hopper@navy.example.com"
    assert await sql(fresh_db, "SELECT email FROM users") == "Grace.Hopper@navy.example.com"
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "grace.hopper@NAVY.example.com", "password": "a long admin secret"},
    )
    assert login.status == 200, await login.text()
    again = await client.post(
        "/api/v1/auth/register",
        json={"email": "GRACE.HOPPER@navy.example.com", "password": PASSWORD, "name": "G"},
    )
    assert again.status == 409
    promoted = await create_admin(
        fresh_db, email="grace.hopper@navy.example.com", name="", password="", role="staff"
    )
    assert promoted == "grace.hopper@navy.example.com is now staff (password unchanged)"
