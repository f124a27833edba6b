"""Storefront forms in a browser: the error summary takes focus, the browser's time zone is
kept for the server's dates, the account page on the 8 px grid, the footer on every page."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.support.browser import PASSWORD

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/work/scratch/screenshots"))
WIDTH = 375


@pytest.fixture
async def tokyo(browser: Browser, base_url: str) -> AsyncIterator[BrowserContext]:
    """A phone-sized profile whose clock is in Tokyo; anything the CSP refuses fails the test."""
    context = await browser.new_context(
        base_url=base_url, timezone_id="Asia/Tokyo", viewport={"width": WIDTH, "height": 800}
    )
    context.set_default_timeout(10_000)
    refused: list[str] = []
    context.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        yield context
    finally:
        await context.close()
    assert not refused, refused


async def focused_class(page: Page) -> str:
    return str(await page.evaluate("() => document.activeElement.className"))


async def test_a_refused_form_focuses_its_error_summary(tokyo: BrowserContext) -> None:
    page = await tokyo.new_page()
    await page.goto("/register")
    await page.get_by_role("main").get_by_label("Email").fill("not-an-email")
    await page.get_by_role("button", name="Create account").click()
    summary = page.locator(".error-summary")
    await expect(summary).to_be_visible()
    assert await focused_class(page) == "error-summary"
    links = summary.get_by_role("link")
    await expect(links).to_have_count(3)
    assert [await link.get_attribute("href") for link in await links.all()] == [
        "#f-name",
        "#f-email",
        "#f-password",
    ]
    # The summary says what the message beside the field says.
    beside = await page.locator("#e-email").inner_text()
    await expect(links.nth(1)).to_contain_text(beside)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"forms-register-errors-{WIDTH}.png", full_page=True)


async def test_the_browsers_time_zone_is_kept_and_the_account_page_sits_on_the_grid(
    tokyo: BrowserContext,
) -> None:
    page = await tokyo.new_page()
    await page.goto("/register")
    cookies = {c["name"]: c["value"] for c in await tokyo.cookies()}
    assert cookies["aioshop-tz"] == "Asia/Tokyo"
    main = page.get_by_role("main")
    await main.get_by_label("Your name").fill("Ada")
    await main.get_by_label("Email").fill("ada@example.com")
    await main.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/account")
    await page.get_by_text("Add an address").click()
    country = page.get_by_label("Country")
    await expect(country).to_have_value("IE")  # the shop locale's country
    # Controls use the page's font; nothing scrolls sideways.
    fonts = await page.evaluate(
        """() => ['body', '#f-full_name', '#f-country', '.account-page .button']
                 .map(s => getComputedStyle(document.querySelector(s)).fontFamily)"""
    )
    assert len(set(fonts)) == 1, fonts
    heights = [
        (await button.bounding_box() or {}).get("height", 0)
        for button in await page.locator(".account-page .button").all()
    ]
    # 48 px; a label that wraps on a phone ("Send the verification email again") grows it.
    assert all(height >= 48 for height in heights) and heights.count(48) >= len(heights) - 1
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= WIDTH
    footer = page.locator("footer.site-footer")
    await expect(footer.get_by_role("link", name="Privacy")).to_be_visible()
    await expect(footer).to_contain_text("© ")
    await page.screenshot(path=SCREENSHOTS / f"forms-account-{WIDTH}.png", full_page=True)
    await country.select_option("FR")
    await page.get_by_label("Full name").fill("Ada Lovelace")
    await page.get_by_label("Address", exact=True).fill("1 Rue de Rivoli")
    await page.get_by_label("City").fill("Paris")
    await page.get_by_label("Postal code").fill("75001")
    await page.get_by_role("button", name="Add address").click()
    await expect(page.locator(".address-list address")).to_contain_text("75001 Paris, France")
