"""Metrics of real `aioshop web|worker|relay` processes (configs/metrics.py, actors/ops/metrics.py).

Real parts: the processes the `aioshop` command starts, RabbitMQ, PostgreSQL, Redis, an SMTP
server in this process; orders placed through the JSON API of the web process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from configs.settings import Settings
from domain.events import CAPTURE_PAYMENT, URGENT_EMAIL_QUEUE
from tests.support.orders import ADDRESS, place_orders_now, stocked_product, wait_until_paid
from tests.support.pgcluster import free_ports
from tests.support.processes import ShopProcess
from tests.support.prometheus import (
    DRAMATIQ_UNIT_LINT,
    label_names,
    names,
    promtool_problems,
    scrape,
    scrape_when,
    value,
)
from tests.support.relays import relaying
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(240)

ORDERS = 8
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
CAPTURE = "orders.capture_payment"
ORDER_EMAIL = "email.send_order_email"


@pytest.fixture
def processes() -> Iterator[list[ShopProcess]]:
    """The processes a test starts, stopped at its end whatever happened."""
    started: list[ShopProcess] = []
    yield started
    for process in started:
        process.stop()


def start(processes: list[ShopProcess], process: ShopProcess) -> ShopProcess:
    processes.append(process)
    process.start()
    return process


async def place_orders_through_the_api(base: str, count: int) -> list[str]:
    """`count` guest orders of one TEE each, each from its own cart (X-Cart-Token); their
    numbers."""
    placed = []
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(
        base, cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout
    ) as session:
        for _ in range(count):
            async with session.post("/api/v1/cart/items", json={"sku": "TEE"}) as response:
                assert response.status == 201, await response.text()
                token = (await response.json())["cart_token"]
            body = {
                "email": "guest@example.com",
                "shipping_address": ADDRESS,
                "shipping_method": "standard",
                "card": CARD,
            }
            async with session.post(
                "/api/v1/checkout", json=body, headers={"X-Cart-Token": token}
            ) as response:
                assert response.status == 201, await response.text()
                placed.append(str((await response.json())["number"]))
    return placed


async def wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            assert asyncio.get_running_loop().time() < deadline, f"{url} never answered 200"
            await asyncio.sleep(0.1)


def per_process(directory: Path, name: str, **labels: str) -> dict[str, float]:
    """The value of `name` (a counter's, a histogram's) in each process's files of `directory`,
    read without the exposition: pid -> value."""
    totals: dict[str, float] = {}
    for path in sorted([*directory.glob("counter_*.db"), *directory.glob("histogram_*.db")]):
        pid = path.stem.rpartition("_")[2]
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    totals[pid] = totals.get(pid, 0.0) + sample.value
    return totals


@pytest.fixture
async def shop_settings(
    settings_for: Any, fresh_db: str, smtp: SmtpServer, broker: Any, tmp_path: Path
) -> AsyncIterator[tuple[Settings, dict[str, int]]]:
    web_port, worker_port, relay_port = free_ports(3)
    settings: Settings = settings_for(
        fresh_db,
        smtp_url=smtp.url,
        metrics_dir=tmp_path / "metrics",
        worker_metrics_port=worker_port,
        relay_metrics_port=relay_port,
        public_url=f"http://127.0.0.1:{web_port}",
    )
    await stocked_product(fresh_db, "tee", {"TEE": 1000}, price=2500)
    return settings, {"web": web_port, "worker": worker_port, "relay": relay_port}


async def test_web_worker_and_relay_processes_export_the_contract(
    shop_settings: tuple[Settings, dict[str, int]],
    fresh_db: str,
    smtp: SmtpServer,
    processes: list[ShopProcess],
    tmp_path: Path,
) -> None:
    settings, ports = shop_settings
    web_url = f"http://127.0.0.1:{ports['web']}"
    web = ShopProcess.aioshop(settings, tmp_path / "web.log", "web", "--port", str(ports["web"]))
    start(processes, web)
    start(
        processes,
        ShopProcess.aioshop(
            settings, tmp_path / "worker.log", "worker", "--processes", "2", "--threads", "2"
        ),
    )
    start(processes, ShopProcess.aioshop(settings, tmp_path / "relay.log", "relay"))
    await wait_healthy(f"{web_url}/healthz")
    # Dramatiq starts its exposition fork once every worker process has booted: from then on
    # RabbitMQ hands the messages to both processes' consumers in turn.
    worker_url = f"http://127.0.0.1:{ports['worker']}/metrics"
    await scrape_when(worker_url, lambda _: True)
    await asyncio.sleep(1.0)

    placed = await place_orders_through_the_api(web_url, ORDERS)
    assert len(set(placed)) == ORDERS
    await wait_until_paid(fresh_db, smtp, list(range(ORDERS)), timeout=90)  # (it counts them)

    # The worker's port: Dramatiq's metrics and the shop's, summed over both processes.
    worker = await scrape_when(
        worker_url,
        lambda text: value(text, "dramatiq_messages_total", actor_name=ORDER_EMAIL) >= 2 * ORDERS,
    )
    captures = value(
        worker, "dramatiq_messages_total", actor_name=CAPTURE, queue_name=CAPTURE_PAYMENT.queue
    )
    assert captures == ORDERS
    assert value(worker, "dramatiq_message_duration_milliseconds_count", actor_name=CAPTURE) == (
        ORDERS
    )
    assert value(worker, "dramatiq_message_errors_total") == 0
    assert "dramatiq_messages_inprogress" in names(worker)
    assert value(worker, "aioshop_payment_captures_total", result="captured") == ORDERS
    assert value(worker, "aioshop_payment_captures_total", result="declined") == 0
    for kind in ("order_placed", "order_confirmed"):
        assert value(worker, "aioshop_emails_total", kind=kind, result="sent") == ORDERS
    assert value(worker, "aioshop_inbox_deliveries_total", actor=CAPTURE, result="first") == (
        ORDERS
    )
    assert "pid" not in label_names(worker)  # every gauge summed over the live processes
    # Both processes did some of the work, and the exposition is their sum.
    shares = per_process(
        settings.metrics_root / "worker", "dramatiq_messages_total", actor_name=ORDER_EMAIL
    )
    assert len([pid for pid, count in shares.items() if count > 0]) == 2, shares
    assert sum(shares.values()) == value(worker, "dramatiq_messages_total", actor_name=ORDER_EMAIL)
    assert promtool_problems(worker) in ([], [DRAMATIQ_UNIT_LINT]), promtool_problems(worker)

    # The relay's port: what it published, by queue ("placed" emails on the email queue, the
    # confirmations on the urgent one, the captures on theirs: domain.events).
    relay = await scrape_when(
        f"http://127.0.0.1:{ports['relay']}/metrics",
        lambda text: (
            value(text, "aioshop_relay_published_total", queue=URGENT_EMAIL_QUEUE) >= ORDERS
        ),
    )
    assert value(relay, "aioshop_relay_published_total", queue="email") == ORDERS
    assert value(relay, "aioshop_relay_published_total", queue=URGENT_EMAIL_QUEUE) == ORDERS
    assert value(relay, "aioshop_relay_published_total", queue=CAPTURE_PAYMENT.queue) == ORDERS
    assert value(relay, "aioshop_relay_publish_failures_total") == 0
    assert promtool_problems(relay) == []

    # The web's /metrics: the requests it served, the orders, and the scrape-time gauges.
    text = await scrape(f"{web_url}/metrics")
    assert value(text, "aioshop_orders_placed_total", channel="api") == ORDERS
    assert value(text, "aioshop_orders_placed_total", channel="store") == 0
    checkout = "aioshop_http_request_duration_seconds_count"
    assert value(text, checkout, route="/api/v1/checkout", method="POST", status="201") == ORDERS
    assert value(text, "aioshop_outbox_unpublished") == 0
    assert value(text, "aioshop_outbox_parked") == 0
    assert value(text, "aioshop_email_oldest_unsent_age_seconds") == 0
    assert value(text, "aioshop_throttle_store_up") == 1
    assert value(text, "aioshop_replica_max_lag_seconds") == settings.replica_max_lag_seconds
    assert value(text, "aioshop_db_pool_connections", pool="primary", state="open") >= 1
    assert promtool_problems(text) == []


async def test_a_web_process_restarted_keeps_the_totals_of_the_others(
    shop_settings: tuple[Settings, dict[str, int]],
    processes: list[ShopProcess],
    tmp_path: Path,
) -> None:
    settings, ports = shop_settings
    other_port = free_ports(1)[0]
    first = start(
        processes,
        ShopProcess.aioshop(settings, tmp_path / "a.log", "web", "--port", str(ports["web"])),
    )
    second = start(
        processes,
        ShopProcess.aioshop(settings, tmp_path / "b.log", "web", "--port", str(other_port)),
    )
    a, b = f"http://127.0.0.1:{ports['web']}", f"http://127.0.0.1:{other_port}"
    await wait_healthy(f"{a}/healthz")
    await wait_healthy(f"{b}/healthz")
    for _ in range(3):
        await wait_healthy(f"{a}/healthz")
    for _ in range(5):
        await wait_healthy(f"{b}/healthz")
    healthz = {"route": "/healthz", "status": "200"}
    name = "aioshop_http_request_duration_seconds_count"
    # Either process answers for both (their own requests and their readiness polls).
    from_a = value(await scrape(f"{a}/metrics"), name, **healthz)
    assert value(await scrape(f"{b}/metrics"), name, **healthz) == from_a
    # Each `aioshop web` is a supervisor with one web process (WEB_PROCESSES=1): the files are
    # the web processes'.
    [first_web], [second_web] = children(first.pid), children(second.pid)
    shares = per_process(settings.metrics_root / "web", name, **healthz)
    assert shares.keys() == {str(first_web), str(second_web)}, shares
    assert shares[str(first_web)] >= 3 and shares[str(second_web)] >= 5
    assert sum(shares.values()) == from_a

    second.kill()  # SIGKILL: no shutdown at all, its files stay behind
    assert value(await scrape(f"{a}/metrics"), name, **healthz) == from_a  # nothing lost
    restarted = start(
        processes,
        ShopProcess.aioshop(settings, tmp_path / "b2.log", "web", "--port", str(other_port)),
    )
    await wait_healthy(f"{b}/healthz")
    # The restart cleared the dead process's files, never the running one's: every healthz
    # request the first process served is still counted, plus the new process's own.
    [restarted_web] = children(restarted.pid)
    after = per_process(settings.metrics_root / "web", name, **healthz)
    assert after.keys() == {str(first_web), str(restarted_web)}, after
    assert after[str(first_web)] == shares[str(first_web)]
    assert value(await scrape(f"{a}/metrics"), name, **healthz) == sum(after.values())
    assert value(await scrape(f"{b}/metrics"), name, **healthz) == sum(after.values())


def children(pid: int) -> list[int]:
    """The pids of `pid`'s children (Linux /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


