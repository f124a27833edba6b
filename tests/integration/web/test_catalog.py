"""The catalog read API: lists, search with facets, suggest, ETags and the Redis cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from configs.settings import Settings
from storage.cache import CatalogCache
from storage.database import GET_CURRENT_LSN, connect
from tests.support.catalog import add_image, build_catalog
from web.app import create_app
from web.keys import CATALOG_CACHE as CATALOG_CACHE_KEY

PROBLEM = "application/problem+json"


async def get_json(client: Any, path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    assert resp.status == status, (path, resp.status, await resp.text())
    return await resp.json()


async def slugs(client: Any, path: str) -> list[str]:
    return [item["slug"] for item in (await get_json(client, path))["items"]]


async def test_lists_filter_by_category_with_descendants_attributes_price_and_stock(
    client, fresh_db
) -> None:
    await build_catalog(fresh_db)
    assert set(await slugs(client, "/api/v1/products?category=shoes")) == {
        "run-shoe",
        "trail-shoe",
        "office-shoe",
    }
    assert set(await slugs(client, "/api/v1/products?category=running")) == {
        "run-shoe",
        "trail-shoe",
    }
    assert set(await slugs(client, "/api/v1/products?attr.colour=red")) == {
        "run-shoe",
        "office-shoe",
        "iphone-mug",
    }
    red_42 = await slugs(client, "/api/v1/products?attr.colour=red&attr.size=42")
    assert red_42 == ["run-shoe"]
    between = "/api/v1/products?price_min=1000&price_max=7000&sort=price_asc"
    assert await slugs(client, between) == [
        "iphone-mug",
        "office-shoe",
    ]
    assert set(await slugs(client, "/api/v1/products?in_stock=false")) == {"office-shoe"}
    assert await slugs(client, "/api/v1/products?sort=name") == [
        "iphone-mug",
        "office-shoe",
        "plain-mug",
        "run-shoe",
        "trail-shoe",
    ]


async def test_cursor_pages_cover_the_list_once(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    seen: list[str] = []
    path = "/api/v1/products?sort=price_desc&limit=2"
    while True:
        body = await get_json(client, path)
        seen += [item["slug"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        path = f"/api/v1/products?sort=price_desc&limit=2&cursor={body['next_cursor']}"
    assert seen == ["trail-shoe", "run-shoe", "office-shoe", "iphone-mug", "plain-mug"]
    # A category's pages merge its subcategories' own pages (LIST_BY_CATEGORY), cursor included.
    for sort, expected in (
        ("price_desc", ["trail-shoe", "run-shoe", "office-shoe"]),
        ("price_asc", ["office-shoe", "run-shoe", "trail-shoe"]),
        ("name", ["office-shoe", "run-shoe", "trail-shoe"]),
    ):
        seen, cursor = [], ""
        while True:
            body = await get_json(
                client, f"/api/v1/products?category=shoes&sort={sort}&limit=1{cursor}"
            )
            seen += [item["slug"] for item in body["items"]]
            if body["next_cursor"] is None:
                break
            cursor = f"&cursor={body['next_cursor']}"
        assert seen == expected, sort


async def test_list_items_carry_what_a_product_card_needs(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    body = await get_json(client, "/api/v1/products?category=running&sort=price_asc")
    first = body["items"][0]
    assert first["slug"] == "run-shoe" and first["url"] == "/products/run-shoe"
    assert first["price"]["formatted"] == "€80.00" and first["price_max"]["amount"] == 8500
    assert first["in_stock"] is True and first["image"] is None


async def test_every_list_shows_each_products_first_image(client, fresh_db) -> None:
    ids = await build_catalog(fresh_db)
    await add_image(fresh_db, ids["run-shoe"], "p/second.jpg", width=60, height=40, position=1)
    await add_image(
        fresh_db,
        ids["run-shoe"],
        "p/first.jpg",
        width=30,
        height=20,
        alt="Run shoe",
        renditions={"320": "p/first-320.webp"},
    )
    # LIST, LIST_BY_CATEGORY (the image read in the same statement) and SEARCH (looked up after).
    for path in ("/api/v1/products", "/api/v1/products?category=shoes", "/api/v1/search?q=shoe"):
        items = {item["slug"]: item for item in (await get_json(client, path))["items"]}
        assert items["run-shoe"]["image"] == {
            "url": "/media/p/first.jpg",
            "width": 30,
            "height": 20,
            "alt": "Run shoe",
            "renditions": {"320": "/media/p/first-320.webp"},
            "srcset": "/media/p/first-320.webp 320w",
        }, path
        assert items["trail-shoe"]["image"] is None, path


async def test_search_has_facets_total_and_typo_tolerance(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    body = await get_json(client, "/api/v1/search?q=running+shoes")
    assert [item["slug"] for item in body["items"]][:1] == ["run-shoe"]
    assert body["total"] == len(body["items"])
    body = await get_json(client, "/api/v1/search?q=shoe&attr.colour=red")
    assert {item["slug"] for item in body["items"]} == {"run-shoe", "office-shoe"}
    colour = next(f for f in body["facets"]["attributes"] if f["slug"] == "colour")
    # Disjunctive: the colour facet ignores the colour filter (3 shoes: 2 red, 2 blue).
    assert {v["value"]: (v["count"], v["selected"]) for v in colour["values"]} == {
        "red": (2, True),
        "blue": (2, False),
    }
    assert {v["value"]: v["swatch"] for v in colour["values"]} == {
        "red": "#ff0000",
        "blue": "#0000ff",
    }
    assert {c["slug"]: c["count"] for c in body["facets"]["categories"]} == {
        "running": 1,
        "shoes": 1,
    }
    ranges = {r["label"]: r["count"] for r in body["facets"]["price_ranges"]}
    assert ranges["5000-10000"] == 2 and sum(ranges.values()) == 2
    typo = await get_json(client, "/api/v1/search?q=iphnoe")
    assert [item["slug"] for item in typo["items"]] == ["iphone-mug"]
    assert typo["did_you_mean"] == "iphone"
    prefix = await get_json(client, "/api/v1/search?q=iph")
    assert [item["slug"] for item in prefix["items"]] == ["iphone-mug"]
    sku = await get_json(client, "/api/v1/search?q=RS-R")
    assert [item["slug"] for item in sku["items"]] == ["run-shoe"]


async def test_suggest_completes_names(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    body = await get_json(client, "/api/v1/search/suggest?q=tra")
    assert body["items"] == [
        {"name": "Trail Shoe", "slug": "trail-shoe", "url": "/products/trail-shoe"}
    ]
    await get_json(client, "/api/v1/search/suggest?q=x&limit=99", status=400)
    await get_json(client, "/api/v1/search/suggest?q=ab%00c", status=400)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("colour=red", "colour"),
        ("attr.weight=3", "attr.weight"),
        ("category=nowhere", "category"),
        ("cursor=!!!", "cursor"),
        ("cursor=WyJuYW1lIixbIm5hbWUiLDEsMl1d", "cursor"),  # a name cursor with a number key
        ("price_min=-1", "price_min"),
        ("limit=101", "limit"),
        ("sort=relevance", "sort"),
        ("in_stock=maybe", "in_stock"),
        ("q=%22a%00b%22", "q"),  # PostgreSQL refuses NUL in text: it must never get there
        ("q=a%00b", "q"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client, fresh_db, query: str, parameter: str
) -> None:
    await build_catalog(fresh_db)
    for path in ("/api/v1/products", "/api/v1/search"):
        if path.endswith("search") and parameter == "sort":
            continue  # /search?sort=relevance without q is the same error; skip the duplicate
        resp = await client.get(f"{path}?{query}")
        assert resp.status == 400 and resp.content_type == PROBLEM, (path, query)
        assert parameter in (await resp.json())["errors"], (path, query)


async def test_catalog_reads_have_etags_and_answer_304(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    for path in (
        "/api/v1/products?category=shoes",
        "/api/v1/search?q=mug",
        "/api/v1/products/run-shoe",
        "/api/v1/categories",
    ):
        first = await client.get(path)
        etag = first.headers["ETag"]
        assert "max-age" in first.headers["Cache-Control"], path
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and await again.read() == b"", path
        other = await client.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status == 200, path


async def test_a_change_is_visible_on_the_next_read_and_not_before_it_is_announced(
    client, fresh_db, settings: Settings
) -> None:
    """The cache is really on (an unannounced SQL change stays invisible); announcing the
    change's commit position (what every catalog writer does) makes the next read fresh."""
    await build_catalog(fresh_db)
    path = "/api/v1/products/plain-mug"
    before = await get_json(client, path)
    conn = await connect(fresh_db)
    try:
        await conn.execute("UPDATE variants SET price_amount = 1234 WHERE sku = 'MUG-2'")
        lsn = int(await conn.fetchval(GET_CURRENT_LSN))
    finally:
        await conn.close()
    assert (await get_json(client, path))["price"] == before["price"]  # served from the cache
    cache = client.app[CATALOG_CACHE_KEY]
    await cache.changed(lsn)
    assert (await get_json(client, path))["price"]["amount"] == 1234
    listed = await get_json(client, "/api/v1/products?category=home&sort=price_asc")
    assert listed["items"][0]["price"]["amount"] == 1234


