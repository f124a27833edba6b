"""The staff products pages in Chromium, on a phone and on a laptop: the list and the editor fit
the screen, bulk unpublish asks first, a staff member edits stock and saves with the sticky bar,
several images go up at once and are reordered by position numbers or by dragging (screenshots
land in tests/e2e/artifacts/)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Page

from tests.support.browser import sign_in_chromium
from tests.support.catalog import insert_product
from tests.support.db import fetch

SIZES = [(375, 812), (1280, 800)]


def png(colour: tuple[int, int, int], width: int = 400, height: int = 300) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def fits(page: Page, width: int) -> None:
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width


async def catalog(dsn: str) -> list[int]:
    return [
        await insert_product(dsn, f"mug-{n}", f"Mug number {n}", price=1250 + n, stock=n)
        for n in range(6)
    ]


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_the_list_fits_and_bulk_unpublish_asks_first(
    page: Page, fresh_db: str, artifacts: Path, width: int, height: int
) -> None:
    ids = await catalog(fresh_db)
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_chromium(page, fresh_db, "staff@example.com", role="staff", landing="/")
    await page.goto("/admin/products?sort=name")
    assert await page.locator(".search").count() == 0  # not the storefront's header
    assert await page.locator(".product-table tbody tr").count() == 6
    await fits(page, width)
    await page.screenshot(path=artifacts / f"admin-products-{width}-after.png", full_page=True)

    await page.get_by_label("Select Mug number 1").check()
    await page.get_by_label("Select Mug number 4").check()
    await page.locator("#bulk").get_by_role("button", name="Unpublish").click()
    await page.wait_for_url("**/admin/products/bulk?**")
    assert await page.locator("h1").inner_text() == "Unpublish 2 products?"
    await fits(page, width)
    await page.screenshot(path=artifacts / f"admin-products-bulk-{width}-after.png", full_page=True)
    published = await fetch(fresh_db, "SELECT id FROM products WHERE is_published ORDER BY id")
    assert len(published) == 6  # asking changed nothing

    await page.get_by_role("button", name="Unpublish 2 products").click()
    await page.wait_for_url("**/admin/products?sort=name&done=unpublish&count=2")
    assert "Unpublished 2 products." in await page.locator(".notice").inner_text()
    drafts = await fetch(fresh_db, "SELECT id FROM products WHERE NOT is_published ORDER BY id")
    assert [row["id"] for row in drafts] == [ids[1], ids[4]]
    assert await page.locator(".badge-warn").count() == 2


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_editing_stock_on_a_phone_and_saving_with_the_sticky_bar(
    page: Page, fresh_db: str, artifacts: Path, width: int, height: int
) -> None:
    [product_id, *_] = await catalog(fresh_db)
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_chromium(page, fresh_db, "staff@example.com", role="staff", landing="/")
    await page.goto(f"/admin/products/{product_id}")
    await fits(page, width)
    await page.screenshot(path=artifacts / f"admin-product-edit-{width}-after.png", full_page=True)

    # The form is longer than the screen, yet its save button is on screen from the top.
    form = await page.locator("form.product-form").bounding_box()
    assert form is not None and form["y"] + form["height"] > height
    save = page.locator(".save-bar").get_by_role("button", name="Save")
    box = await save.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    await page.fill("#f-v-0-stock", "42")
    await save.click()
    await page.wait_for_url(f"**/admin/products/{product_id}?saved=1")
    [row] = await fetch(
        fresh_db, "SELECT stock_on_hand FROM variants WHERE product_id = $1", product_id
    )
    assert row["stock_on_hand"] == 42

    # A refused save: the summary at the top links to the field, in plain words.
    await page.fill("#f-v-0-price", "twelve")
    await page.fill("#f-name", "")
    await page.locator(".save-bar").get_by_role("button", name="Save").click()
    summary = page.locator(".error-summary")
    assert "Name: Enter a name." in await summary.inner_text()
    assert "Variant 1 price: Enter a price such as 12.50." in await summary.inner_text()
    await fits(page, width)
    await page.screenshot(
        path=artifacts / f"admin-product-errors-{width}-after.png", full_page=True
    )
    await summary.get_by_role("link", name="Variant 1 price").click()
    assert await page.evaluate("() => location.hash") == "#f-v-0-price"


async def test_several_images_go_up_at_once_and_are_reordered_by_number_and_by_drag(
    page: Page, fresh_db: str, artifacts: Path
) -> None:
    [product_id, *_] = await catalog(fresh_db)
    await page.set_viewport_size({"width": 1280, "height": 800})
    await sign_in_chromium(page, fresh_db, "staff@example.com", role="staff", landing="/")
    await page.goto(f"/admin/products/{product_id}")
    colours = [("red", (200, 30, 40)), ("green", (30, 160, 60)), ("blue", (40, 60, 200))]
    await page.set_input_files(
        "#f-image",
        [{"name": f"{n}.png", "mimeType": "image/png", "buffer": png(c)} for n, c in colours],
    )
    await page.get_by_role("button", name="Upload").click()
    await page.wait_for_url(f"**/admin/products/{product_id}?saved=1#images")
    items = page.locator("#image-list li")
    assert await items.count() == 3
    red, green, blue = [
        int(await items.nth(i).get_attribute("data-image-id") or 0) for i in range(3)
    ]

    async def order() -> list[int]:
        rows = await fetch(
            fresh_db,
            "SELECT id FROM product_images WHERE product_id = $1 ORDER BY position",
            product_id,
        )
        return [row["id"] for row in rows]

    await page.fill(f"#f-position-{blue}", "1")  # the fallback: numbers and a button
    await page.get_by_role("button", name="Save order").click()
    await page.wait_for_url("**#images")
    assert await order() == [blue, red, green]

    # With the script: drag the last image onto the first.
    await page.locator(f'li[data-image-id="{green}"]').drag_to(
        page.locator(f'li[data-image-id="{blue}"]'), target_position={"x": 20, "y": 5}
    )
    await page.wait_for_load_state("load")
    await page.wait_for_function(
        "id => document.querySelector('#image-list li')?.dataset.imageId === String(id)",
        arg=green,
    )
    assert await order() == [green, blue, red]
    await page.screenshot(path=artifacts / "admin-product-images-1280-after.png", full_page=True)
