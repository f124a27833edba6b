"""An operator's night, in Chromium, on a phone and on a laptop, on both brokers, with a real
`aioshop worker` process: a backed-up queue shows its numbers; once the worker runs, a poisoned
message (an email the SMTP server refuses for good) lands in the dead letters with its traceback;
the operator fixes the cause, retries it once, and it is sent once and disappears; the worker is
killed and its row turns red within its heartbeat window. The pages refresh themselves: no reload
is needed to see any of it. Screenshots land in tests/e2e/artifacts/ops-*.png.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from playwright.async_api import Page

from actors.broker import build_broker
from actors.ops.stats import stop_stats
from configs.settings import Settings
from domain.events import INDEX_PRODUCT, SEND_ACCOUNT_EMAIL, Event
from tests.support.browser import sign_in_chromium
from tests.support.catalog import insert_product
from tests.support.processes import ShopProcess
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

EMAIL = "night-ops@example.com"
INTERVAL = 1.0  # heartbeat interval: red after 3 silent intervals
BACKLOG = 6  # search messages waiting before any worker runs
REFUSAL = "550 5.1.1 Mailbox unavailable"


@pytest.fixture
def settings_overrides(broker_kind: str, redis_url: str, smtp: SmtpServer) -> dict[str, Any]:
    broker = {"broker_url": redis_url} if broker_kind == "redis" else {}
    return {"heartbeat_interval_seconds": INTERVAL, "smtp_url": smtp.url, **broker}


@pytest.fixture
def broker(settings: Settings) -> Iterator[dramatiq.Broker]:
    """The test's own publisher, on the shop's queues, emptied before and after."""
    publisher = build_broker(settings)
    for queue in (INDEX_PRODUCT.queue, SEND_ACCOUNT_EMAIL.queue):
        if isinstance(publisher, RabbitmqBroker):
            publisher.declare_queue(queue, ensure=True)
        publisher.flush(queue)
    try:
        yield publisher
    finally:
        for queue in (INDEX_PRODUCT.queue, SEND_ACCOUNT_EMAIL.queue):
            publisher.flush(queue)
        stop_stats(publisher)
        publisher.close()


def send(broker: dramatiq.Broker, event: Event, **payload: Any) -> str:
    """Enqueue `event` as the relay would (its event id is the message id); returns the id."""
    event_id = str(uuid.uuid4())
    actor = broker.get_actor(event.name)
    message = actor.message_with_options(args=(), kwargs={"event_id": event_id, **payload})
    broker.enqueue(message.copy(message_id=event_id))
    return event_id


def cell(queue: str, name: str) -> str:
    return f'tr[data-queue="{queue}"] td.{name}'


async def wait_for_cell(page: Page, queue: str, name: str, text: str, timeout: float) -> None:
    """Until the refreshed page shows `text` in that cell (no reload: the page's own refresh)."""
    await page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.textContent.trim() === text",
        arg=[cell(queue, name), text],
        timeout=timeout * 1000,
    )


