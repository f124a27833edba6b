"""Orders survive faults: a worker killed with SIGKILL again and again while 200 orders are paid
for, a relay that dies between publishing and marking. Each test also shows its fault happened.

Real parts only: RabbitMQ, PostgreSQL, a Dramatiq worker process, an SMTP server in this process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.broker import build_broker
from configs.settings import Settings
from domain.events import QUEUES
from storage.database import create_pool
from tests.support.orders import (
    assert_each_paid_and_told_once,
    count,
    place_orders_now,
    stocked_product,
    wait_until_paid,
)
from tests.support.processes import Worker
from tests.support.relays import CrashAfterPublish, relaying
from tests.support.smtp import SmtpServer
from tests.support.tcp_proxy import TcpProxy

ORDERS = 200
# Workers boot several times in these tests (a few seconds each on a cold machine).
pytestmark = pytest.mark.timeout(300)


async def place_orders(dsn: str, count: int) -> list[int]:
    skus = await stocked_product(dsn, "tee", {"TEE": 10_000}, price=2500)
    return await place_orders_now(dsn, skus["TEE"], count)


async def test_killing_the_worker_again_and_again_loses_and_repeats_nothing(
    settings_for, fresh_db: str, smtp: SmtpServer, broker, tmp_path: Path
) -> None:
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url)
    placed = await place_orders(fresh_db, ORDERS)
    worker = Worker(settings, tmp_path / "worker.log")
    confirmed = "SELECT count(*) FROM orders WHERE status = 'confirmed'"
    async with relaying(fresh_db, broker):
        try:
            worker.start()
            # Six times: once the new worker is paying for orders (it has booted and holds
            # messages it has not acknowledged), kill it mid-work; then let the last one finish.
            while worker.kills < 6:
                before = await count(fresh_db, confirmed)
                if before >= ORDERS - 20:
                    break
                deadline = asyncio.get_running_loop().time() + 60
                while await count(fresh_db, confirmed) < before + 5:
                    assert asyncio.get_running_loop().time() < deadline, "the worker does no work"
                    await asyncio.sleep(0.05)
                worker.kill()
                worker.start()
            await wait_until_paid(fresh_db, smtp, placed, timeout=120)
        finally:
            worker.stop()
    # The faults happened: the worker died mid-work and RabbitMQ delivered messages again.
    assert worker.kills >= 3
    redelivered = list(worker.events("message.redelivered"))
    assert redelivered, "no message was redelivered: the kills hit nothing"
    await assert_each_paid_and_told_once(fresh_db, smtp, placed)
    repeats = "SELECT sum(attempts) - count(*) FROM test_gateway_charges"
    print(
        f"kills={worker.kills} redelivered={len(redelivered)} repeated captures="
        f"{await count(fresh_db, repeats)} SMTP deliveries={len(smtp.messages)}"
    )


async def test_a_relay_killed_between_publishing_and_marking_causes_no_second_effect(
    settings_for, fresh_db: str, smtp: SmtpServer, broker, tmp_path: Path
) -> None:
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url)
    placed = await place_orders(fresh_db, 20)
    pool = await create_pool(fresh_db, 2)
    try:
        with pytest.raises(SystemExit):
            await CrashAfterPublish(pool, broker, batch_size=1000).drain()
    finally:
        await pool.close()
    # Every event is in RabbitMQ once and still unpublished in the outbox: the next relay sends
    # them all again, and the second copies must change nothing.
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    assert await count(fresh_db, unpublished) == 3 * len(placed)
    worker = Worker(settings, tmp_path / "worker.log")
    async with relaying(fresh_db, broker):
        try:
            worker.start()
            await wait_until_paid(fresh_db, smtp, placed, timeout=60)
        finally:
            worker.stop()
    skipped = list(worker.events("event.skipped_duplicate"))
    assert len(skipped) >= 3 * len(placed), "the second copies were not all seen and skipped"
    await assert_each_paid_and_told_once(fresh_db, smtp, placed)
    assert len(smtp.messages) == 2 * len(placed)  # duplicates after a commit: none at all


async def test_cutting_the_broker_connections_under_load_loses_nothing(
    settings_for, fresh_db: str, smtp: SmtpServer, tmp_path: Path, broker_url: str
) -> None:
    proxy = TcpProxy.of(broker_url, 5672)
    await proxy.start()
    through_proxy = proxy.url_through(broker_url)
    settings: Settings = settings_for(fresh_db, smtp_url=smtp.url, broker_url=through_proxy)
    # pika blocks: off the event loop, which also runs the proxy.
    broker = await asyncio.to_thread(build_broker, settings)
    for queue in QUEUES:
        await asyncio.to_thread(broker.flush, queue)
    worker = Worker(settings, tmp_path / "worker.log")
    placed: list[int] = []
    try:
        async with relaying(fresh_db, broker):
            try:
                worker.start()
                skus = await stocked_product(fresh_db, "tee", {"TEE": 10_000}, price=2500)
                for _ in range(3):
                    placed += await place_orders_now(fresh_db, skus["TEE"], 40)
                    await asyncio.sleep(0.5)
                    proxy.refuse(2.0)  # the network drops, and stays down for two seconds
                await wait_until_paid(fresh_db, smtp, placed, timeout=120)
            finally:
                worker.stop()
    finally:
        await asyncio.to_thread(broker.close)
        await proxy.stop()
    assert proxy.cuts >= 3 and proxy.refused >= 1, (proxy.cuts, proxy.refused)
    await assert_each_paid_and_told_once(fresh_db, smtp, placed)
