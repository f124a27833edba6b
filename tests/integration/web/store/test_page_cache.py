"""The page cache (web.store.page_cache): anonymous visitors share one render of each catalog
page, a catalog change shows on the next read, and nobody with a session or a cart ever gets
the shared page; the add-to-cart form of a shared page is checked by origin, not by token."""

from __future__ import annotations

import re
from typing import Any

from configs.settings import Settings
from storage.database import GET_CURRENT_LSN, connect
from tests.support.browser import cookie, csrf_of, post_form, signed_in
from tests.support.catalog import build_catalog
from web.app import create_app
from web.keys import CATALOG_CACHE
from web.middlewares import LSN_HEADER
from web.store.page_cache import PUBLIC_PAGE

SHARED = ("/", "/c/shoes", "/search?q=shoe&sort=price_asc", "/products/run-shoe")
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}  # what a browser sends with our own form


async def fetch(client: Any, path: str, **kwargs: Any) -> tuple[Any, bytes]:
    resp = await client.get(path, **kwargs)
    body = await resp.read()
    assert resp.status in (200, 304), (path, resp.status, body[:1000])
    return resp, body


async def change_price(dsn: str, sku: str, amount: int) -> int:
    """Change a price behind the cache's back; the commit position to announce."""
    conn = await connect(dsn)
    try:
        await conn.execute("UPDATE variants SET price_amount = $2 WHERE sku = $1", sku, amount)
        return int(await conn.fetchval(GET_CURRENT_LSN))
    finally:
        await conn.close()


async def test_anonymous_visitors_get_the_same_bytes(client, aiohttp_client, fresh_db) -> None:
    await build_catalog(fresh_db)
    other = await aiohttp_client(client.server)  # a second browser on the same server
    try:
        # The first visitor has been around: a CSRF cookie, a time zone, a read position.
        await csrf_of(client)
        client.session.cookie_jar.update_cookies({"aioshop-tz": "Asia/Tokyo"})
        for path in SHARED:
            first, first_body = await fetch(client, path)
            second, second_body = await fetch(other, path)
            assert first_body == second_body, path
            assert first.headers["ETag"] == second.headers["ETag"], path
            for resp in (first, second):
                assert resp.headers["Cache-Control"] == PUBLIC_PAGE, path
                assert "Set-Cookie" not in resp.headers, path
            page = first_body.decode()
            assert 'name="csrf-token"' not in page and 'name="csrf_token"' not in page, path
            assert 'href="/login?next=' in page, path
            assert 'class="cart-count"' not in page, path
    finally:
        await other.close()


async def test_a_change_shows_on_the_next_read_and_not_before_it_is_announced(
    client, fresh_db
) -> None:
    """The pages really are cached (an unannounced SQL change stays invisible); announcing the
    change's commit position, as every catalog writer does, makes the next read fresh."""
    await build_catalog(fresh_db)
    paths = ("/products/plain-mug", "/c/home", "/search?q=mug", "/")
    for path in paths:
        assert "€9.00" in (await fetch(client, path))[1].decode(), path
    lsn = await change_price(fresh_db, "MUG-2", 1234)
    for path in paths:
        assert "€9.00" in (await fetch(client, path))[1].decode(), path  # the cached page
    await client.app[CATALOG_CACHE].changed(lsn)
    for path in paths:
        page = (await fetch(client, path))[1].decode()
        assert "€12.34" in page and "€9.00" not in page, path


async def test_staff_creating_a_product_shows_on_the_home_page(
    client, fresh_db, staff_headers
) -> None:
    await build_catalog(fresh_db)
    assert "new-mug" not in (await fetch(client, "/"))[1].decode()
    resp = await client.post(
        "/api/v1/products",
        json={"slug": "new-mug", "name": "New mug", "price_amount": 900, "price_currency": "EUR"},
        headers=staff_headers,
    )
    assert resp.status == 201
    assert 'href="/products/new-mug"' in (await fetch(client, "/"))[1].decode()


async def test_a_read_at_a_newer_position_never_gets_an_older_page(
    client, aiohttp_client, fresh_db, settings: Settings
) -> None:
    """Two web processes share Redis. One keeps the page in memory and trusts the version it
    read for a moment; a request carrying a later commit position (its own write, made through
    the other process) skips that moment and sees the change."""
    await build_catalog(fresh_db)
    writer = await aiohttp_client(create_app(settings))
    try:
        assert "€9.00" in (await fetch(client, "/products/plain-mug"))[1].decode()
        lsn = await change_price(fresh_db, "MUG-2", 4321)
        await writer.app[CATALOG_CACHE].changed(lsn)  # the other process's version move
        _, body = await fetch(client, "/products/plain-mug", headers={LSN_HEADER: str(lsn)})
        assert "€43.21" in body.decode()
    finally:
        await writer.close()


