"""The staff product editor as people use it: the staff layout (not the storefront's), an error
summary at the top linking to each field in the form's order, a sticky save bar, and prices in
the shop's currency (SHOP_CURRENCY) without a currency field to fill in."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.admin import create, error_of, post, product_form, staff
from tests.support.browser import signed_in
from tests.support.db import fetch


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"shop_currency": "GBP"}


async def test_the_staff_pages_have_their_own_layout(client, fresh_db) -> None:
    await staff(client, fresh_db)
    for path in ("/admin/", "/admin/products", "/admin/products/new"):
        page = await (await client.get(path)).text()
        assert 'class="admin-header"' in page, path
        assert 'action="/search"' not in page and 'href="/cart"' not in page, path
        assert 'aria-label="Staff"' in page, path
        assert '<a href="/ops/">Operations</a>' not in page, path  # staff: no link to /ops
    page = await (await client.get("/admin/products")).text()
    assert re.search(r'<a href="/admin/products" aria-current="page">Products</a>', page)


async def test_an_admin_gets_a_link_to_the_operators_pages(client, fresh_db) -> None:
    await signed_in(client, role="admin", fresh_db=fresh_db)
    page = await (await client.get("/admin/")).text()
    assert '<a href="/ops/">Operations</a>' in page


async def test_a_refused_save_lists_every_problem_at_the_top_in_the_forms_order(
    client, fresh_db
) -> None:
    await staff(client, fresh_db)
    data = product_form(
        {"sku": "MUG-1", "price": "twelve", "stock": "-1"},
        slug="Bad Slug",
        name="",
    )
    resp = await post(client, "/admin/products/new", data)
    page = await resp.text()
    assert resp.status == 422
    box = page.split('<div class="error-summary"', 1)[1].split("</div>", 1)[0]
    links = re.findall(r'<a href="#([^"]+)">([^<]+)</a>', box)
    assert [target for target, _ in links] == ["f-name", "f-slug", "f-v-0-price", "f-v-0-stock"]
    assert links[0][1] == "Name: Enter a name."
    assert links[2][1] == "Variant 1 price: Enter a price such as 12.50."
    assert links[3][1] == "Variant 1 stock: Stock cannot be below 0."
    assert "4 things to fix" in box
    assert error_of(page, "v-0-price") == "Enter a price such as 12.50."  # and beside the field
    assert page.index("error-summary") < page.index('id="f-name"')  # at the top of the form
    assert '<div class="save-bar">' in page and "4 things to fix</a>" in page


async def test_new_variants_are_priced_in_the_shops_currency(client, fresh_db) -> None:
    await staff(client, fresh_db)
    page = await (await client.get("/admin/products/new")).text()
    assert "Price (GBP)" in page
    assert 'name="v-0-currency" value="GBP"' in page
    assert not re.search(r'<input[^>]*type="text"[^>]*name="v-0-currency"', page)
    row = {"sku": "MUG-1", "name": "Mug", "price": "4.50", "stock": "2"}  # no currency posted
    product_id = await create(client, product_form(row))
    [variant] = await fetch(
        fresh_db, "SELECT price_amount, currency FROM variants WHERE product_id = $1", product_id
    )
    assert (variant["price_amount"], variant["currency"]) == (450, "GBP")
    page = await (await client.get(f"/admin/products/{product_id}")).text()
    assert "Prices in GBP" in page and '<div class="save-bar">' in page
    assert re.search(r'<input id="f-image" name="image" type="file" multiple', page)
