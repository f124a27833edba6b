"""A whole purchase in a real Chromium, on a phone and on a laptop: browse a category, add two
variants, create an account during checkout (the guest cart comes along), pay, see the
payment page turn from waiting to "confirmed", find the order in the account, and get the email.

The web app is the e2e server (tests/e2e/conftest.py); this test also runs what a shop runs
beside it, in the test process: the outbox relay and a Dramatiq worker on a Redis broker (the
test Redis database, flushed for each test, so no shared RabbitMQ queue is touched), with mail
going to a real SMTP server (tests/support/smtp.py). The worker captures the payment, which
confirms the order, and sends the order emails.

Screenshots of every step land in /work/scratch/screenshots/checkout-*.png (or $SCREENSHOT_DIR).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from configs.settings import Settings
from tests.support.browser import fill_address, fill_card
from tests.support.catalog import add_tee, build_catalog
from tests.support.relays import relay_and_worker
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/work/scratch/screenshots"))
VIEWPORTS = [(375, 812), (1280, 800)]
PUBLIC_URL = "https://shop.example/"
PASSWORD = "correct horse battery staple"
# Records the Place order button's state as it changes, where the next page can read it.
WATCH_BUTTON = """button => new MutationObserver(() => sessionStorage.setItem(
    "place-order", JSON.stringify([button.disabled, button.textContent]))
).observe(button, {attributes: true, childList: true, characterData: true, subtree: true})"""
NUMBER = re.compile(r"/orders/([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/thanks$")


@pytest.fixture
def settings_overrides(smtp: SmtpServer, redis_url: str) -> dict[str, Any]:
    """Mail to `smtp`, and Redis (the test's own database) as the broker."""
    return {"smtp_url": smtp.url, "broker_url": redis_url, "public_url": PUBLIC_URL}


@pytest.fixture
async def background(settings: Settings) -> AsyncIterator[None]:
    """The relay and a worker, as `aioshop relay` and `aioshop worker` run them."""
    async with relay_and_worker(settings):
        yield


async def snap(page: Page, step: str, width: int) -> None:
    """A full-page screenshot; the page never scrolls sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("() => window.scrollTo(0, 0)")  # sticky columns where a reader sees them
    await page.screenshot(path=SCREENSHOTS / f"checkout-{step}-{width}.png", full_page=True)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width, step


async def pick_and_add(page: Page, colour: str, size: str) -> None:
    picker = page.locator("form.picker")
    add = page.get_by_role("button", name="Add to cart")
    await picker.get_by_role("radio", name=re.compile(rf"^{colour}")).check()
    await expect(add).to_be_disabled()  # a colour alone is not a variant
    await picker.get_by_role("radio", name=re.compile(rf"^{size}")).check()
    await expect(add).to_be_enabled()
    await add.click()
    await page.wait_for_url("**/cart")


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
async def test_browse_add_sign_up_pay_and_find_the_order(
    page: Page,
    settings: Settings,
    background: None,
    smtp: SmtpServer,
    width: int,
    height: int,
) -> None:
    dsn = str(settings.database_url)
    await build_catalog(dsn)
    await add_tee(dsn)
    await page.set_viewport_size({"width": width, "height": height})

    # Browse a category and open a product.
    await page.goto("/")
    await page.locator(".category-nav").get_by_role("link", name="Clothing").click()
    await page.wait_for_url("**/c/clothing")
    await snap(page, "1-category", width)
    await page.locator(".product-card").get_by_text("Field Tee").click()
    await page.wait_for_url("**/products/field-tee")
    await expect(page.get_by_role("button", name="Add to cart")).to_be_disabled()
    await snap(page, "2-product", width)

    # Two different variants into the cart.
    await pick_and_add(page, "Red", "s")
    await expect(page.locator(".cart-line")).to_have_count(1)
    await snap(page, "3-cart-one", width)
    await page.get_by_role("link", name="Field Tee").click()
    await page.wait_for_url("**/products/field-tee")
    await pick_and_add(page, "Blue", "m")
    lines = page.locator(".cart-line")
    await expect(lines).to_have_count(2)
    await expect(lines.nth(0)).to_contain_text("Red / S")
    await expect(lines.nth(1)).to_contain_text("Blue / M")
    await expect(page.locator(".site-header .cart-count")).to_contain_text("2")
    await expect(page.locator(".cart-summary")).to_contain_text("€52.00")
    await snap(page, "4-cart", width)

    # Checkout as a guest, then create an account on the way: the cart comes along.
    await page.get_by_role("link", name="Checkout").click()
    await page.wait_for_url("**/checkout")
    await expect(page.get_by_label("Email")).to_be_visible()
    await snap(page, "5-checkout-guest", width)
    await page.get_by_role("main").get_by_role("link", name="Create an account").click()
    await page.wait_for_url(re.compile(r"/register\?next=(/|%2F)checkout"))
    await page.get_by_label("Your name").fill("Ada Lovelace")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/checkout")
    await expect(page.get_by_text("Signed in as ada@example.com")).to_be_visible()
    review = page.locator(".checkout-review")
    await expect(review.locator(".order-line")).to_have_count(2)

    # Address, shipping method (the totals follow it at once), card.
    await fill_address(
        page,
        name="Ada Lovelace",
        line1="12 Analytical Row",
        postal_code="N1 7AA",
        city="London",
        country="GB",
    )
    await expect(review.locator('[data-total="shipping"]')).to_have_text("Free")
    await expect(review.locator('[data-total="total"]')).to_have_text("€52.00")
    await page.get_by_role("radio", name=re.compile(r"^Express delivery")).check()
    await expect(review.locator('[data-total="shipping"]')).to_have_text("€12.95")
    await expect(review.locator('[data-total="total"]')).to_have_text("€64.95")
    await expect(page.get_by_role("button", name="Update totals")).to_be_hidden()
    await fill_card(page, "4242 4242 4242 4242")
    card = page.get_by_label("Card number")
    assert await card.get_attribute("autocomplete") == "cc-number"
    assert await card.get_attribute("inputmode") == "numeric"
    await snap(page, "6-checkout-filled", width)
    place = page.get_by_role("button", name="Place order")
    box = await place.bounding_box()
    assert box is not None and box["height"] >= 44

    posts: list[str] = []

    async def slowly(route: Route) -> None:
        posts.append(route.request.method)
        await asyncio.sleep(0.3)  # the page stays the checkout a moment after the click
        await route.continue_()

    await page.route("**/checkout", slowly)
    await page.locator("[data-place-order]").evaluate(WATCH_BUTTON)
    await place.click()

    # The confirmation: pending first, confirmed once the worker captured the payment.
    await page.wait_for_url(NUMBER)
    assert posts == ["POST"]
    watched = await page.evaluate("() => sessionStorage.getItem('place-order')")
    assert watched == '[true,"Placing your order…"]'  # disabled after the first click
    match = NUMBER.search(page.url)
    assert match is not None
    number = match.group(1)
    # "Waiting for your payment" until the worker captured it (it may be quicker than the page).
    await expect(page.locator(".order-number")).to_contain_text(number)
    await snap(page, "7-thanks", width)
    status = page.locator("[data-order-status]")
    await expect(status).to_have_attribute("data-order-status", "confirmed", timeout=20_000)
    await expect(status).to_contain_text("your order is confirmed")
    await expect(page.get_by_role("heading", name="Thank you for your order")).to_be_visible()
    await expect(page.locator(".thanks")).to_contain_text("€64.95")
    await snap(page, "8-thanks-confirmed", width)

    # The order in the account, with its history.
    await page.get_by_role("link", name="View the order in your account").click()
    await page.wait_for_url(f"**/account/orders/{number}")
    await expect(page.locator(".order-history li")).to_have_count(2)  # placed, confirmed
    await expect(page.get_by_role("link", name="Cancel order")).to_be_visible()
    await snap(page, "9-account-order", width)
    await page.get_by_role("main").get_by_role("link", name="Orders").click()
    await page.wait_for_url("**/account/orders")
    await expect(page.get_by_role("link", name=re.compile(number))).to_be_visible()
    await expect(page.locator(".site-header .cart-count")).to_have_count(0)  # the cart is empty
    await snap(page, "10-account-orders", width)

    # The email: relayed from the outbox, sent by the worker, received by the SMTP server.
    def placed_email() -> bool:
        return any(
            number in str(m["Subject"]) and "We have" in str(m["Subject"]) for m in smtp.messages
        )

    assert await eventually(placed_email, timeout=20)
    [message] = [m for m in smtp.messages if str(m["Subject"]).startswith("We have")]
    assert message["To"] == "ada@example.com"
    body = message.get_body(("plain",))
    assert body is not None
    assert f"https://shop.example/account/orders/{number}" in body.get_content()
