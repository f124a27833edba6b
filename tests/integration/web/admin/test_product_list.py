"""The staff products list: thumbnails, stock per product, status, sorting by a whitelisted key,
and bulk publish/unpublish through a confirmation page, in one transaction with the same outbox
events a single edit writes."""

from __future__ import annotations

import re

import pytest

from tests.support.admin import post, staff
from tests.support.browser import csrf_of
from tests.support.catalog import add_image, insert_product
from tests.support.db import fetch

ROW = re.compile(r'<td class="cell-name"><a href="/admin/products/(\d+)">([^<]+)</a>')


async def names(client, query: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    page = await (await client.get(f"/admin/products?{query}")).text()
    return [name for _, name in ROW.findall(page)]


async def add_variant(dsn: str, product_id: int, sku: str, price: int, stock: int) -> None:
    await fetch(
        dsn,
        "INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand)"
        " VALUES ($1, $2, $3, 'EUR', $4) RETURNING id",
        product_id,
        sku,
        price,
        stock,
    )


async def three_products(dsn: str) -> dict[str, int]:
    """Banana (1.00, 7 in stock), apple (3.00, 2+5 over two variants), cherry (2.00, 0)."""
    ids = {
        "Banana": await insert_product(dsn, "banana", "Banana", price=100, stock=7),
        "apple": await insert_product(dsn, "apple", "apple", price=300, stock=2),
        "Cherry": await insert_product(dsn, "cherry", "Cherry", price=200, stock=0),
    }
    await add_variant(dsn, ids["apple"], "APPLE-BIG", 400, 5)
    # updated: cherry longest ago, then apple, then banana
    for age, name in ((3, "Cherry"), (2, "apple"), (1, "Banana")):
        await fetch(
            dsn,
            "UPDATE products SET updated_at = now() - make_interval(hours => $2)"
            " WHERE id = $1 RETURNING id",
            ids[name],
            age,
        )
    return ids


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["apple", "Banana", "Cherry"]),  # case-insensitive
        ("-name", ["Cherry", "Banana", "apple"]),
        ("price", ["Banana", "Cherry", "apple"]),  # by the lowest variant price
        ("-price", ["apple", "Cherry", "Banana"]),
        ("stock", ["Cherry", "Banana", "apple"]),  # units summed over variants: 0, 7, 7
        ("-stock", ["apple", "Banana", "Cherry"]),
        ("updated", ["Cherry", "apple", "Banana"]),
        ("-updated", ["Banana", "apple", "Cherry"]),
        ("", ["Banana", "apple", "Cherry"]),  # the default: last updated first
    ],
)
async def test_the_list_sorts_by_each_whitelisted_column(
    client, fresh_db, sort: str, expected: list[str]
) -> None:
    await three_products(fresh_db)
    await staff(client, fresh_db)
    assert await names(client, f"sort={sort}") == expected


@pytest.mark.parametrize(
    "sort", ["id", "p.id", "name;DROP TABLE products", "name DESC", "--name", "Name", "é"]
)
async def test_a_sort_key_outside_the_whitelist_is_a_clear_400(client, fresh_db, sort) -> None:
    await three_products(fresh_db)
    await staff(client, fresh_db)
    resp = await client.get("/admin/products", params={"sort": sort})
    page = await resp.text()
    assert resp.status == 400
    assert "Sort by name, price, stock or updated" in page
    assert len(await fetch(fresh_db, "SELECT id FROM products")) == 3


async def test_column_headings_link_to_their_sort_and_say_which_is_active(client, fresh_db) -> None:
    await three_products(fresh_db)
    await staff(client, fresh_db)
    page = await (await client.get("/admin/products?sort=price&q=a")).text()
    # the active column reverses on a second click and keeps the search
    assert re.search(
        r'aria-sort="ascending"><a class="sort-link" href="\?q=a&amp;sort=-price"', page
    )
    assert 'href="?q=a&amp;sort=name"' in page
    assert page.count('aria-sort="none"') == 3


async def test_rows_show_thumbnail_stock_and_status(client, fresh_db) -> None:
    ids = await three_products(fresh_db)
    await fetch(
        fresh_db,
        "UPDATE products SET is_published = false WHERE id = $1 RETURNING id",
        ids["Cherry"],
    )
    await add_image(
        fresh_db,
        ids["apple"],
        "products/1/second.png",
        width=10,
        height=10,
        renditions={"320": "products/1/second-320.webp"},
        position=1,
    )
    await add_image(fresh_db, ids["apple"], "products/1/first.png", width=10, height=10)
    await staff(client, fresh_db)
    page = await (await client.get("/admin/products?sort=name")).text()
    rows = page.split('<td class="cell-check">')[1:]
    apple, banana, cherry = rows
    assert '<img src="/media/products/1/first.png"' in apple  # the first image, by position
    assert "<img" not in banana
    assert '<td data-label="Stock">7</td>' in apple.replace("\n", "")
    assert "published" in banana and "draft" in cherry
    assert "0 <small>(out of stock)</small>" in cherry


