"""The storefront's home page and layout."""

from __future__ import annotations

from storage.database import connect


async def test_home_lists_published_products_escaped(client, fresh_db) -> None:
    conn = await connect(fresh_db)
    try:
        await conn.execute(
            "INSERT INTO products (slug, name, price_amount, price_currency) VALUES"
            " ('mug', 'Mug <script>alert(1)</script>', 1250, 'EUR'),"
            " ('hidden', 'Hidden thing', 100, 'EUR')"
        )
        await conn.execute("UPDATE products SET is_published = false WHERE slug = 'hidden'")
    finally:
        await conn.close()
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
