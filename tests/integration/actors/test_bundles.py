"""Bundles (actors.bundles) on the real RabbitMQ and PostgreSQL: the relay sends several events of
one actor as one message, the worker runs each as if it came alone (its effect once, its own
ids in the logs), and an event whose actor fails is handed over to a message of its own that
goes on through retries to the dead letters."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import dramatiq
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from actors import dead_letters
from actors.bundles import BUNDLE_ACTOR, bundle_message
from actors.relay import Relay
from configs.settings import Settings
from storage.database import connect, create_pool
from tests.support.queues import ACTOR, POISON, QUEUE, poisoned, running_worker
from tests.support.waiting import until

PRODUCT = {
    "slug": "mug",
    "name": "Mug",
    "description": "A mug.",
    "price_amount": 1250,
    "price_currency": "EUR",
}


async def test_the_relay_bundles_one_actors_events_and_each_takes_effect_once(
    client, staff_headers, fresh_db: str, broker: dramatiq.Broker
) -> None:
    ids, requests = [], []
    for n in range(3):
        resp = await client.post(
            "/api/v1/products", json=PRODUCT | {"slug": f"mug-{n}"}, headers=staff_headers
        )
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
        requests.append(resp.headers["X-Request-ID"])
    pool = await create_pool(fresh_db, 2)
    try:
        assert await Relay(pool, broker, bundle_size=25).drain() == 3
    finally:
        await pool.close()
    # One message on the search queue, carrying the three events.
    assert broker.get_queue_message_counts("search")[0] == 1
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    with capture_logs(processors=[merge_contextvars]) as logs:
        worker.start()
        try:
            conn = await connect(fresh_db)
            try:
                done = "SELECT count(*) FROM processed_events WHERE consumer = $1"
                assert await until(
                    lambda: _equals(conn, 3, done, "search.index_product"), timeout=15
                )
                versions = await conn.fetch(
                    "SELECT index_version FROM products WHERE id = ANY($1::bigint[])", ids
                )
            finally:
                await conn.close()
        finally:
            worker.stop()
    assert [row["index_version"] for row in versions] == [1, 1, 1]
    indexed = [entry for entry in logs if entry["event"] == "product.indexed"]
    assert sorted(entry["request_id"] for entry in indexed) == sorted(requests)
    assert {entry["actor"] for entry in indexed} == {"search.index_product"}
    assert len({entry["message_id"] for entry in indexed}) == 3  # each its event's id
    assert {entry["bundle"] for entry in indexed} != {None}


async def _equals(conn: Any, expected: Any, query: str, *args: Any) -> bool:
    return bool(await conn.fetchval(query, *args) == expected)


async def test_an_event_that_fails_in_a_bundle_goes_on_alone_to_the_dead_letters(
    settings: Settings,
) -> None:
    with poisoned(settings) as broker:
        event_ids = [str(uuid.uuid4()) for _ in range(3)]
        items = ["good-1", "bad-1", "good-2"]
        events = [
            (event_id, {"item": item, "event_id": event_id}, f"req-{n}")
            for n, (event_id, item) in enumerate(zip(event_ids, items, strict=True))
        ]
        broker.enqueue(bundle_message(broker, ACTOR, QUEUE, events))
        with running_worker(broker, threads=2):

            def buried() -> list[dead_letters.DeadLetter]:
                return dead_letters.peek(broker, QUEUE)

            assert await until(lambda: _has_letters(buried), timeout=15)
            await asyncio.sleep(0.3)  # nothing more comes
        [letter] = buried()
        assert sorted(POISON.effects) == ["good-1", "good-2"]  # once each
        assert POISON.attempts.count("bad-1") == 2  # in the bundle, then alone (max_retries 1)
        assert letter.message_id == event_ids[1] and letter.actor_name == ACTOR
        assert letter.retries == 1
        assert letter.error is not None and "poison: cannot handle bad-1" in letter.error
        assert all(each.actor_name != BUNDLE_ACTOR for each in buried())


async def _has_letters(read: Any) -> bool:
    return bool(await asyncio.to_thread(read))