# Each broker and each width once (not every pair: the walk takes ~20 s a run).
@pytest.mark.parametrize(
    ("broker_kind", "width", "height"), [("rabbitmq", 375, 812), ("redis", 1280, 800)]
)
async def test_an_operator_sees_the_backlog_retries_a_poisoned_message_and_sees_a_dead_worker(
    page: Page,
    fresh_db: str,
    settings: Settings,
    broker: dramatiq.Broker,
    smtp: SmtpServer,
    broker_kind: str,
    artifacts: Path,
    tmp_path: Path,
    width: int,
    height: int,
) -> None:
    shot = f"{broker_kind}-{width}"
    await page.set_viewport_size({"width": width, "height": height})
    operator_id = await sign_in_chromium(page, fresh_db, EMAIL, role="ops", landing="/ops/queues")

    # The backlog: no worker runs yet.
    product_id = await insert_product(fresh_db, "lamp", "Desk lamp", stock=3)
    for _ in range(BACKLOG):
        send(broker, INDEX_PRODUCT, product_id=product_id)
    smtp.refuse(EMAIL, REFUSAL)
    poisoned = send(broker, SEND_ACCOUNT_EMAIL, user_id=operator_id, kind="verify_email")
    await page.goto("/ops/queues")  # the depths are shared for a few seconds: wait for them
    await wait_for_cell(page, "search", "ready", str(BACKLOG), timeout=15)
    assert (await page.locator(cell(SEND_ACCOUNT_EMAIL.queue, "ready")).inner_text()).strip() == "1"
    assert (await page.locator(cell("search", "consumers")).inner_text()).strip() == "0"
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
    await page.screenshot(path=artifacts / f"ops-queues-backlog-{shot}.png", full_page=True)

    worker = ShopProcess.aioshop(
        settings, tmp_path / "worker.log", "worker", "--processes", "1", "--threads", "2"
    )
    worker.start()
    try:
        # The backlog drains and the poisoned email is dead-lettered at once (a 5xx is final).
        await wait_for_cell(page, "search", "ready", "0", timeout=40)
        await wait_for_cell(page, SEND_ACCOUNT_EMAIL.queue, "dead", "1", timeout=20)
        await page.screenshot(path=artifacts / f"ops-queues-drained-{shot}.png", full_page=True)

        await page.locator(cell(SEND_ACCOUNT_EMAIL.queue, "dead")).get_by_role("link").click()
        await page.wait_for_url(f"**/ops/queues/{SEND_ACCOUNT_EMAIL.queue}?part=dead")
        row = page.locator(f'tr[data-message-id="{poisoned}"]')
        assert "email.send_account_email" in await row.inner_text()
        await row.locator("summary", has_text="Traceback").click()
        traceback = await row.locator("pre.traceback").inner_text()
        assert "MailRefused" in traceback and "550" in traceback
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
        await page.screenshot(path=artifacts / f"ops-dead-letter-{shot}.png", full_page=True)

        smtp.accept(EMAIL)  # the cause is fixed: retry it
        await row.get_by_role("link", name="Retry").click()
        await page.get_by_role("button", name="Yes, retry").click()
        await page.wait_for_url(f"**/ops/queues/{SEND_ACCOUNT_EMAIL.queue}**")
        assert await eventually(lambda: delivered_to(smtp, EMAIL) == 1, timeout=20)
        await page.goto(f"/ops/queues/{SEND_ACCOUNT_EMAIL.queue}?part=dead")
        assert await page.locator(f'tr[data-message-id="{poisoned}"]').count() == 0
        audit = await page.locator("table", has_text="message.retry").inner_text()
        assert EMAIL in audit
        await page.screenshot(path=artifacts / f"ops-retried-{shot}.png", full_page=True)

        # The worker: green while it beats, red within its window once killed.
        await page.goto("/ops/workers")
        await page.wait_for_selector('tr[data-process^="worker:"] td[data-status="green"]')
        await page.screenshot(path=artifacts / f"ops-workers-alive-{shot}.png", full_page=True)
        worker.kill()
        killed = time.monotonic()
        await page.wait_for_function(
            "() => [...document.querySelectorAll('tr[data-process^=\"worker:\"] td[data-status]')]"
            ".some(cell => cell.dataset.status === 'red')",
            timeout=15_000,
        )
        # Red after 3 silent intervals; the page refreshes every 2 s; 2 s more for the machine.
        assert time.monotonic() - killed < 3 * INTERVAL + 2 + 2
        await page.screenshot(path=artifacts / f"ops-workers-dead-{shot}.png", full_page=True)
    finally:
        worker.stop()
    assert delivered_to(smtp, EMAIL) == 1  # once: the retry did not run twice


def delivered_to(smtp: SmtpServer, address: str) -> int:
    return sum(address in recipients for recipients in smtp.recipients)
