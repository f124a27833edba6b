"""The demo catalog's pictures in a real Chromium, on a phone and on a laptop: a category's
cards keep one box whatever the picture's proportions, and the cart and the checkout review show
a thumbnail beside each line. Screenshots: tests/e2e/artifacts/store-<page>-<width>-after.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from configs.settings import Settings
from storage.demo import seed_demo
from tests.support.db import sql

WIDTHS = (375, 1280)
IN_STOCK_TEE = """
    SELECT p.slug || ' ' || v.sku FROM variants v
    JOIN products p ON p.id = v.product_id JOIN categories c ON c.id = p.category_id
    WHERE c.slug = 't-shirts' AND p.is_published AND v.stock_on_hand > 0
    ORDER BY v.attributes->>'colour' = 'red' DESC, p.id, v.position LIMIT 1
"""
CATEGORY = "/c/t-shirts"
ALL_LOADED = """
    sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)
"""
CARDS = """
    () => [...document.querySelectorAll('.product-card .product-media')].map(box => {
        const img = box.querySelector('img');
        const outer = box.getBoundingClientRect();
        const inner = img ? img.getBoundingClientRect() : null;
        return {
            width: outer.width, height: outer.height,
            imgWidth: inner && inner.width, imgHeight: inner && inner.height,
            natural: img ? img.getAttribute('width') / img.getAttribute('height') : null,
            fit: img ? getComputedStyle(img).objectFit : null,
        };
    })
"""
THUMBS = """
    sel => [...document.querySelectorAll(sel)].map(img => {
        const box = img.getBoundingClientRect();
        return {alt: img.alt, width: img.getAttribute('width'), height: img.getAttribute('height'),
                shownWidth: box.width, shownHeight: box.height, src: img.getAttribute('src')};
    })
"""


async def fits_the_screen(page: Page) -> None:
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


async def add_an_in_stock_tee(page: Page, dsn: str, shot: Path) -> None:
    """Add a red (else any) in-stock variant of a published T-shirt from its product page."""
    found = await sql(dsn, IN_STOCK_TEE)
    assert found, "the demo has an in-stock T-shirt"
    slug, sku = found.split(" ")
    await page.goto(f"/products/{slug}?sku={sku}")
    await page.wait_for_function(ALL_LOADED, arg=".gallery-main img")
    await fits_the_screen(page)
    await page.screenshot(path=shot)
    await page.locator("form.add-to-cart button[type=submit]").click()
    await page.wait_for_url("**/cart")


@pytest.mark.parametrize("width", WIDTHS)
async def test_cards_keep_one_box_and_lines_show_thumbnails(
    page: Page, settings: Settings, artifacts: Path, width: int
) -> None:
    await seed_demo(str(settings.database_url), settings.media_dir)
    await page.set_viewport_size({"width": width, "height": 900})

    await page.goto(CATEGORY)
    cards = await page.evaluate(CARDS)
    assert len(cards) >= 4
    shapes = {round(card["natural"], 2) for card in cards if card["natural"]}
    assert len(shapes) >= 2, f"the category should mix picture shapes, has {shapes}"
    for card in cards:
        assert card["natural"], "every demo product has a picture"
        assert card["width"] == pytest.approx(card["height"], abs=1)  # one ratio: 1 / 1
        assert card["width"] == pytest.approx(cards[0]["width"], abs=1)
        assert (card["imgWidth"], card["imgHeight"]) == (
            pytest.approx(card["width"], abs=1),
            pytest.approx(card["height"], abs=1),
        )
        assert card["fit"] == "cover"
    await page.locator(".product-card img").first.wait_for()
    await page.wait_for_function(ALL_LOADED, arg=".product-card img[fetchpriority=high]")
    await fits_the_screen(page)
    await page.screenshot(path=artifacts / f"store-category-{width}-after.png")

    product_shot = artifacts / f"store-product-{width}-after.png"
    await add_an_in_stock_tee(page, str(settings.database_url), product_shot)
    await page.wait_for_function(ALL_LOADED, arg=".cart-line img")
    [thumb] = await page.evaluate(THUMBS, ".cart-line img")
    assert thumb["alt"] and thumb["width"] and thumb["height"]
    assert thumb["src"].startswith("/media/products/")
    assert (thumb["shownWidth"], thumb["shownHeight"]) == (64, 64)
    await fits_the_screen(page)
    await page.screenshot(path=artifacts / f"store-cart-{width}-after.png")

    await page.goto("/checkout")
    await page.locator(".checkout-review img").scroll_into_view_if_needed()
    await page.wait_for_function(ALL_LOADED, arg=".checkout-review img")
    [review] = await page.evaluate(THUMBS, ".checkout-review img")
    assert review["alt"] == thumb["alt"] and review["src"] == thumb["src"]
    assert (review["shownWidth"], review["shownHeight"]) == (48, 48)
    await fits_the_screen(page)
    await page.screenshot(path=artifacts / f"store-checkout-{width}-after.png", full_page=True)
