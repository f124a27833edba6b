"""The storefront's home page and layout."""

from __future__ import annotations

import re

import pytest

from storage import categories
from storage.database import connect
from tests.support.catalog import insert_product


async def test_home_lists_published_products_escaped(client, fresh_db) -> None:
    await insert_product(fresh_db, "mug", "Mug <script>alert(1)</script>", price=1250)
    await insert_product(fresh_db, "hidden", "Hidden thing", published=False)
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "Mug &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "€12.50" in html
    assert "Hidden thing" not in html


async def test_layout_has_search_cart_account_and_viewport(client) -> None:
    html = await (await client.get("/")).text()
    assert 'name="viewport"' in html
    assert 'role="search"' in html
    assert 'name="q"' in html
    assert 'href="/cart"' in html
    assert 'href="/login?next=/"' in html or 'href="/login?next=%2F"' in html


async def test_stylesheet_is_served_with_44px_touch_targets(client) -> None:
    resp = await client.get("/static/css/site.css")
    css = await resp.text()
    assert resp.status == 200
    assert "--touch: 44px" in css
    assert "min-height: var(--touch)" in css


async def test_an_unknown_page_is_the_shops_404_page(client) -> None:
    resp = await client.get("/no-such-page?q=<b>")
    html = await resp.text()
    assert (resp.status, resp.content_type) == (404, "text/html")
    assert "We could not find that page" in html and 'role="search"' in html
    assert "<b>" not in html
    # The API and the files keep their own answers.
    api = await client.get("/api/v1/no-such-thing")
    assert (api.status, api.content_type) == (404, "application/problem+json")
    assert (await client.get("/static/no-such-file.css")).content_type != "text/html"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/cart",
        "/checkout",
        "/login",
        "/register",
        "/forgot-password",
        "/products/nope",
        "/nowhere",
    ],
)
async def test_every_storefront_page_has_the_category_nav(client, fresh_db, path) -> None:
    conn = await connect(fresh_db)
    try:
        clothing = await categories.create(conn, slug="clothing", name="Clothing & more")
        await categories.create(conn, slug="tees", name="Tees", parent_id=clothing.id)
    finally:
        await conn.close()
    html = await (await client.get(path)).text()
    nav = re.search(r'<nav class="category-nav" aria-label="Categories">(.*?)</nav>', html, re.S)
    assert nav, html[:3000]
    # The top categories only, escaped.
    assert re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav.group(1)) == [
        ("/c/clothing", "Clothing &amp; more")
    ]
