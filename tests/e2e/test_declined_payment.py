"""A declined card in a real Chromium, on a phone and on a laptop: the page after "Place order"
waits for the payment, then says the card was declined and why; a second declined card keeps
the order payable; a good card pays it and the page thanks. Without JavaScript, the same with
the "Check again" link. No page is wider than the screen; the CSP refuses nothing (`context`).

The web app is the e2e server; the relay and a Dramatiq worker (Redis broker: the test's own
database) run in the test process, as in test_checkout_flow.py. Screenshots:
tests/e2e/artifacts/store-order-<state>-<width>-after.png.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from playwright.async_api import Browser, Page, expect

from actors.broker import build_broker
from configs.settings import Settings
from storage.database import connect
from tests.support.browser import sign_in_chromium
from tests.support.catalog import add_tee, build_catalog
from tests.support.orders import DECLINED, place_order
from tests.support.relays import relaying

VIEWPORTS = [(375, 812), (1280, 800)]
WAITING = re.compile(r"/orders/([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/thanks$")
OUTCOME_TIMEOUT = 20_000  # ms: the relay polls, the worker captures


@pytest.fixture
def settings_overrides(redis_url: str) -> dict[str, Any]:
    """Redis (the test's own database) as the broker."""
    return {"broker_url": redis_url}


@asynccontextmanager
async def shop_running(settings: Settings) -> AsyncIterator[None]:
    """The relay and a worker, as `aioshop relay` and `aioshop worker` run them."""
    broker = build_broker(settings)
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        async with relaying(str(settings.database_url), broker):
            yield
    finally:
        await asyncio.to_thread(worker.stop)
        broker.flush_all()
        broker.close()


async def snap(page: Page, artifacts: Path, state: str, width: int) -> None:
    """A full-page screenshot; the page never scrolls sideways."""
    await page.evaluate("() => window.scrollTo(0, 0)")
    await page.screenshot(path=artifacts / f"store-order-{state}-{width}-after.png", full_page=True)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width, state


async def check_out_with(page: Page, card: str, *, script: bool = True) -> str:
    """A guest buys one Field Tee with `card`; the order's number. Without a `script`, the
    variant is the product page's `?sku=` (the picker chooses it with JavaScript)."""
    if script:
        await page.goto("/products/field-tee")
        picker = page.locator("form.picker")
        await picker.get_by_role("radio", name=re.compile(r"^Red")).check()
        await picker.get_by_role("radio", name=re.compile(r"^s")).check()
    else:
        await page.goto("/products/field-tee?sku=TEE-R-S")
    await page.get_by_role("button", name="Add to cart").click()
    await page.wait_for_url("**/cart")
    await page.goto("/checkout")
    await page.get_by_label("Email").fill("grace@example.com")
    await page.get_by_label("Full name").fill("Grace Hopper")
    await page.get_by_label("Address", exact=True).fill("1 Navy Yard")
    await page.get_by_label("Postal code").fill("20001")
    await page.get_by_label("City").fill("Washington")
    await page.get_by_label("Country").select_option("US")
    await pay_with(page, card, "Place order")
    await page.wait_for_url(WAITING)
    match = WAITING.search(page.url)
    assert match is not None
    return match.group(1)


async def pay_with(page: Page, card: str, button: str | re.Pattern[str]) -> None:
    await page.get_by_label("Card number").fill(card)
    await page.get_by_label("Expiry date (MM/YY)").fill("12/34")
    await page.get_by_label("Security code").fill("123")
    await page.get_by_role("button", name=button).click()


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_a_declined_card_then_another_card_pays_the_order(
    page: Page, settings: Settings, artifacts: Path, width: int, height: int
) -> None:
    dsn = str(settings.database_url)
    await build_catalog(dsn)
    await add_tee(dsn)
    await page.set_viewport_size({"width": width, "height": height})
    heading = page.get_by_role("heading", level=1)
    declined = page.locator(".payment-declined")
    async with shop_running(settings):
        number = await check_out_with(page, "4000 0000 0000 0002")
        # Waiting first (unless the worker was quicker), never "thank you" for an unpaid order.
        await expect(heading).not_to_have_text("Thank you for your order")
        await expect(heading).to_have_text("Your payment was declined", timeout=OUTCOME_TIMEOUT)
        await expect(declined).to_contain_text(
            "Payment declined: Your card was declined by its bank."
        )
        await expect(page.locator(".order-number")).to_contain_text(number)
        await expect(heading).to_be_focused()  # the swapped-in outcome is where focus goes
        await snap(page, artifacts, "declined", width)

        # A second declined card: said why, and the order still takes a card.
        await pay_with(page, "4000 0000 0000 9995", re.compile(r"^Pay €"))
        await page.wait_for_url(WAITING)
        await expect(declined).to_contain_text(
            "Payment declined: Your card has insufficient funds.", timeout=OUTCOME_TIMEOUT
        )
        await expect(page.get_by_role("heading", name="Pay with another card")).to_be_visible()

        await pay_with(page, "4242 4242 4242 4242", re.compile(r"^Pay €"))
        await page.wait_for_url(WAITING)
        await expect(heading).to_have_text("Thank you for your order", timeout=OUTCOME_TIMEOUT)
        status = page.locator("[data-order-status]")
        await expect(status).to_contain_text("your order is confirmed")
        await expect(page.locator(".thanks")).to_contain_text("Visa ending in 4242")
        await snap(page, artifacts, "paid", width)


async def test_without_javascript_check_again_shows_the_outcome(
    browser: Browser, base_url: str, settings: Settings, artifacts: Path
) -> None:
    dsn = str(settings.database_url)
    await build_catalog(dsn)
    await add_tee(dsn)
    for width, height in VIEWPORTS:
        context = await browser.new_context(
            base_url=base_url,
            java_script_enabled=False,
            viewport={"width": width, "height": height},
        )
        try:
            page = await context.new_page()
            heading = page.get_by_role("heading", level=1)
            # No worker yet: the page after "Place order" waits, with a plain link to look again.
            await check_out_with(page, "4000 0000 0000 0002", script=False)
            await expect(heading).to_have_text("Waiting for your payment")
            await snap(page, artifacts, "waiting", width)
            async with shop_running(settings):
                await check_again_until(page, "Your payment was declined")
                await pay_with(page, "4242 4242 4242 4242", re.compile(r"^Pay €"))
                await page.wait_for_url(WAITING)
                await check_again_until(page, "Thank you for your order")
        finally:
            await context.close()


async def check_again_until(page: Page, title: str) -> None:
    """Follow "Check again" (a plain link) until the page's heading is `title` (20 s at most)."""
    heading = page.get_by_role("heading", level=1)
    for _ in range(40):
        if await heading.text_content() == title:
            return
        await page.get_by_role("link", name="Check again").click()
        await page.wait_for_load_state()
        await asyncio.sleep(0.5)
    await expect(heading).to_have_text(title)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_the_account_order_page_offers_another_card(
    page: Page, settings: Settings, artifacts: Path, width: int, height: int
) -> None:
    dsn = str(settings.database_url)
    await build_catalog(dsn)
    await add_tee(dsn)
    await page.set_viewport_size({"width": width, "height": height})
    user_id = await sign_in_chromium(page, dsn, "ada@example.com", role="customer", landing="/")
    conn = await connect(dsn)
    try:
        variant = await conn.fetchval("SELECT id FROM variants WHERE sku = 'TEE-R-S'")
        order = await place_order(conn, [(variant, 1)], payment=DECLINED, user_id=user_id)
    finally:
        await conn.close()
    async with shop_running(settings):
        await page.goto(f"/account/orders/{order.number}")
        declined = page.locator(".payment-declined")
        for _ in range(40):  # the worker declines the card in a moment: look again until then
            if await declined.count():
                break
            await asyncio.sleep(0.5)
            await page.reload()
        await expect(declined).to_contain_text("Payment declined: Your card was declined")
        await snap(page, artifacts, "account-declined", width)
        await pay_with(page, "4242 4242 4242 4242", re.compile(r"^Pay €"))
        await page.wait_for_url(WAITING)
        heading = page.get_by_role("heading", level=1)
        await expect(heading).to_have_text("Thank you for your order", timeout=OUTCOME_TIMEOUT)