async def test_staff_creating_a_product_shows_in_the_next_list(
    client, fresh_db, staff_headers
) -> None:
    await build_catalog(fresh_db)
    assert "new-mug" not in await slugs(client, "/api/v1/products")
    resp = await client.post(
        "/api/v1/products",
        json={"slug": "new-mug", "name": "New mug", "price_amount": 900, "price_currency": "EUR"},
        headers=staff_headers,
    )
    assert resp.status == 201
    assert (await slugs(client, "/api/v1/products"))[0] == "new-mug"


async def test_with_redis_stopped_the_catalog_still_answers(
    aiohttp_client, fresh_db, settings_for: Callable[..., Settings]
) -> None:
    await build_catalog(fresh_db)
    # Nothing listens on port 9: every Redis call fails at once, like a stopped server.
    app = create_app(settings_for(fresh_db, redis_url="redis://127.0.0.1:9/0"))
    client = await aiohttp_client(app)
    try:
        for path in (
            "/api/v1/products",
            "/api/v1/products?category=shoes&sort=price_asc",
            "/api/v1/search?q=shoe",
            "/api/v1/search/suggest?q=tra",
            "/api/v1/products/run-shoe",
            "/api/v1/categories",
        ):
            resp = await client.get(path)
            assert resp.status == 200, (path, await resp.text())
            assert resp.headers["ETag"]
    finally:
        await client.close()


async def test_cache_off_reads_fresh_data_every_time(
    aiohttp_client, fresh_db, settings_for: Callable[..., Settings]
) -> None:
    await build_catalog(fresh_db)
    client = await aiohttp_client(create_app(settings_for(fresh_db, catalog_cache_seconds=0)))
    try:
        assert (await get_json(client, "/api/v1/products/plain-mug"))["price"]["amount"] == 900
        conn = await connect(fresh_db)
        try:
            await conn.execute("UPDATE variants SET price_amount = 777 WHERE sku = 'MUG-2'")
        finally:
            await conn.close()
        assert (await get_json(client, "/api/v1/products/plain-mug"))["price"]["amount"] == 777
        assert isinstance(client.app[CATALOG_CACHE_KEY], CatalogCache)
    finally:
        await client.close()
