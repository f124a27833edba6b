"""Staff refund part of a paid order from its page, in Chromium, on a phone and on a laptop."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from storage import orders
from storage.database import connect
from tests.support.browser import sign_in_chromium
from tests.support.orders import order_in_status, stocked_product

EMAIL = "refunds@example.com"
SIZES = [(375, 812), (1280, 900)]


async def paid_order(dsn: str) -> str:
    """A confirmed order of 3 mugs at €10.00 whose payment is captured; its number."""
    variants = await stocked_product(dsn, "blue-mug", {"MUG-1": 20}, price=1000)
    order = await order_in_status(dsn, variants["MUG-1"], 3, status="confirmed")
    conn = await connect(dsn)
    try:
        await orders.set_payment(conn, order.id, "captured", reference="ch_e2e")
    finally:
        await conn.close()
    return order.number


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_before_screens(
    page: Page, fresh_db: str, artifacts: Path, width: int, height: int
) -> None:
    number = await paid_order(fresh_db)
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_chromium(page, fresh_db, EMAIL, role="staff", landing="/admin/orders")
    await page.screenshot(path=artifacts / f"admin-orders-{width}-before.png", full_page=True)
    await page.goto(f"/admin/orders/{number}")
    await page.screenshot(path=artifacts / f"admin-order-{width}-before.png", full_page=True)
