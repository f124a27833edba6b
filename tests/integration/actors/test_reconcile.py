"""The outbox reconciler: every committed event reaches its effect at least once, and once in
effect. First its decisions on rows of each kind; then, for real, a retry whose enqueue the
broker refused (through a TCP proxy) and whose effect still happens, exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import dramatiq
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from actors.broker import build_broker
from actors.reconcile import reconcile_outbox
from actors.relay import Relay
from actors.resources import Resources, open_resources
from domain.events import INDEX_PRODUCT, SEND_ACCOUNT_EMAIL
from storage import outbox, reconcile_runs
from storage.database import create_pool
from tests.support.smtp import SmtpServer
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually
from web.cli.services import free_port

pytestmark = pytest.mark.timeout(120)


def sample(text: str) -> float:
    """A counter's value in this process, from `name{label="value"}`."""
    name, _, labels = text.partition("{")
    pairs = dict(part.split("=") for part in labels.rstrip("}").split(",")) if labels else {}
    value = REGISTRY.get_sample_value(name, {k: v.strip('"') for k, v in pairs.items()})
    return value or 0.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"reconcile_after_seconds": 60, "reconcile_max_republishes": 2}


async def published(
    conn: asyncpg.Connection, *, ago: str, republished: int = 0, parked: bool = False
) -> uuid.UUID:
    """A search event published `ago` (an interval), not settled."""
    event_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO outbox (event_id, actor_name, payload, published_at, republished, parked_at)"
        " VALUES ($1, $2, $3, now() - $4::text::interval, $5, CASE WHEN $6 THEN now() END)",
        event_id,
        INDEX_PRODUCT.name,
        {"event_id": str(event_id), "product_id": 1},
        ago,
        republished,
        parked,
    )
    return event_id


async def record(conn: asyncpg.Connection, event_id: uuid.UUID) -> None:
    """What the consumer does with its effect: the inbox row."""
    await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)",
        INDEX_PRODUCT.name,
        event_id,
    )


async def until(conn: asyncpg.Connection, query: str, *args: Any, expected: Any) -> bool:
    """Poll `query` every 100 ms for up to 10 s until it returns `expected`."""
    for _ in range(100):
        if await conn.fetchval(query, *args) == expected:
            return True
        await asyncio.sleep(0.1)
    return False


async def state(conn: asyncpg.Connection, event_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT published_at IS NOT NULL AS published, settled_at IS NOT NULL AS settled,"
        " parked_at IS NOT NULL AS parked, republished, last_error FROM outbox"
        " WHERE event_id = $1",
        event_id,
    )
    return dict(row)


async def test_the_reconciler_settles_republishes_with_caps_and_parks(
    settings_for, fresh_db, conn
) -> None:
    took_effect = await published(conn, ago="10 minutes")
    await record(conn, took_effect)
    lost = [await published(conn, ago=f"{10 - n} minutes") for n in range(3)]
    given_up = await published(conn, ago="10 minutes", republished=2)
    recent = await published(conn, ago="5 seconds")  # its message may still be on its way
    late = await published(conn, ago="1 hour", republished=2, parked=True)
    await record(conn, late)  # parked while its message waited behind a stopped worker
    settings = settings_for(
        fresh_db,
        reconcile_after_seconds=60,
        reconcile_max_republishes=2,
        reconcile_max_per_run=2,
    )
    async with AsyncExitStack() as stack:
        res: Resources = await open_resources(settings, stack)
        await reconcile_outbox(res)

        done = await state(conn, took_effect)
        assert done["settled"] and not done["parked"] and done["republished"] == 0
        first, second, third = [await state(conn, event_id) for event_id in lost]
        for again in (first, second):  # the oldest two: RECONCILE_MAX_PER_RUN is 2
            assert (again["published"], again["republished"]) == (False, 1)
        assert (third["published"], third["republished"]) == (True, 0)  # the next run's
        gave_up = await state(conn, given_up)
        assert gave_up["parked"] and gave_up["published"]
        assert gave_up["last_error"] == "no effect recorded after 2 re-publishes"
        young = await state(conn, recent)
        assert young["published"] and not young["settled"] and young["republished"] == 0
        late_now = await state(conn, late)
        assert late_now["settled"] and not late_now["parked"]

        await reconcile_outbox(res)
        assert (await state(conn, lost[2]))["republished"] == 1
        assert (await state(conn, lost[0]))["republished"] == 1  # unpublished: not looked at
    backlog = await outbox.backlog(conn)
    assert (backlog.unpublished, backlog.parked) == (3, 1)


