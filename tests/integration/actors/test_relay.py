"""The side-effect path for real: HTTP write -> outbox -> relay -> RabbitMQ -> actor -> database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import dramatiq
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from actors.relay import Relay
from storage import outbox
from storage.database import connect, create_pool
from tests.support.relays import CrashAfterPublish
from tests.support.waiting import eventually

NEW_PRODUCT = {
    "slug": "test-mug",
    "name": "Test mug",
    "description": "A mug for tests.",
    "price_amount": 1250,
    "price_currency": "EUR",
}


async def wait_for(query: str, *args: Any, dsn: str, expected: Any, timeout: float = 15.0) -> Any:
    """Poll the database until `query` returns `expected`; returns the last value seen."""
    conn = await connect(dsn)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        value = await conn.fetchval(query, *args)
        while value != expected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            value = await conn.fetchval(query, *args)
        return value
    finally:
        await conn.close()


async def create_product(client, staff_headers) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    resp = await client.post("/api/v1/products", json=NEW_PRODUCT, headers=staff_headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"], resp.headers["X-Request-ID"]


async def test_write_reaches_actor_through_rabbitmq(
    client, staff_headers, fresh_db, broker, worker
) -> None:
    product_id, request_id = await create_product(client, staff_headers)
    conn = await connect(fresh_db)
    try:
        row = await conn.fetchrow(
            "SELECT actor_name, payload, request_id, published_at FROM outbox"
        )
    finally:
        await conn.close()
    assert row["actor_name"] == "search.index_product"
    assert row["payload"]["product_id"] == product_id
    assert row["request_id"] == request_id
    assert row["published_at"] is None

    pool = await create_pool(fresh_db, 2)
    try:
        with capture_logs(processors=[merge_contextvars]) as logs:
            assert await Relay(pool, broker).drain() == 1
            version = await wait_for(
                "SELECT index_version FROM products WHERE id = $1",
                product_id,
                dsn=fresh_db,
                expected=1,
            )
            await wait_for("SELECT count(*) FROM processed_events", dsn=fresh_db, expected=1)
    finally:
        await pool.close()
    assert version == 1
    assert (
        await wait_for(
            "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL", dsn=fresh_db, expected=1
        )
        == 1
    )
    indexed = [entry for entry in logs if entry["event"] == "product.indexed"]
    assert indexed
    assert indexed[0]["request_id"] == request_id


async def test_relay_killed_after_publish_republishes_and_effect_happens_once(
    client, staff_headers, fresh_db, broker, worker
) -> None:
    product_id, _ = await create_product(client, staff_headers)
    pool = await create_pool(fresh_db, 2)
    try:
        with pytest.raises(SystemExit):
            await CrashAfterPublish(pool, broker).drain()
        # The first copy is in RabbitMQ; the row is still unpublished: a new relay sends it again.
        assert (
            await wait_for(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL", dsn=fresh_db, expected=1
            )
            == 1
        )
        with capture_logs(processors=[merge_contextvars]) as logs:
            assert await Relay(pool, broker).drain() == 1
            await wait_for(
                "SELECT index_version FROM products WHERE id = $1",
                product_id,
                dsn=fresh_db,
                expected=1,
            )
            await eventually(
                lambda: any(entry["event"] == "event.skipped_duplicate" for entry in logs)
            )
    finally:
        await pool.close()
    assert any(entry["event"] == "event.skipped_duplicate" for entry in logs), logs
    conn = await connect(fresh_db)
    try:
        assert (
            await conn.fetchval("SELECT index_version FROM products WHERE id=$1", product_id) == 1
        )
        assert await conn.fetchval("SELECT count(*) FROM processed_events") == 1
    finally:
        await conn.close()


async def test_redelivered_message_has_no_second_effect(
    client, staff_headers, fresh_db, broker: dramatiq.Broker, worker
) -> None:
    product_id, _ = await create_product(client, staff_headers)
    event_id = str(uuid.uuid4())
    actor = broker.get_actor("search.index_product")
    message = actor.message_with_options(
        args=(), kwargs={"event_id": event_id, "product_id": product_id}
    ).copy(message_id=event_id)
    with capture_logs(processors=[merge_contextvars]) as logs:
        for _ in range(3):
            await asyncio.to_thread(broker.enqueue, message)
        await eventually(
            lambda: (
                sum(e["event"] in ("product.indexed", "event.skipped_duplicate") for e in logs) >= 3
            )
        )
    events = [entry["event"] for entry in logs]
    assert events.count("product.indexed") == 1, events
    assert events.count("event.skipped_duplicate") == 2, events
    conn = await connect(fresh_db)
    try:
        assert (
            await conn.fetchval("SELECT index_version FROM products WHERE id=$1", product_id) == 1
        )
    finally:
        await conn.close()


async def test_settled_events_are_purged_after_a_week_and_unsettled_ones_never(fresh_db) -> None:
    # Purged: settled (its effect seen by the reconciler) 8 days ago. Kept: settled 6 days ago;
    # published 8 days ago but never settled (the reconciler has not seen its effect: deleting it
    # would lose the event for good); unpublished.
    old, recent, unsettled, unpublished = (uuid.uuid4() for _ in range(4))
    conn = await connect(fresh_db)
    try:
        await conn.execute(
            "INSERT INTO outbox (event_id, actor_name, payload, published_at, settled_at) VALUES"
            " ($1, 'search.index_product', '{}', now() - interval '9 days',"
            "  now() - interval '8 days'),"
            " ($2, 'search.index_product', '{}', now() - interval '7 days',"
            "  now() - interval '6 days'),"
            " ($3, 'search.index_product', '{}', now() - interval '8 days', NULL),"
            " ($4, 'search.index_product', '{}', NULL, NULL)",
            old,
            recent,
            unsettled,
            unpublished,
        )
        assert await outbox.purge_published(conn) == 1
        left = {row["event_id"] for row in await conn.fetch("SELECT event_id FROM outbox")}
        assert left == {recent, unsettled, unpublished}
    finally:
        await conn.close()


async def test_the_relay_loop_publishes_and_purges_without_errors(
    fresh_db, broker: dramatiq.Broker
) -> None:
    """One turn of the relay's loop (publish, then the periodic purge) logs no failure."""
    pool = await create_pool(fresh_db, 2)
    stop = asyncio.Event()
    try:
        with capture_logs() as logs:
            task = asyncio.create_task(Relay(pool, broker).run(stop))
            await asyncio.sleep(1.5)
            stop.set()
            await asyncio.wait_for(task, 10)
    finally:
        await pool.close()
    assert not [entry for entry in logs if entry["event"] == "outbox.publish_failed"], logs
