"""Listing filters in a real Chromium: the "Filter and sort" drawer on a phone, the sidebar on a
laptop, live results with chips, and the same filters without JavaScript.

Screenshots of the drawer and the chips go to tests/e2e/artifacts/ (gitignored).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from configs.settings import Settings
from storage import categories
from storage.database import connect
from tests.support.catalog import build_catalog

VIEWPORTS = [(375, 812), (1280, 800)]
# Enough subcategories of Shoes that their row overflows a phone's width.
MORE_SHOES = ["Trail running", "Basketball", "Hiking boots", "Sandals", "Football", "Tennis"]


async def seed(dsn: str) -> None:
    await build_catalog(dsn)
    conn = await connect(dsn)
    try:
        shoes = await categories.get_by_slug(conn, "shoes")
        for name in MORE_SHOES:
            slug = name.lower().replace(" ", "-")
            await categories.create(conn, slug=slug, name=name, parent_id=shoes.id)
    finally:
        await conn.close()


async def fits_the_screen(page: Page) -> None:
    """Nothing makes the page scroll sideways."""
    widths = await page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


async def mark_document(page: Page) -> None:
    """A flag that only lives as long as this document: a navigation would drop it."""
    await page.evaluate("() => { window.sameDocument = true; }")


async def still_same_document(page: Page) -> None:
    assert await page.evaluate("() => window.sameDocument === true"), "the page navigated"


async def test_phone_drawer_filters_live_with_chips(
    page: Page, settings: Settings, artifacts: Path
) -> None:
    await seed(str(settings.database_url))
    await page.set_viewport_size({"width": 375, "height": 812})
    await page.goto("/c/shoes")
    await expect(page.locator(".product-card")).to_have_count(3)
    await fits_the_screen(page)

    # The subcategories are one row that scrolls sideways, not a page wider than the phone.
    row = page.locator(".subcategories ul")
    sizes = await row.evaluate(
        """ul => [ul.scrollWidth, ul.clientWidth,
                  new Set([...ul.children].map(li => li.offsetTop)).size]"""
    )
    assert sizes[0] > sizes[1] and sizes[2] == 1, sizes
    assert "local" in await row.evaluate("ul => getComputedStyle(ul).backgroundAttachment")

    await expect(page.get_by_role("button", name="Apply")).to_be_hidden()
    opener = page.get_by_role("button", name="Filter and sort")
    await mark_document(page)
    await opener.click()
    drawer = page.get_by_role("dialog", name="Filter and sort")
    await expect(drawer).to_be_visible()
    assert await drawer.evaluate("d => d.contains(document.activeElement)")
    await drawer.evaluate("d => Promise.all(d.getAnimations().map(a => a.finished))")  # slid in
    box = await drawer.bounding_box()
    assert box is not None and round(box["x"]) == 0 and round(box["width"]) == 375, box
    assert box["height"] == 812  # over the results, not pushing them down
    for control in await drawer.locator("button, label.check, select").all():
        if await control.is_visible():
            size = await control.bounding_box()
            assert size is not None and size["height"] >= 44, await control.inner_text()
    await page.screenshot(path=artifacts / "filters-phone-drawer.png")

    red = drawer.get_by_role("checkbox", name=re.compile(r"^Red"))
    await red.check()
    await expect(page.locator(".chip-remove")).to_have_count(1)
    await expect(page.locator(".product-card")).to_have_count(2)
    await expect(page.locator("#results-count")).to_have_text("2 products")
    await expect(page.locator("[data-filter-status]")).to_have_text("2 products")
    await expect(drawer.get_by_role("button", name="Show 2 products")).to_be_visible()
    await expect(red).to_be_focused()  # the form was replaced, focus stayed on the box
    assert re.search(r"/c/shoes\?attr\.colour=red$", page.url)
    await still_same_document(page)
    await page.screenshot(path=artifacts / "filters-phone-drawer-ticked.png")

    # "Clear" in the drawer: the link goes with the swap, focus stays in the drawer.
    await drawer.get_by_role("link", name="Clear", exact=True).click()
    await expect(page.locator(".chip-remove")).to_have_count(0)
    await expect(page.locator("[data-filter-status]")).to_have_text("3 products")
    assert await drawer.evaluate("d => d.contains(document.activeElement)")
    await red.check()
    await expect(page.locator(".chip-remove")).to_have_count(1)

    await page.keyboard.press("Escape")
    await expect(drawer).to_be_hidden()
    await expect(opener).to_be_focused()
    await expect(opener).to_contain_text("1")  # the number of active filters
    chip = page.get_by_role("link", name="Remove filter: Colour Red")
    await expect(chip).to_be_visible()
    await fits_the_screen(page)
    await page.screenshot(path=artifacts / "filters-phone-chips.png", full_page=True)

    await chip.click()
    await expect(page.locator(".chip-remove")).to_have_count(0)
    await expect(page.locator(".product-card")).to_have_count(3)
    await expect(page.locator("#results-count")).to_be_focused()
    assert page.url.endswith("/c/shoes")
    await still_same_document(page)

    # Back brings the filtered state back (from the URL), forward removes it again.
    await page.go_back()
    await expect(page.locator(".chip-remove")).to_have_count(1)
    await expect(page.locator(".product-card")).to_have_count(2)
    await page.go_forward()
    await expect(page.locator(".chip-remove")).to_have_count(0)
    await still_same_document(page)
    await page.reload()
    await expect(page.locator(".product-card")).to_have_count(3)


async def test_laptop_sidebar_filters_live_with_chips(
    page: Page, settings: Settings, artifacts: Path
) -> None:
    await seed(str(settings.database_url))
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto("/search?q=shoe")
    await expect(page.locator(".product-card")).to_have_count(3)
    await expect(page.get_by_role("button", name="Filter and sort")).to_be_hidden()
    await expect(page.get_by_role("button", name="Apply")).to_be_hidden()
    sidebar = page.get_by_role("complementary", name="Filters")
    await mark_document(page)

    await sidebar.get_by_role("checkbox", name="In stock only").check()
    await sidebar.get_by_role("checkbox", name=re.compile(r"^Red")).check()
    await expect(page.locator(".chip-remove")).to_have_count(2)
    await expect(page.locator(".product-card")).to_have_count(1)  # Run Shoe: red, in stock
    assert "q=shoe" in page.url and "in_stock=true" in page.url and "attr.colour=red" in page.url
    await fits_the_screen(page)
    await page.screenshot(path=artifacts / "filters-laptop-chips.png")

    await page.get_by_role("link", name="Remove filter: Availability In stock only").click()
    await expect(page.get_by_role("link", name="Remove filter: Colour Red")).to_be_focused()
    await expect(page.locator(".product-card")).to_have_count(2)
    await expect(sidebar.get_by_role("checkbox", name="In stock only")).not_to_be_checked()
    await page.get_by_role("link", name="Clear all").click()
    await expect(page.locator(".chip-remove")).to_have_count(0)
    await expect(page.locator(".product-card")).to_have_count(3)
    assert page.url.endswith("/search?q=shoe")
    await still_same_document(page)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_filters_without_javascript_apply_and_remove(
    browser: Browser,
    base_url: str,
    settings: Settings,
    artifacts: Path,
    width: int,
    height: int,
) -> None:
    await seed(str(settings.database_url))
    context = await browser.new_context(
        base_url=base_url, java_script_enabled=False, viewport={"width": width, "height": height}
    )
    try:
        page = await context.new_page()
        await page.goto("/c/shoes")
        await expect(page.get_by_role("button", name="Filter and sort")).to_be_hidden()
        filters = page.locator("details.filters")
        if width < 900:  # a disclosure above the results
            await filters.locator("summary").click()
        await filters.get_by_role("checkbox", name=re.compile(r"^Red")).check()
        await filters.get_by_role("button", name="Apply").click()
        await page.wait_for_url(re.compile(r"attr\.colour=red"))
        await expect(page.locator(".product-card")).to_have_count(2)
        chip = page.get_by_role("link", name="Remove filter: Colour Red")
        await expect(chip).to_be_visible()
        await fits_the_screen(page)
        await page.screenshot(path=artifacts / f"filters-no-js-chips-{width}.png", full_page=True)
        await chip.click()
        await page.wait_for_url(re.compile(r"/c/shoes\?sort=newest$"))  # the form sent the order
        await expect(page.locator(".product-card")).to_have_count(3)
        await expect(page.locator(".chip-remove")).to_have_count(0)
    finally:
        await context.close()
