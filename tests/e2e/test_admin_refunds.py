"""Staff refund part of a paid order from its page, in Chromium, on a phone and on a laptop:
the orders list found by its placing day (date pickers), one unit of a line refunded and put
back in stock, the refund given back by the order actor, and the timeline telling it all.
Screenshots land in tests/e2e/artifacts/admin-order*-<width>-after.png.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Page

from actors.orders import make_refund
from actors.resources import open_resources
from configs.settings import Settings
from storage import order_payments
from storage.database import connect
from tests.support.browser import sign_in_chromium
from tests.support.orders import order_in_status, stock_of, stocked_product

EMAIL = "refunds@example.com"
SIZES = [(375, 812), (1280, 900)]


async def paid_order(dsn: str) -> tuple[str, int]:
    """A confirmed order of 3 mugs at €10.00 whose payment is captured; its number and the
    mug's variant id."""
    variants = await stocked_product(dsn, "blue-mug", {"MUG-1": 20}, price=1000)
    order = await order_in_status(dsn, variants["MUG-1"], 3, status="confirmed")
    conn = await connect(dsn)
    try:
        await order_payments.set_payment(conn, order.id, "captured", reference="ch_e2e")
    finally:
        await conn.close()
    return order.number, variants["MUG-1"]


async def fits(page: Page, width: int) -> None:
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width


async def give_back(settings: Settings, dsn: str) -> None:
    """What the worker does with the refund's outbox event."""
    conn = await connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT event_id, payload FROM outbox WHERE actor_name = 'orders.make_refund'"
        )
    finally:
        await conn.close()
    assert row is not None
    async with AsyncExitStack() as stack:
        res = await open_resources(settings, stack)
        await make_refund(res, event_id=str(row["event_id"]), refund_id=row["payload"]["refund_id"])


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_a_partial_refund_from_the_order_page(
    page: Page, settings: Settings, fresh_db: str, artifacts: Path, width: int, height: int
) -> None:
    number, mug = await paid_order(fresh_db)
    today = datetime.now(UTC).date().isoformat()
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_chromium(page, fresh_db, EMAIL, role="staff", landing="/admin/orders")

    # The list, filtered by placing day with the date pickers.
    assert await page.locator("#f-from").get_attribute("type") == "date"
    await page.fill("#f-from", today)
    await page.fill("#f-to", today)
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(f"**/admin/orders?*from={today}*")
    await fits(page, width)
    await page.screenshot(path=artifacts / f"admin-orders-{width}-after.png", full_page=True)
    await page.get_by_role("link", name=number).click()
    await page.wait_for_url(f"**/admin/orders/{number}")
    await fits(page, width)

    # One mug of three, back on the shelf.
    await page.fill("#f-qty_1", "1")
    await page.get_by_label("Put the refunded units back in stock").check()
    await page.fill("#f-reason", "Arrived chipped")
    await page.get_by_role("button", name="Refund", exact=True).click()
    await page.wait_for_url(f"**/admin/orders/{number}#refunds")
    assert await page.locator("#left-to-refund").inner_text() == "€24.95"
    assert await page.locator("tr.refund .badge").inner_text() == "being refunded"
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, mug) == 18
    finally:
        await conn.close()

    # Too much: refused beside the field, nothing written.
    await page.fill("#f-amount", "30.00")
    await page.get_by_role("button", name="Refund", exact=True).click()
    await page.wait_for_load_state()
    assert "At most €24.95 is left to refund" in await page.locator("#e-amount").inner_text()
    assert await page.locator("tr.refund").count() == 1
    await fits(page, width)

    # The worker gives it back; the page says so, and the timeline has it.
    await give_back(settings, fresh_db)
    await page.goto(f"/admin/orders/{number}")
    assert await page.locator("tr.refund .badge").inner_text() == "refunded"
    timeline = await page.locator("ol.timeline").inner_text()
    assert "Refund of €10.00 asked" in timeline and "Refund of €10.00 given back" in timeline
    assert timeline.index("Payment captured") < timeline.index("Refund of €10.00 asked")
    await fits(page, width)
    await page.screenshot(path=artifacts / f"admin-order-{width}-after.png", full_page=True)
