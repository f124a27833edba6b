"""Staff add a choice value and rename an attribute in Chromium, on a phone and on a laptop:
each change shows its effects before it is saved, and the storefront's product page shows the
new name at once. Screenshots land in tests/e2e/artifacts/admin-types-<width>-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.support.browser import sign_in_chromium
from tests.support.catalog import tee_shop

EMAIL = "types@example.com"
SIZES = [(375, 812), (1280, 900)]


async def assert_fits(page: Page, width: int) -> None:
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_staff_add_a_choice_and_rename_an_attribute(
    page: Page, fresh_db: str, artifacts: Path, width: int, height: int
) -> None:
    ids = await tee_shop(fresh_db, tees=2)
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_chromium(page, fresh_db, EMAIL, role="staff", landing="/admin/types")
    await assert_fits(page, width)
    await page.get_by_role("link", name="Colour").click()
    await page.wait_for_url(f"**/admin/attributes/{ids['colour']}")
    await assert_fits(page, width)

    await page.get_by_label("New choices").fill("navy | Navy | #000080")
    await page.get_by_role("button", name="Add…").click()
    await page.get_by_role("heading", name="Check this change").wait_for()
    effect = page.locator(".change-effect")
    assert await effect.inner_text() == (
        "Adding 1 choice to 'Colour' ('Navy') changes no product; products of 2 types"
        " (Mugs, T-shirts) can choose it when edited."
    )
    await assert_fits(page, width)
    await page.get_by_role("button", name="Confirm the change").click()
    await page.wait_for_url(f"**/admin/attributes/{ids['colour']}?saved=1")
    assert await page.get_by_label("Choice navy").input_value() == "Navy"

    await page.get_by_label("Name", exact=True).fill("Color")
    await page.get_by_role("button", name="Rename…", exact=True).click()
    await page.get_by_role("heading", name="Check this change").wait_for()
    assert await effect.inner_text() == (
        "Renaming 'Colour' to 'Color' changes the label on 3 products in 2 types (Mugs, T-shirts)."
    )
    await page.screenshot(path=artifacts / f"admin-types-{width}-confirm.png", full_page=True)
    await page.get_by_role("button", name="Confirm the change").click()
    await page.wait_for_url(f"**/admin/attributes/{ids['colour']}?saved=1")
    assert await page.get_by_role("heading", level=1).inner_text() == "Attribute: Color"
    await assert_fits(page, width)
    await page.screenshot(path=artifacts / f"admin-types-{width}-attribute.png", full_page=True)
    await page.goto(f"/admin/types/{ids['tees']}")
    await assert_fits(page, width)
    await page.screenshot(path=artifacts / f"admin-types-{width}-type.png", full_page=True)

    await page.goto("/products/red-mug")
    specs = page.locator(".specs")
    assert "Color" in await specs.inner_text()
    await assert_fits(page, width)
    await page.screenshot(path=artifacts / f"admin-types-{width}-after.png", full_page=True)
