"""/api/v1/docs in Chromium: Swagger UI from our own origin renders the API's operations under
the page's Content-Security-Policy (the `context` fixture fails the test on any refusal), on a
phone and on a laptop, without widening the page; without JavaScript the page still says where
the document is."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Request, expect

DOCS = "/api/v1/docs"


@pytest.mark.parametrize(("width", "height"), [(375, 812), (1280, 800)])
async def test_the_reference_renders_operations(
    page: Page, base_url: str, artifacts: Path, width: int, height: int
) -> None:
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(_origin(request)))
    await page.set_viewport_size({"width": width, "height": height})
    response = await page.goto(DOCS)
    assert response is not None and response.status == 200
    checkout = page.locator("#operations-checkout-checkout")
    await expect(checkout).to_be_visible()
    await expect(checkout).to_contain_text("/api/v1/checkout")
    await expect(checkout).to_contain_text("Place an order")

    await checkout.locator(".opblock-summary").first.click()  # open it: headers and problems
    await expect(checkout).to_contain_text("Idempotency-Key")
    await expect(checkout.locator(".response[data-code='409']")).to_be_visible()
    await page.screenshot(path=artifacts / f"api-docs-{width}-after.png", full_page=True)

    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert origins == {_origin_of(base_url)}, origins  # nothing from a CDN


async def test_without_javascript_the_page_links_the_document(
    browser: Browser, base_url: str
) -> None:
    context = await browser.new_context(base_url=base_url, java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(DOCS)
        link = page.get_by_role("link", name="the OpenAPI document")
        await expect(link).to_have_attribute("href", "/api/v1/openapi.json")
    finally:
        await context.close()


def _origin(request: Request) -> str:
    return _origin_of(request.url)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
