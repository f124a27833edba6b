"""Staff read the category tree with its product counts and reorder it, in Chromium, on a phone
and on a laptop. Screenshots land in tests/e2e/artifacts/admin-categories-<width>-after.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from storage import categories
from storage.database import connect
from tests.support.browser import sign_in_chromium
from tests.support.catalog import insert_product

EMAIL = "catalogue@example.com"
SIZES = [(375, 812), (1280, 900)]


async def shop_tree(dsn: str) -> dict[str, int]:
    """Home (Kitchen > Mugs, Garden) and Shoes, with products in Mugs and Shoes."""
    conn = await connect(dsn)
    try:
        home = await categories.create(conn, slug="home", name="Home")
        kitchen = await categories.create(conn, slug="kitchen", name="Kitchen", parent_id=home.id)
        mugs = await categories.create(conn, slug="mugs", name="Mugs", parent_id=kitchen.id)
        await categories.create(conn, slug="garden", name="Garden", parent_id=home.id)
        shoes = await categories.create(conn, slug="shoes", name="Shoes")
    finally:
        await conn.close()
    for index in range(3):
        product = await insert_product(dsn, f"mug-{index}", published=index < 2)
        await _file(dsn, product, mugs.id)
    await _file(dsn, await insert_product(dsn, "boot"), shoes.id)
    return {"home": home.id, "kitchen": kitchen.id, "mugs": mugs.id, "shoes": shoes.id}


async def _file(dsn: str, product_id: int, category_id: int) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(
            "UPDATE products SET category_id = $2 WHERE id = $1", product_id, category_id
        )
    finally:
        await conn.close()


async def names_in_order(page: Page) -> list[str]:
    return [
        n.strip() for n in await page.locator(".category-tree .category-name").all_inner_texts()
    ]


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_tree_shows_counts_and_reorders(
    page: Page, fresh_db: str, artifacts: Path, width: int, height: int
) -> None:
    ids = await shop_tree(fresh_db)
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_chromium(page, fresh_db, EMAIL, role="staff", landing="/admin/categories")
    assert await names_in_order(page) == ["Home", "Garden", "Kitchen", "Mugs", "Shoes"]
    home = page.locator(f"#category-{ids['home']} .category-count").first
    assert await home.inner_text() == "0 products · 3 with 2 sub"
    mugs = page.locator(f"#category-{ids['mugs']} .category-count")
    assert await mugs.inner_text() == "3 products (2 published)"

    await page.get_by_role("button", name="Move Shoes up").click()
    await page.wait_for_url(f"**/admin/categories?saved=1#category-{ids['shoes']}")
    assert await names_in_order(page) == ["Shoes", "Home", "Garden", "Kitchen", "Mugs"]
    assert await page.get_by_role("button", name="Move Shoes up").is_disabled()
    await page.get_by_role("button", name="Move Kitchen up").click()
    await page.wait_for_url(f"**/admin/categories?saved=1#category-{ids['kitchen']}")
    assert await names_in_order(page) == ["Shoes", "Home", "Kitchen", "Mugs", "Garden"]
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
    await page.screenshot(path=artifacts / f"admin-categories-{width}-after.png", full_page=True)