async def test_search_finds_by_name_or_sku_prefix(client, fresh_db) -> None:
    await three_products(fresh_db)
    await staff(client, fresh_db)
    assert await names(client, "q=ANAN") == ["Banana"]
    assert await names(client, "q=apple-b") == ["apple"]  # a SKU prefix of its second variant
    assert await names(client, "q=zzz") == []


async def bulk_confirmation(client, action: str, ids: list[int]):  # type: ignore[no-untyped-def]
    params = [("action", action), ("next", "/admin/products?sort=name")]
    params += [("id", str(i)) for i in ids]
    return await client.get("/admin/products/bulk", params=params)


async def test_bulk_publish_asks_first_then_publishes_all_in_one_go_with_their_events(
    client, fresh_db
) -> None:
    ids = await three_products(fresh_db)
    await fetch(fresh_db, "UPDATE products SET is_published = false RETURNING id")
    await staff(client, fresh_db)
    chosen = [ids["apple"], ids["Cherry"]]

    resp = await bulk_confirmation(client, "publish", chosen)
    page = await resp.text()
    assert resp.status == 200
    assert "Publish 2 products?" in page and "apple" in page and "Cherry" in page
    assert "Banana" not in page
    assert await fetch(fresh_db, "SELECT id FROM products WHERE is_published") == []  # GET: none
    assert 'name="csrf_token"' in page

    before = {r["event_id"] for r in await fetch(fresh_db, "SELECT event_id FROM outbox")}
    data = {"action": "publish", "next": "/admin/products?sort=name"}
    token = await csrf_of(client, "/admin/")
    form = [*data.items(), ("csrf_token", token), *(("id", str(i)) for i in chosen)]
    resp = await client.post("/admin/products/bulk", data=form, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/admin/products?sort=name&done=publish&count=2"
    published = await fetch(fresh_db, "SELECT id FROM products WHERE is_published ORDER BY id")
    assert [r["id"] for r in published] == sorted(chosen)
    events = [
        e
        for e in await fetch(fresh_db, "SELECT event_id, actor_name, payload FROM outbox")
        if e["event_id"] not in before
    ]
    assert sorted(e["payload"]["product_id"] for e in events) == sorted(chosen)
    assert {e["actor_name"] for e in events} == {"search.index_product"}  # as a single edit
    shown = await (await client.get(resp.headers["Location"])).text()
    assert "Published 2 products." in shown
    # the storefront's API sees them (the catalog cache moved with the commit)
    assert (await client.get("/api/v1/products/apple")).status == 200

    resp = await post(
        client, "/admin/products/bulk", {"action": "unpublish", "id": str(ids["apple"])}
    )
    assert resp.status == 303
    assert (await client.get("/api/v1/products/apple")).status == 404


async def test_bulk_post_without_the_csrf_token_changes_nothing(client, fresh_db) -> None:
    ids = await three_products(fresh_db)
    await staff(client, fresh_db)
    resp = await client.post(
        "/admin/products/bulk",
        data={"action": "unpublish", "id": str(ids["apple"])},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert len(await fetch(fresh_db, "SELECT id FROM products WHERE is_published")) == 3


@pytest.mark.parametrize(
    ("action", "raw_ids", "message"),
    [
        ("publish", [], "Tick at least one product"),
        ("delete", ["1"], "Choose Publish or Unpublish"),
        ("publish", ["x"], "is not a product"),
        ("publish", ["9" * 20], "is not a product"),
        ("publish", [str(n) for n in range(1, 103)], "at most 100"),
    ],
)
async def test_bad_bulk_requests_are_a_clear_400_and_change_nothing(
    client, fresh_db, action: str, raw_ids: list[str], message: str
) -> None:
    await three_products(fresh_db)
    await staff(client, fresh_db)
    params = [("action", action), *(("id", i) for i in raw_ids)]
    resp = await client.get("/admin/products/bulk", params=params)
    assert resp.status == 400 and message in await resp.text()
    form = {"action": action} if not raw_ids else {"action": action, "id": raw_ids[0]}
    if len(raw_ids) <= 1:
        resp = await post(client, "/admin/products/bulk", form)
        assert resp.status == 400 and message in await resp.text()
    assert len(await fetch(fresh_db, "SELECT id FROM products WHERE is_published")) == 3


async def test_the_back_link_of_a_bulk_action_stays_on_the_products_list(client, fresh_db) -> None:
    ids = await three_products(fresh_db)
    await staff(client, fresh_db)
    for target in ("https://evil.example/", "//evil.example/", "/account"):
        data = {"action": "publish", "id": str(ids["apple"]), "next": target}
        resp = await post(client, "/admin/products/bulk", data)
        assert resp.status == 303
        assert resp.headers["Location"].startswith("/admin/products?"), target