async def test_a_worker_killed_and_restarted_keeps_the_totals_of_the_others(
    shop_settings: tuple[Settings, dict[str, int]],
    fresh_db: str,
    smtp: SmtpServer,
    broker: Any,
    processes: list[ShopProcess],
    tmp_path: Path,
) -> None:
    """Two workers on one machine share METRICS_DIR/worker; the first serves the port. The
    second, killed with SIGKILL and started again (asking for the same port, which it cannot
    have), takes only its own dead processes' files."""
    settings, ports = shop_settings
    quiet = settings.model_copy(update={"worker_metrics_port": 0})
    url = f"http://127.0.0.1:{ports['worker']}/metrics"
    args = ("worker", "--processes", "1", "--threads", "2")
    serving = start(processes, ShopProcess.aioshop(settings, tmp_path / "a.log", *args))
    other = start(processes, ShopProcess.aioshop(quiet, tmp_path / "b.log", *args))
    await scrape_when(url, lambda _: True)

    def other_ready(log: str, times: int) -> bool:
        return log.count("Worker process is ready for action") >= times

    assert await eventually(lambda: other_ready(other.log(), 1), timeout=30), other.log()
    await asyncio.sleep(1.0)  # both consumers are on the queues
    directory = settings.metrics_root / "worker"
    skus = await stocked_product(fresh_db, "mug", {"MUG": 1000}, price=900)
    async with relaying(fresh_db, broker):
        placed = await place_orders_now(fresh_db, skus["MUG"], 12)
        await wait_until_paid(fresh_db, smtp, placed, timeout=90)
    name, labels = "dramatiq_messages_total", {"actor_name": CAPTURE}
    before = per_process(directory, name, **labels)
    mine = {str(pid) for pid in children(other.pid)}
    assert len(before) == 2 and mine & before.keys(), (before, mine)
    assert all(count > 0 for count in before.values()), before  # both did some of the work
    assert value(await scrape(url), name, **labels) == 12

    other.kill()
    assert value(await scrape(url), name, **labels) == 12  # the files outlive the processes
    # Restarted with the port the serving group holds: it says so in one line and works on.
    restarted = start(processes, ShopProcess.aioshop(settings, tmp_path / "b2.log", *args))
    assert await eventually(lambda: other_ready(restarted.log(), 1), timeout=30), restarted.log()
    assert await eventually(lambda: "metrics.server_failed" in restarted.log(), timeout=10)
    after = per_process(directory, name, **labels)
    # The restart took the killed worker's files only: the serving worker's count is intact.
    assert after == {pid: count for pid, count in before.items() if pid not in mine}
    assert value(await scrape(url), name, **labels) == sum(after.values())
    # And both keep counting into the same exposition.
    async with relaying(fresh_db, broker):
        more = await place_orders_now(fresh_db, skus["MUG"], 6)
        await wait_until_paid(fresh_db, smtp, placed + more, timeout=90)
    assert value(await scrape(url), name, **labels) == sum(after.values()) + 6
    assert serving.process is not None and serving.process.poll() is None
