"""robots.txt, the sitemap index and its child sitemaps, /favicon.ico."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from protego import Protego
from yarl import URL

from storage import categories, sitemap
from storage.database import connect
from tests.support.sitemaps import validate
from web.app import create_app

CHUNK = 25  # products per child sitemap in these tests (the shop's default is 50,000)
PRODUCTS = 120
SEED = """
    INSERT INTO products (slug, name, is_published)
    SELECT 'product-' || g, 'Product ' || g, g % 7 <> 0 FROM generate_series(1, $1) g
"""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"sitemap_chunk_size": CHUNK}


async def seed(dsn: str, count: int = PRODUCTS) -> dict[str, tuple[int, bool, datetime]]:
    """`count` products, every seventh unpublished: slug -> (id, published, updated_at)."""
    conn = await connect(dsn)
    try:
        await conn.execute(SEED, count)
        rows = await conn.fetch("SELECT id, slug, is_published, updated_at FROM products")
    finally:
        await conn.close()
    return {r["slug"]: (r["id"], r["is_published"], r["updated_at"]) for r in rows}


async def fetch_xml(client: Any, url: str, root: str) -> list[dict[str, str]]:
    resp = await client.get(URL(url).path)
    assert resp.status == 200, (url, resp.status)
    assert (resp.content_type, resp.charset) == ("application/xml", "utf-8")
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    assert "Set-Cookie" not in resp.headers
    return validate(await resp.read(), root)


async def test_the_index_lists_chunks_that_cover_every_published_product_once(
    client, fresh_db
) -> None:
    products = await seed(fresh_db)
    ids = sorted(product_id for product_id, _, _ in products.values())
    assert ids == list(range(1, PRODUCTS + 1))  # a fresh database: chunk n holds ids 25n-24..25n
    origin = f"http://{client.host}:{client.port}"

    index = await fetch_xml(client, "/sitemap.xml", "sitemapindex")
    locations = [entry["loc"] for entry in index]
    assert locations[0] == f"{origin}/sitemaps/categories.xml"
    children = locations[1:]
    assert len(children) == math.ceil(PRODUCTS / CHUNK)
    assert children == [f"{origin}/sitemaps/products-{n}.xml" for n in range(1, 6)]

    listed: list[str] = []
    for child in children:
        urls = await fetch_xml(client, child, "urlset")
        assert 0 < len(urls) <= CHUNK
        for url in urls:
            slug = url["loc"].removeprefix(f"{origin}/products/")
            listed.append(slug)
            # lastmod is the product's own last change.
            assert datetime.fromisoformat(url["lastmod"]) == products[slug][2].replace(
                microsecond=0
            )
    published = sorted(slug for slug, (_, shown, _) in products.items() if shown)
    assert sorted(listed) == published  # every published product, exactly once
    assert len(listed) == len(set(listed)) == PRODUCTS - PRODUCTS // 7


async def test_a_chunk_without_published_products_is_left_out_and_not_found(
    client, fresh_db
) -> None:
    await seed(fresh_db)
    conn = await connect(fresh_db)
    try:  # every product of the second chunk (ids 26 to 50)
        await conn.execute("UPDATE products SET is_published = false WHERE id BETWEEN 26 AND 50")
    finally:
        await conn.close()
    index = await fetch_xml(client, "/sitemap.xml", "sitemapindex")
    names = [URL(entry["loc"]).name for entry in index]
    assert names == [
        "categories.xml",
        "products-1.xml",
        "products-3.xml",
        "products-4.xml",
        "products-5.xml",
    ]
    for path in ("/sitemaps/products-2.xml", "/sitemaps/products-6.xml"):
        assert (await client.get(path)).status == 404
    for path in (
        "/sitemaps/products-0.xml",
        "/sitemaps/products-01.xml",
        "/sitemaps/products-x.xml",
    ):
        assert (await client.get(path)).status == 404
    huge = await client.get(f"/sitemaps/products-{9_000_000_000_000_000_000}.xml")
    assert huge.status == 404


async def test_an_empty_shop_has_an_index_with_the_categories_only(client, fresh_db) -> None:
    index = await fetch_xml(client, "/sitemap.xml", "sitemapindex")
    assert [URL(entry["loc"]).name for entry in index] == ["categories.xml"]


async def test_a_chunk_streams_in_batches(client, fresh_db) -> None:
    await seed(fresh_db)
    resp = await client.get("/sitemaps/products-1.xml")
    assert resp.headers.get("Transfer-Encoding") == "chunked"  # no Content-Length: streamed
    head = await client.head("/sitemaps/products-1.xml")
    assert (head.status, await head.read()) == (200, b"")
    conn = await connect(fresh_db)
    try:  # reading the chunk 4 rows per statement gives the same products in id order
        batches = [b async for b in sitemap.product_batches(conn, 1, CHUNK, batch=4)]
    finally:
        await conn.close()
    assert [len(batch) for batch in batches] == [4, 4, 4, 4, 4, 2]
    slugs = [url.slug for batch in batches for url in batch]
    assert slugs == [f"product-{n}" for n in range(1, CHUNK + 1) if n % 7]


async def test_the_categories_sitemap_lists_every_category(client, fresh_db) -> None:
    conn = await connect(fresh_db)
    try:
        shoes = await categories.create(conn, slug="shoes", name="Shoes")
        await categories.create(conn, slug="running", name="Running", parent_id=shoes.id)
        await categories.create(conn, slug="home", name="Home")
    finally:
        await conn.close()
    urls = await fetch_xml(client, "/sitemaps/categories.xml", "urlset")
    assert sorted(URL(url["loc"]).path for url in urls) == ["/c/home", "/c/running", "/c/shoes"]


async def test_robots_txt_opens_the_catalog_and_closes_private_pages_and_traps(client) -> None:
    resp = await client.get("/robots.txt")
    text = await resp.text()
    assert (resp.status, resp.content_type) == (200, "text/plain")
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    robots = Protego.parse(text)
    origin = f"http://{client.host}:{client.port}"
    assert list(robots.sitemaps) == [f"{origin}/sitemap.xml"]
    for path in ("/", "/c/shoes", "/products/run-shoe", "/static/css/site.css", "/media/a.webp"):
        assert robots.can_fetch(origin + path, "Googlebot"), path
    for path in (
        "/cart",
        "/checkout",
        "/orders/A1/thanks",
        "/account",
        "/account/orders",
        "/login?next=/",
        "/register",
        "/admin/products",
        "/ops/",
        "/api/v1/products",
        "/search?q=shoe",
        "/search?q=shoe&attr.colour=red",
        "/c/shoes?sort=price",
        "/c/shoes?cursor=abc",
        "/c/shoes?attr.colour=red&attr.size=42",
        "/products/run-shoe?colour=red",
    ):
        assert not robots.can_fetch(origin + path, "Googlebot"), path


async def test_robots_and_sitemaps_name_public_url_when_it_is_set(
    settings_for, fresh_db, aiohttp_client
) -> None:
    client = await aiohttp_client(
        create_app(settings_for(fresh_db, public_url="https://shop.example/", sitemap_chunk_size=5))
    )
    await seed(fresh_db, 6)
    robots = Protego.parse(await (await client.get("/robots.txt")).text())
    assert list(robots.sitemaps) == ["https://shop.example/sitemap.xml"]
    index = await fetch_xml(client, "/sitemap.xml", "sitemapindex")
    assert [entry["loc"] for entry in index] == [
        "https://shop.example/sitemaps/categories.xml",
        "https://shop.example/sitemaps/products-1.xml",
        "https://shop.example/sitemaps/products-2.xml",
    ]
    urls = await fetch_xml(client, "/sitemaps/products-2.xml", "urlset")
    assert [url["loc"] for url in urls] == ["https://shop.example/products/product-6"]


async def test_favicon_ico_is_an_icon_the_browser_may_keep(client) -> None:
    resp = await client.get("/favicon.ico")
    body = await resp.read()
    assert resp.status == 200
    assert resp.content_type in ("image/x-icon", "image/vnd.microsoft.icon")
    assert body[:4] == b"\x00\x00\x01\x00"  # the ICO header
    assert resp.headers["Cache-Control"] == "public, max-age=86400"
