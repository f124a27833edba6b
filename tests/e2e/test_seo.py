"""A product page's JSON-LD and icons in a real Chromium: the page's Content-Security-Policy
refuses nothing (the `context` fixture fails the test otherwise), and a hostile product name is
data in the JSON-LD, never script."""

from __future__ import annotations

import json

from playwright.async_api import Page

from configs.settings import Settings
from tests.support.catalog import insert_product

HOSTILE = '</script><script>document.title="pwned"</script><!-- & "q"'


async def test_json_ld_is_data_the_policy_allows_and_no_name_can_escape(
    page: Page, base_url: str, settings: Settings
) -> None:
    await insert_product(str(settings.database_url), "hostile", HOSTILE, price=1999, stock=1)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto("/products/hostile")
    blocks = await page.locator('script[type="application/ld+json"]').all_text_contents()
    assert len(blocks) == 2
    product = json.loads(blocks[0])
    assert (product["@type"], product["name"]) == ("Product", HOSTILE)
    assert json.loads(blocks[1])["itemListElement"][-1]["name"] == HOSTILE
    assert await page.title() != "pwned" and not dialogs
    canonical = await page.locator('link[rel="canonical"]').get_attribute("href")
    assert canonical == f"{base_url}/products/hostile"
    favicon = await page.request.get("/favicon.ico")
    assert favicon.status == 200
    assert favicon.headers["content-type"] in ("image/x-icon", "image/vnd.microsoft.icon")
