"""The relay under faults, for real (PostgreSQL, RabbitMQ): rows it cannot publish are parked
and hold up nothing; three relays at once publish every event once; and publishing resumes
promptly once the broker is back from an outage.

No worker runs: what the relay delivered is read back from RabbitMQ, message by message.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import dramatiq
import pytest

from actors.broker import build_broker
from actors.relay import Relay
from domain.events import INDEX_PRODUCT
from storage import outbox
from storage.database import connect, create_pool
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(180)

FAST = {"max_attempts": 3, "first_retry_seconds": 0.01, "poll_interval": 0.1}


async def add_events(conn: asyncpg.Connection, count: int) -> list[uuid.UUID]:
    """`count` search events, as the writers make them; their ids in order."""
    events = [outbox.new_event(INDEX_PRODUCT, product_id=n) for n in range(count)]
    async with conn.transaction():
        await outbox.add_all(conn, events)
    return [event.event_id for event in events]


async def add_poison(conn: asyncpg.Connection, count: int) -> dict[uuid.UUID, str]:
    """Rows no relay of this release can publish, older than the rest: an actor it does not know
    (written by a newer release during a rolling deploy), and a payload that is not an object.
    Written in SQL, as `outbox.add` refuses both. Each id -> what its error must say."""
    poison: dict[uuid.UUID, str] = {}
    for n in range(count):
        event_id = uuid.uuid4()
        if n % 2:
            actor, payload, expected = "loyalty.award_points", {"order_id": n}, "ActorNotFound"
        else:
            actor, payload, expected = INDEX_PRODUCT.name, [n, "not", "kwargs"], "not an object"
        await conn.execute(
            "INSERT INTO outbox (event_id, actor_name, payload, created_at)"
            " VALUES ($1, $2, $3, now() - interval '1 minute')",
            event_id,
            actor,
            payload,
        )
        poison[event_id] = expected
    return poison


def delivered(broker: dramatiq.Broker, queue: str) -> Counter[str]:
    """Every message waiting in `queue`, taken off it: message id -> how many copies."""
    ids: Counter[str] = Counter()
    while (got := broker.channel.basic_get(queue, auto_ack=True))[0] is not None:
        ids[dramatiq.Message.decode(got[2]).message_id] += 1
    return ids


async def rows(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_a_row_that_cannot_be_published_is_parked_and_holds_up_nothing(
    fresh_db, broker
) -> None:
    conn = await connect(fresh_db)
    try:
        poison = await add_poison(conn, 2)
        good = await add_events(conn, 5)
    finally:
        await conn.close()
    pool = await create_pool(fresh_db, 2)
    try:
        relay = Relay(pool, broker, max_attempts=3, first_retry_seconds=0.01)
        await relay.drain()  # the poisoned rows come first; they fail alone
        assert Counter(await asyncio.to_thread(delivered, broker, "search")) == Counter(
            {str(event_id): 1 for event_id in good}
        )
        for _ in range(20):  # each failure puts the row off a little longer: 0.01 s, 0.02 s
            await relay.drain()
            await asyncio.sleep(0.05)
    finally:
        await pool.close()
    parked = await rows(
        fresh_db,
        "SELECT event_id, attempts, last_error, published_at FROM outbox"
        " WHERE parked_at IS NOT NULL",
    )
    assert {row["event_id"] for row in parked} == set(poison)
    for row in parked:
        assert row["attempts"] == 3 and row["published_at"] is None
        assert poison[row["event_id"]] in row["last_error"], row["last_error"]
    unpublished = await rows(fresh_db, "SELECT 1 FROM outbox WHERE published_at IS NULL")
    assert len(unpublished) == len(poison)
    assert await asyncio.to_thread(delivered, broker, "search") == Counter()  # nothing more
    conn = await connect(fresh_db)
    try:
        backlog = await outbox.backlog(conn)
    finally:
        await conn.close()
    assert (backlog.unpublished, backlog.parked) == (0, len(poison))


async def test_three_relays_publish_every_event_once_around_poisoned_rows(fresh_db, broker) -> None:
    conn = await connect(fresh_db)
    try:
        poison = await add_poison(conn, 10)
        good: list[uuid.UUID] = []
        for _ in range(6):  # in several commits, as writers would: the relays race for them
            good += await add_events(conn, 50)
    finally:
        await conn.close()
    pools = [await create_pool(fresh_db, 2) for _ in range(3)]
    stop = asyncio.Event()
    relays = [Relay(pool, broker, batch_size=20, **FAST) for pool in pools]  # type: ignore[arg-type]
    running = [asyncio.create_task(relay.run(stop)) for relay in relays]
    try:
        done = "SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"

        async def drained() -> bool:
            return (await rows(fresh_db, done))[0][0] == 0

        deadline = asyncio.get_running_loop().time() + 60
        while not await drained():
            assert asyncio.get_running_loop().time() < deadline, "the relays did not drain"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*running)
        for pool in pools:
            await pool.close()
    copies = await asyncio.to_thread(delivered, broker, "search")
    assert set(copies) == {str(event_id) for event_id in good}  # none skipped, none extra
    assert set(copies.values()) == {1}  # none published twice
    parked = await rows(fresh_db, "SELECT event_id FROM outbox WHERE parked_at IS NOT NULL")
    assert {row["event_id"] for row in parked} == set(poison)


async def test_publishing_resumes_within_two_seconds_of_the_brokers_return(
    settings_for, fresh_db, broker_url
) -> None:
    proxy = TcpProxy.of(broker_url, 5672)
    await proxy.start()
    settings = settings_for(fresh_db, broker_url=proxy.url_through(broker_url))
    broker = await asyncio.to_thread(build_broker, settings)  # pika blocks: off the proxy's loop
    await asyncio.to_thread(broker.flush, "search")
    pool = await create_pool(fresh_db, 2)
    conn = await connect(fresh_db)
    stop = asyncio.Event()
    running = asyncio.create_task(Relay(pool, broker, poll_interval=0.2).run(stop))
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    try:
        await add_events(conn, 1)
        assert await eventually_sql(conn, unpublished, 0, timeout=15), "the relay never published"
        outage = 12.0
        proxy.refuse(outage)  # the broker goes away: every connection cut, new ones refused
        back_at = time.monotonic() + outage
        await asyncio.sleep(1.0)
        await add_events(conn, 5)  # written during the outage
        assert await eventually_sql(conn, unpublished, 5, timeout=1)
        while time.monotonic() < back_at:
            assert await conn.fetchval(unpublished) == 5  # nothing got through meanwhile
            await asyncio.sleep(0.2)
        assert await eventually_sql(conn, unpublished, 0, timeout=10)
        resumed_after = time.monotonic() - back_at
    finally:
        stop.set()
        await running
        await conn.close()
        await pool.close()
        await asyncio.to_thread(broker.close)
        await proxy.stop()
    assert proxy.refused >= 2, proxy.refused  # the relay kept trying during the outage
    assert resumed_after < 2.0, f"publishing resumed {resumed_after:.1f} s after the broker"
    parked = await rows(fresh_db, "SELECT 1 FROM outbox WHERE parked_at IS NOT NULL")
    assert parked == []  # an outage is nobody's row's fault


async def eventually_sql(
    conn: asyncpg.Connection, query: str, expected: Any, timeout: float
) -> bool:
    """Poll `query` every 50 ms until it returns `expected` (True) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while await conn.fetchval(query) != expected:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
