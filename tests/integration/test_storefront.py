"""The storefront's home page and layout."""

from __future__ import annotations

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


async def test_unknown_page_is_404(client) -> None:
    assert (await client.get("/no-such-page")).status == 404
