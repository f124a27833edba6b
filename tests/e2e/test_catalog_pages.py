"""The catalog pages in a real Chromium, on a phone and on a laptop: filter a category, pick a
variant, and find a product through the header's autocomplete. Screenshots of every step land in
/work/scratch/screenshots/ (or $SCREENSHOT_DIR)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Page, Route, expect

from configs.settings import Settings
from tests.support.catalog import add_image, add_tee, build_catalog

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/work/scratch/screenshots"))
VIEWPORTS = [(375, 812), (1280, 800)]


def write_png(path: Path, size: tuple[int, int], colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.25, height * 0.2, width * 0.75, height * 0.8), fill="white")
    image.save(path)


async def seed(dsn: str, media: Path) -> None:
    """build_catalog plus the tee, with real image files (an original and a 400 w rendition)."""
    made = await build_catalog(dsn)
    made["field-tee"] = await add_tee(dsn)
    pictures = [
        ("run-shoe", "#c62828", 0),
        ("field-tee", "#1565c0", 0),
        ("field-tee", "#2e7d32", 1),
    ]
    for slug, colour, position in pictures:
        name = f"products/{slug}-{position}"
        write_png(media / f"{name}.png", (800, 600), colour)
        write_png(media / f"{name}-400.png", (400, 300), colour)
        await add_image(
            dsn,
            made[slug],
            f"{name}.png",
            width=800,
            height=600,
            alt=f"{slug} picture {position + 1}",
            renditions={"400": f"{name}-400.png"},
            position=position,
        )


async def snap(page: Page, step: str, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{step}-{width}.png", full_page=True)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width, step


async def taller_than(page: Page, selector: str, minimum: float) -> None:
    box = await page.locator(selector).first.bounding_box()
    assert box is not None and box["height"] >= minimum, (selector, box)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_filter_a_category_then_pick_a_variant(
    page: Page, settings: Settings, width: int, height: int
) -> None:
    await seed(str(settings.database_url), settings.media_dir)
    await page.set_viewport_size({"width": width, "height": height})
    await page.goto("/")
    await page.locator(".category-nav").get_by_role("link", name="Shoes").click()
    await page.wait_for_url("**/c/shoes")
    await expect(page.locator(".product-card")).to_have_count(3)
    await snap(page, "1-category", width)

    filters = page.locator("details.filters")
    if width < 900:  # phones: the filters wait in a drawer behind "Filter and sort"
        red = page.get_by_role("checkbox", name=re.compile(r"^Red"))
        await expect(red).to_be_hidden()
        await page.get_by_role("button", name="Filter and sort").click()
        filters = page.get_by_role("dialog", name="Filter and sort")
    red = filters.get_by_role("checkbox", name=re.compile(r"^Red"))
    await expect(red).to_be_visible()
    await taller_than(page, "form.filter-form label.check", 40)
    label = await filters.locator(
        "label.check", has=page.locator('input[value="red"]')
    ).inner_text()
    expected = int(re.search(r"\((\d+)\)", label).group(1))  # type: ignore[union-attr]
    await red.check()  # applies itself: no Apply button once the script runs
    await page.wait_for_url(re.compile(r"attr\.colour=red"))
    await expect(page.locator(".product-card")).to_have_count(expected)
    await expect(page.locator("#results-count")).to_have_text(f"{expected} products")
    await snap(page, "2-filter-ticked", width)
    if width < 900:
        await page.keyboard.press("Escape")
    await snap(page, "3-filtered", width)

    await page.locator(".product-card").get_by_text("Run Shoe").click()
    await page.wait_for_url("**/products/run-shoe")
    picker = page.locator("form.picker")
    blue = picker.get_by_role("radio", name=re.compile(r"^Blue"))
    await expect(blue).to_be_disabled()  # its only variant is sold out
    await expect(blue).to_have_accessible_description("Out of stock")
    await expect(page.locator("[data-picker-price]")).to_have_text("from €80.00")
    await expect(page.get_by_role("button", name="Add to cart")).to_be_disabled()
    await snap(page, "4-product", width)

    await picker.get_by_role("radio", name=re.compile(r"^Red")).check()
    size_43 = picker.get_by_role("radio", name=re.compile(r"^43"))
    await expect(size_43).to_be_disabled()
    await expect(size_43).to_have_accessible_description("Not available in Red")
    await picker.get_by_role("radio", name=re.compile(r"^42")).check()
    await expect(page.locator("[data-picker-price]")).to_have_text("€80.00")
    await expect(page.locator("[data-picker-stock]")).to_have_text("3 in stock")
    await expect(page.locator("[data-picker-sku-text]")).to_have_text("RS-R-42")
    await expect(page.locator("input[name=sku]")).to_have_value("RS-R-42")
    assert "colour=red" in page.url and "size=42" in page.url
    await snap(page, "5-variant-picked", width)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_header_autocomplete_finds_and_opens_a_product(
    page: Page, settings: Settings, width: int, height: int
) -> None:
    await seed(str(settings.database_url), settings.media_dir)
    await page.set_viewport_size({"width": width, "height": height})

    async def slow(route: Route) -> None:
        await asyncio.sleep(0.4)  # long enough to see the skeleton
        await route.continue_()

    await page.route("**/api/v1/search/suggest*", slow)
    await page.goto("/")
    box = page.get_by_role("searchbox", name="Search products")
    await box.press_sequentially("fie", delay=30)
    await expect(page.locator(".suggestions .skeleton").first).to_be_visible()
    await snap(page, "6-autocomplete-loading", width)
    option = page.get_by_role("option", name="Field Tee")
    await expect(option).to_be_visible()
    await expect(page.get_by_role("combobox")).to_have_attribute("aria-expanded", "true")
    await taller_than(page, ".suggestions [role=option] a", 40)
    await box.press("ArrowDown")
    await expect(option).to_have_attribute("aria-selected", "true")
    await expect(box).to_have_attribute("aria-activedescendant", "q-suggestions-0")
    await snap(page, "7-autocomplete", width)
    await box.press("Enter")
    await page.wait_for_url("**/products/field-tee")

    images = page.locator(".product-gallery img")
    await expect(images).to_have_count(2)
    assert await images.nth(0).get_attribute("loading") is None
    assert await images.nth(1).get_attribute("loading") == "lazy"
    picker = page.locator("form.picker")
    await picker.get_by_role("radio", name=re.compile(r"^Red")).check()
    medium = picker.get_by_role("radio", name=re.compile(r"^m"))
    await expect(medium).to_be_disabled()
    await expect(medium).to_have_accessible_description("Out of stock")
    await picker.get_by_role("radio", name=re.compile(r"^s")).check()
    await expect(page.locator("[data-picker-price]")).to_have_text("€25.00")
    await expect(page.locator("[data-picker-stock]")).to_have_text("5 in stock")
    await picker.get_by_role("radio", name=re.compile(r"^Blue")).check()
    # Blue comes in M and L only: the small size is cleared, and the page asks for a size.
    await expect(picker.get_by_role("radio", name=re.compile(r"^s"))).to_be_disabled()
    await expect(page.locator("[data-picker-hint]")).to_have_text("Choose a size first.")
    await picker.get_by_role("radio", name=re.compile(r"^l")).check()
    await expect(page.locator("[data-picker-price]")).to_have_text("€29.00")
    await expect(page.locator("[data-picker-stock]")).to_have_text("1 in stock")
    await snap(page, "8-tee-picked", width)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_picker_without_javascript_reloads_with_the_choice(
    browser, base_url: str, settings: Settings, width: int, height: int
) -> None:
    await seed(str(settings.database_url), settings.media_dir)
    context = await browser.new_context(
        base_url=base_url, java_script_enabled=False, viewport={"width": width, "height": height}
    )
    try:
        page = await context.new_page()
        await page.goto("/products/field-tee")
        picker = page.locator("form.picker")
        await picker.get_by_role("radio", name=re.compile(r"^Blue")).check()
        await picker.get_by_role("button", name="Show this choice").click()
        await page.wait_for_url(re.compile(r"colour=blue"))
        await expect(picker.get_by_role("radio", name=re.compile(r"^s"))).to_be_disabled()
        await picker.get_by_role("radio", name=re.compile(r"^m")).check()
        await picker.get_by_role("button", name="Show this choice").click()
        await page.wait_for_url(re.compile(r"size=m"))
        await expect(page.locator("[data-picker-price]")).to_have_text("€27.00")
        await expect(page.locator("[data-picker-stock]")).to_have_text("2 in stock")
        await snap(page, "9-no-js-picked", width)
    finally:
        await context.close()


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_a_bad_filter_says_what_is_wrong_where_the_filters_are(
    page: Page, settings: Settings, width: int, height: int
) -> None:
    await seed(str(settings.database_url), settings.media_dir)
    await page.set_viewport_size({"width": width, "height": height})
    response = await page.goto("/c/shoes?attr.weight=3&sort=price_asc")
    assert response is not None and response.status == 400
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Filter “weight”: not an attribute")
    box = await alert.bounding_box()
    assert box is not None and box["y"] + box["height"] <= height  # seen without scrolling
    await snap(page, "10-bad-filter", width)
    await alert.get_by_role("link", name="Clear the filters").click()
    await page.wait_for_url("**/c/shoes")
    await expect(page.locator(".product-card")).to_have_count(3)


async def picker_state(page: Page) -> list[list[object]]:
    """Each picker radio as [axis, value, checked, disabled, reason]."""
    return await page.locator("form.picker input[type=radio]").evaluate_all(
        """inputs => inputs.map(i => [i.name, i.value, i.checked, i.disabled,
            i.closest("label").querySelector(".picker-reason").textContent.trim()])"""
    )


async def test_picker_js_agrees_with_the_page_without_javascript(
    browser, page: Page, base_url: str, settings: Settings
) -> None:
    """catalog_picker (no JS) and picker.js apply one rule: every state reached by clicking
    the enhanced picker is what the plain page renders for the same query string."""
    await seed(str(settings.database_url), settings.media_dir)
    context = await browser.new_context(base_url=base_url, java_script_enabled=False)
    try:
        plain = await context.new_page()
        for slug in ("field-tee", "run-shoe"):
            await page.goto(f"/products/{slug}")
            radios = page.locator("form.picker input[type=radio]")
            compared = 0
            for index in range(await radios.count()):
                if await radios.nth(index).is_disabled():
                    continue
                await radios.nth(index).check()
                query = urlsplit(page.url).query
                await plain.goto(f"/products/{slug}?{query}")
                assert await picker_state(page) == await picker_state(plain), (slug, query)
                compared += 1
            assert compared >= 2, slug
    finally:
        await context.close()
