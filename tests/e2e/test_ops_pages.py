"""The operators' overview and workers pages in Chromium, on a phone and on a laptop: they fit the
screen (tables scroll in their box), draw their charts, and with JavaScript on they refresh
themselves, so a process that stops beating turns red without a reload (screenshots land in
tests/e2e/artifacts/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from actors.ops.heartbeats import HeartbeatThread
from tests.support.browser import sign_in_chromium

EMAIL = "ops@example.com"
INTERVAL = 0.5


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"heartbeat_interval_seconds": INTERVAL}


@pytest.mark.parametrize(("width", "height"), [(375, 812), (1280, 800)])
async def test_the_ops_pages_fit_and_a_silent_process_turns_red_by_itself(
    page: Page, fresh_db: str, redis_url: str, artifacts: Path, width: int, height: int
) -> None:
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_chromium(page, fresh_db, EMAIL, role="ops", landing="/ops/")

    lights = page.locator(".lights .light")
    assert await lights.count() >= 8
    assert await page.locator(".charts figure.chart svg").count() == 6
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
    box = await page.locator(".charts figure.chart svg").first.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    await page.screenshot(path=artifacts / f"ops-overview-{width}x{height}.png", full_page=True)

    beat = HeartbeatThread(redis_url, kind="worker", interval=INTERVAL, queues=["orders"])
    beat.beat()  # one beat and then silence, as from a process killed right after
    await page.goto("/ops/workers")
    status = page.locator(f'tr[data-process$=":{beat.pid}"] td[data-status]')
    assert await status.get_attribute("data-status") == "green"
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
    began = time.monotonic()
    # No reload: the page's own refresh (every 2 s here) brings the new status.
    await page.wait_for_function(
        "pid => document.querySelector(`tr[data-process$=':${pid}'] td[data-status]`)"
        "?.dataset.status === 'red'",
        arg=beat.pid,
        timeout=10_000,
    )
    assert time.monotonic() - began < 3 * INTERVAL + 2 + 2  # the window plus one refresh
    assert (await status.inner_text()).startswith("silent for ")
    await page.screenshot(path=artifacts / f"ops-workers-{width}x{height}.png", full_page=True)