async def test_signed_in_visitors_get_their_own_private_page(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    for path in SHARED:
        await fetch(client, path)  # the shared pages are in the cache
    await signed_in(client, role="customer", fresh_db=fresh_db)
    for path in SHARED:
        resp, body = await fetch(client, path)
        page = body.decode()
        assert resp.headers["Cache-Control"] == "private, no-store", path
        assert "ETag" not in resp.headers, path
        assert 'href="/account">Account</a>' in page and "/login?next=" not in page, path
        assert '<meta name="csrf-token" content="' in page, path
    # Their copy of the shared product page carries their token, in the form too.
    page = (await fetch(client, "/products/run-shoe?sku=RS-R-42"))[1].decode()
    token = cookie(client, "aioshop-csrf")
    assert token and f'name="csrf_token" value="{token}"' in page
    assert f'<meta name="csrf-token" content="{token}">' in page
    item = {"sku": "RS-R-42", "quantity": "1", "product": "run-shoe", "csrf_token": token}
    resp = await client.post("/cart/items", data=item, allow_redirects=False)
    assert resp.status == 303
    # Their count was kept a moment ago (web.carts.UnitCounts); their own write shows at once.
    for path in SHARED:
        page = (await fetch(client, path))[1].decode()
        assert re.search(r'class="cart-count">1<', page), path


async def test_a_visitor_with_a_cart_gets_their_own_page_with_its_count(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    shared_page = (await fetch(client, "/products/run-shoe?sku=RS-R-42"))[1].decode()
    form = re.search(r'<form class="add-to-cart".*?</form>', shared_page, re.DOTALL)
    assert form and "csrf_token" not in form.group(0)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(0)))
    resp = await client.post(
        "/cart/items", data={**fields, "quantity": "2"}, headers=SAME_ORIGIN, allow_redirects=False
    )
    assert resp.status == 303, await resp.text()
    for path in SHARED:
        resp, body = await fetch(client, path)
        page = body.decode()
        assert resp.headers["Cache-Control"] == "private, no-store", path
        assert re.search(r'class="cart-count">2<', page), path
        assert 'name="csrf-token" content="' in page, path


async def test_a_forged_post_is_still_refused(client, fresh_db) -> None:
    """Without a token, add to cart needs the browser's word that our own page sent it; every
    other form still needs the token; a wrong token is refused whatever the headers say."""
    await build_catalog(fresh_db)
    item = {"sku": "RS-R-42", "quantity": "1", "product": "run-shoe"}
    origin = str(client.make_url("")).rstrip("/")
    for headers in (
        {},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain
        {"Sec-Fetch-Site": "cross-site", "Origin": origin},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        resp = await client.post("/cart/items", data=item, headers=headers, allow_redirects=False)
        assert resp.status == 403, headers
    resp = await client.post(
        "/cart/items",
        data={**item, "csrf_token": "forged"},
        headers=SAME_ORIGIN,
        allow_redirects=False,
    )
    assert resp.status == 403  # a token that is sent is checked
    resp = await client.post("/cart/items/1/remove", data={}, headers=SAME_ORIGIN)
    assert resp.status == 403  # only the shared page's form goes without a token
    resp = await client.post("/cart/items", data=item, headers={"Origin": origin})
    assert resp.status == 200 and str(resp.url).endswith("/cart")  # an older browser
    assert (await post_form(client, "/cart/items", item)).status == 303  # a token still works


async def test_etag_answers_304_and_head_has_no_body(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    resp, _ = await fetch(client, "/c/shoes")
    etag = resp.headers["ETag"]
    again, body = await fetch(client, "/c/shoes", headers={"If-None-Match": etag})
    assert again.status == 304 and body == b""
    head = await client.head("/c/shoes")
    assert head.status == 200 and head.headers["ETag"] == etag and await head.read() == b""
    assert head.headers["Cache-Control"] == PUBLIC_PAGE


async def test_bad_filters_and_unknown_pages_are_not_shared(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    for path, status in (
        ("/c/shoes?price=bogus", 400),
        ("/c/shoes?attr.nope=1", 400),
        ("/products/no-such-thing", 404),
        ("/c/no-such-thing", 404),
    ):
        resp = await client.get(path)
        await resp.read()
        assert resp.status == status, path
        assert resp.headers["Cache-Control"] == "private, no-store", path


async def test_empty_form_fields_share_the_page_of_the_plain_url(client, fresh_db) -> None:
    """A GET filter form sends every field; empty ones are no filter, so one cache entry."""
    await build_catalog(fresh_db)
    plain, _ = await fetch(client, "/c/shoes?sort=name")
    with_empty, _ = await fetch(client, "/c/shoes?sort=name&price=&in_stock=")
    assert plain.headers["ETag"] == with_empty.headers["ETag"]


async def test_with_redis_stopped_the_pages_still_answer(
    aiohttp_client, fresh_db, settings_for: Any
) -> None:
    await build_catalog(fresh_db)
    app = create_app(settings_for(fresh_db, redis_url="redis://127.0.0.1:9/0"))
    client = await aiohttp_client(app)
    try:
        for path in SHARED:
            resp, body = await fetch(client, path)
            assert resp.status == 200 and b"Run Shoe" in body, path
    finally:
        await client.close()