async def test_a_retry_the_broker_refused_still_takes_effect_exactly_once(
    settings_for, fresh_db, conn, broker, broker_url, tmp_path
) -> None:
    user_id = await conn.fetchval(
        "INSERT INTO users (email, name, password_hash, role)"
        " VALUES ('ada@example.com', 'Ada', 'not-a-real-hash', 'customer') RETURNING id"
    )
    smtp = SmtpServer()  # not started yet: the first send fails, so the message is retried
    smtp_started = False
    proxy = TcpProxy.of(broker_url, 5672)
    await proxy.start()
    settings = settings_for(
        fresh_db,
        broker_url=proxy.url_through(broker_url),
        smtp_url=smtp.url,
        reconcile_after_seconds=1,
    )
    # The worker reaches RabbitMQ through the proxy; the relay directly (`broker`).
    through_proxy = await asyncio.to_thread(build_broker, settings)
    worker = dramatiq.Worker(
        through_proxy, queues={SEND_ACCOUNT_EMAIL.queue}, worker_threads=1, worker_timeout=100
    )
    pool = await create_pool(fresh_db, 2)
    sends = "SELECT count(*) FROM processed_events WHERE consumer = $1"
    try:
        await asyncio.to_thread(worker.start)
        assert await eventually(lambda: proxy.accepted >= 2)  # its consumers are connected
        await asyncio.sleep(1.0)
        # The connections open now stay; the one the worker opens to enqueue its retry is
        # refused, as a broker that refuses connections (or nacks) would.
        proxy.admit_only(0)
        async with conn.transaction():
            event_id = await outbox.add(
                conn, SEND_ACCOUNT_EMAIL, user_id=user_id, kind="password_reset"
            )
        await Relay(pool, broker).drain()
        # The send fails, the retry's enqueue is refused: the message is dead-lettered, not
        # retried; nothing more happens by itself.
        assert await eventually(lambda: proxy.refused >= 1, timeout=20)
        assert await eventually(
            lambda: broker.get_queue_message_counts(SEND_ACCOUNT_EMAIL.queue)[2] == 1, timeout=20
        )
        smtp.start()
        smtp_started = True
        await asyncio.sleep(3.0)  # a retry, had there been one, would have come by now
        assert smtp.messages == []
        assert await conn.fetchval(sends, SEND_ACCOUNT_EMAIL.name) == 0

        async with AsyncExitStack() as stack:
            res = await open_resources(settings, stack)
            await reconcile_outbox(res)  # no effect after RECONCILE_AFTER_SECONDS: again
            assert (await state(conn, event_id))["republished"] == 1
            await Relay(pool, broker).drain()
            assert await smtp.wait_for(1)
            assert await until(conn, sends, SEND_ACCOUNT_EMAIL.name, expected=1)
            await asyncio.sleep(2.0)  # time for a second effect, were there to be one
            await reconcile_outbox(res)  # it took effect: settled, not published again
            assert await Relay(pool, broker).drain() == 0
            await asyncio.sleep(1.0)
    finally:
        await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(through_proxy.close)
        await proxy.stop()
        await pool.close()
        if smtp_started:
            smtp.stop()
    assert len(smtp.messages) == 1 and smtp.recipients == [["ada@example.com"]]
    assert await conn.fetchval(sends, SEND_ACCOUNT_EMAIL.name) == 1
    final = await state(conn, event_id)
    assert final["settled"] and final["republished"] == 1 and not final["parked"]


async def test_each_run_records_itself_and_a_failed_run_its_error(
    settings_for, fresh_db, conn
) -> None:
    lost = await published(conn, ago="10 minutes")
    given_up = await published(conn, ago="10 minutes", republished=2)
    await record(conn, await published(conn, ago="10 minutes"))
    settings = settings_for(fresh_db, reconcile_after_seconds=60, reconcile_max_republishes=2)
    async with AsyncExitStack() as stack:
        res: Resources = await open_resources(settings, stack)
        assert await reconcile_runs.last(res.redis) is None
        before = datetime.now(UTC)
        await reconcile_outbox(res)
        run = await reconcile_runs.last(res.redis)
        assert run is not None and not run.failed and run.error is None
        assert (run.checked, run.settled, run.republished, run.parked) == (3, 1, 1, 1)
        assert before <= run.started_at <= datetime.now(UTC)
        assert 0 < run.duration_seconds < 10
        assert (await state(conn, lost))["republished"] == 1
        assert (await state(conn, given_up))["parked"]

        await conn.execute("ALTER TABLE outbox RENAME TO outbox_elsewhere")
        try:
            with pytest.raises(asyncpg.UndefinedTableError):
                await reconcile_outbox(res)
        finally:
            await conn.execute("ALTER TABLE outbox_elsewhere RENAME TO outbox")
        failed = await reconcile_runs.last(res.redis)
        assert failed is not None and failed.failed and failed.started_at > run.started_at
        assert failed.error is not None and "UndefinedTableError" in failed.error
        assert (failed.checked, failed.republished, failed.parked) == (0, 0, 0)


async def test_a_run_that_cannot_record_itself_still_does_its_work(
    settings_for, fresh_db, conn
) -> None:
    lost = await published(conn, ago="10 minutes")
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every command fails
    settings = settings_for(fresh_db, redis_url=nowhere, reconcile_after_seconds=60)
    errors = 'aioshop_reconcile_bookkeeping_errors_total{step="record_run"}'
    before = sample(errors)
    async with AsyncExitStack() as stack:
        res: Resources = await open_resources(settings, stack)
        with capture_logs() as logs:
            await reconcile_outbox(res)
    assert (await state(conn, lost))["republished"] == 1
    assert any(entry["event"] == "outbox.reconcile_run_not_recorded" for entry in logs)
    assert sample(errors) == before + 1


async def test_the_email_log_is_pruned_past_its_retention(settings_for, fresh_db, conn) -> None:
    insert = (
        "INSERT INTO email_deliveries (at, kind, recipient, subject, result, attempt,"
        " event_name, event_id) VALUES (now() - $1::interval, 'verify_email', 'a@example.com',"
        " 'Hi', 'sent', 1, $2, $3) RETURNING id"
    )
    old = await conn.fetchval(insert, timedelta(days=8), SEND_ACCOUNT_EMAIL.name, uuid.uuid4())
    kept = await conn.fetchval(insert, timedelta(days=6), SEND_ACCOUNT_EMAIL.name, uuid.uuid4())
    settings = settings_for(fresh_db, email_log_retention_days=7)
    async with AsyncExitStack() as stack:
        res: Resources = await open_resources(settings, stack)
        await reconcile_outbox(res)
    left = await conn.fetch("SELECT id FROM email_deliveries ORDER BY id")
    assert [row["id"] for row in left] == [kept] and old != kept
