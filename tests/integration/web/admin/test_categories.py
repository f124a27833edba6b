"""The staff category tree's product counts and its reordering among siblings, through HTTP
against real PostgreSQL."""

from __future__ import annotations

import re

from storage import categories
from storage.database import connect
from tests.support.admin import post, staff
from tests.support.catalog import insert_product
from tests.support.db import fetch


async def tree(dsn: str) -> dict[str, int]:
    conn = await connect(dsn)
    try:
        home = await categories.create(conn, slug="home", name="Home")
        made = {"home": home.id}
        for slug in ("bath", "kitchen", "garden"):  # shown by name: Bath, Garden, Kitchen
            made[slug] = (
                await categories.create(conn, slug=slug, name=slug.title(), parent_id=home.id)
            ).id
    finally:
        await conn.close()
    return made


def names(page: str) -> list[str]:
    return re.findall(r'<span class="category-name">([^<]*)</span>', page)


async def test_the_tree_counts_products_here_and_below(client, fresh_db) -> None:
    await staff(client, fresh_db)
    ids = await tree(fresh_db)
    for slug, published in (("a", True), ("b", False), ("c", True)):
        product = await insert_product(fresh_db, f"towel-{slug}", published=published)
        await fetch(
            fresh_db, "UPDATE products SET category_id = $2 WHERE id = $1", product, ids["bath"]
        )
    page = await (await client.get("/admin/categories")).text()
    counts = dict(
        re.findall(
            r'<span class="category-name">([^<]*)</span>.*?<span class="category-count"[^>]*>'
            r"([^<]*)</span>",
            page,
            re.S,
        )
    )
    assert counts == {
        "Home": "0 products · 3 with 3 sub",
        "Bath": "3 products (2 published)",
        "Garden": "0 products",
        "Kitchen": "0 products",
    }


async def test_moving_up_and_down_reorders_the_siblings_only(client, fresh_db) -> None:
    await staff(client, fresh_db)
    ids = await tree(fresh_db)
    assert names(await (await client.get("/admin/categories")).text()) == [
        "Home",
        "Bath",
        "Garden",
        "Kitchen",
    ]
    resp = await post(client, f"/admin/categories/{ids['kitchen']}/up", {})
    assert resp.status == 303
    assert resp.headers["Location"] == f"/admin/categories?saved=1#category-{ids['kitchen']}"
    resp = await post(client, f"/admin/categories/{ids['bath']}/down", {})
    assert resp.status == 303
    page = await (await client.get("/admin/categories")).text()
    assert names(page) == ["Home", "Kitchen", "Bath", "Garden"]
    # First already: nothing moves. The only root has no sibling to swap with.
    assert (await post(client, f"/admin/categories/{ids['kitchen']}/up", {})).status == 303
    assert (await post(client, f"/admin/categories/{ids['home']}/down", {})).status == 303
    assert names(await (await client.get("/admin/categories")).text()) == names(page)
    rows = await fetch(fresh_db, "SELECT slug, position FROM categories ORDER BY position, slug")
    assert [(r["slug"], r["position"]) for r in rows] == [
        ("home", 0),
        ("kitchen", 1),
        ("bath", 2),
        ("garden", 3),
    ]


async def test_moving_a_missing_category_is_a_404_and_a_bad_direction_no_route(
    client, fresh_db
) -> None:
    await staff(client, fresh_db)
    await tree(fresh_db)  # other categories, at the top level among them
    assert (await post(client, "/admin/categories/999/up", {})).status == 404
    assert (await post(client, "/admin/categories/999/sideways", {})).status in (404, 405)
