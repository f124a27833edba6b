"""The storefront's header on a phone and on a laptop (screenshots land in tests/e2e/artifacts/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.support.catalog import insert_product

PRODUCTS = [
    ("mug", "Enamel mug", 1250),
    ("tote", "Canvas tote bag", 1800),
    ("notebook", "Dot-grid notebook with a rather long product name", 950),
    ("pen", "Brass pen", 3200),
    ("socks", "Wool socks", 1400),
    ("poster", "Risograph poster", 2500),
]


async def seed_products(dsn: str) -> None:
    for slug, name, price in PRODUCTS:
        await insert_product(dsn, slug, name, price=price)


@pytest.mark.parametrize(("width", "height"), [(375, 812), (1280, 800)])
async def test_home_header_fits_and_has_touch_targets(
    page: Page, fresh_db: str, artifacts: Path, width: int, height: int
) -> None:
    await seed_products(fresh_db)
    await page.set_viewport_size({"width": width, "height": height})
    await page.goto("/")
    await page.screenshot(path=artifacts / f"home-{width}x{height}.png", full_page=True)

    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
    header = page.locator(".site-header")
    for control in (
        header.get_by_role("searchbox", name="Search products"),
        header.get_by_role("button", name="Search"),
        header.get_by_role("link", name="Sign in"),
        header.get_by_role("link", name="Cart"),
    ):
        box = await control.bounding_box()
        assert box is not None and await control.is_visible()
        assert box["height"] >= 44
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
    sign_in = header.get_by_role("link", name="Sign in")
    assert await sign_in.get_attribute("href") in ("/login?next=/", "/login?next=%2F")
