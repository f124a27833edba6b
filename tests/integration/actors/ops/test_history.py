"""The /ops history in the real Redis: each slot recorded once however many web processes sample,
request times merged across processes into one 95th percentile, gaps kept, probes reading the
real database, and a sampler that outlives a Redis outage."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from actors.ops import history
from actors.ops.history import RequestTimes, Sampler, Slot
from configs.settings import Settings
from storage.database import connect, open_database
from storage.redis_client import open_redis
from tests.support.orders import place_order, stocked_product
from tests.support.redis_server import RedisServer
from web.app import create_app
from web.keys import REQUEST_TIMES


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    client = open_redis(redis_url, timeout=1)
    yield client
    await client.aclose()


async def test_two_samplers_record_each_slot_once(redis_client: Any) -> None:
    calls: Counter[int] = Counter()

    async def probe(slot: Slot) -> float:
        calls[slot.index] += 1
        return float(slot.index % 7)

    samplers = [Sampler(redis_client, {"test": probe}, slot_seconds=1) for _ in range(2)]
    stop = asyncio.Event()
    started = time.time()
    tasks = [asyncio.create_task(s.run(stop)) for s in samplers]
    await asyncio.sleep(3.6)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert len(calls) >= 3, calls
    assert set(calls.values()) == {1}, calls  # never twice
    points = await history.read_series(
        redis_client, "test", slot_seconds=1, since=started - 1, until=time.time()
    )
    recorded = {int(p.time) - 1: p.value for p in points if p.value is not None}
    assert recorded == {index: float(index % 7) for index in calls}


async def test_two_web_apps_sample_once_and_merge_their_request_times(
    aiohttp_client: Any,
    fresh_db: str,
    settings_for: Callable[..., Settings],
    redis_client: Any,
) -> None:
    settings = settings_for(fresh_db, history_slot_seconds=1)
    clients = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    try:
        started = time.time()
        made = 0
        for _ in range(3):
            for client in clients:
                for _ in range(3):
                    assert (await client.get("/healthz")).status == 200
                    made += 1
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.5)  # every slot with requests flushed and recorded
        latency_keys = [key async for key in redis_client.scan_iter("aioshop:history:1:latency:*")]
        flushed = 0
        for key in latency_keys:
            buckets = await redis_client.hgetall(key)
            flushed += sum(int(v) for k, v in buckets.items() if k.isdigit())
        assert flushed == made
        claims = [key async for key in redis_client.scan_iter("aioshop:history:1:claim:*")]
        orders_points = await history.read_series(
            redis_client,
            history.ORDERS_PER_MINUTE,
            slot_seconds=1,
            since=started - 1,
            until=time.time(),
        )
        recorded = [p for p in orders_points if p.value is not None]
        assert len(recorded) >= 3 and all(p.value == 0 for p in recorded)
        assert len(claims) >= len(recorded)
        p95 = await history.read_series(
            redis_client, history.REQUEST_P95, slot_seconds=1, since=started, until=time.time()
        )
        assert any(p.value is not None and 0 < p.value < 1 for p in p95), p95
    finally:
        for client in clients:
            await client.close()


async def test_the_request_middleware_fills_the_apps_request_times(
    aiohttp_client: Any, fresh_db: str, settings_for: Callable[..., Settings]
) -> None:
    app = create_app(settings_for(fresh_db))
    client = await aiohttp_client(app)
    try:
        for _ in range(4):
            await client.get("/healthz")
        buffered = app[REQUEST_TIMES].take_ended(time.time() + 3600)
        assert sum(sum(counts) for counts in buffered.values()) == 4
    finally:
        await client.close()


async def test_p95_comes_from_every_processs_buckets_merged(redis_client: Any) -> None:
    now = 1_800_000_030.0
    slot = Slot.at(now, 60)
    fast, slow = RequestTimes(60), RequestTimes(60)
    fast_times, slow_times = [0.008] * 100, [0.9] * 100
    for seconds in fast_times:
        fast.observe(seconds, now=now)
    for seconds in slow_times:
        slow.observe(seconds, now=now)
    await history.flush_request_times(redis_client, fast, slot.end + 1)
    alone = await history.merged_p95(redis_client, slot)
    await history.flush_request_times(redis_client, slow, slot.end + 1)
    merged = await history.merged_p95(redis_client, slot)
    assert alone is not None and alone <= 0.01  # the fast process alone
    # Linear within the bucket holding the 95th percentile of all 200, as Prometheus does.
    everything = sorted(fast_times + slow_times)
    rank = 0.95 * len(everything)
    lower, upper = 0.75, 1.0  # the bucket of 0.9 s
    below = sum(1 for t in everything if t <= lower)
    inside = sum(1 for t in everything if lower < t <= upper)
    assert merged == pytest.approx(lower + (upper - lower) * (rank - below) / inside)
    assert fast.take_ended(slot.end + 1) == {} and slow.take_ended(slot.end + 1) == {}


async def test_5xx_answers_are_summed_over_processes_and_recent_slots(redis_client: Any) -> None:
    now = 1_800_000_000.0
    processes = [RequestTimes(60), RequestTimes(60)]
    answers = {  # minutes ago -> (status, count) per process
        1: [(500, 2), (200, 5)],
        3: [(503, 1), (502, 4)],
        9: [(500, 7), (500, 7)],  # outside the five minutes
    }
    for minutes_ago, per_process in answers.items():
        for times, (status, count) in zip(processes, per_process, strict=True):
            for _ in range(count):
                times.observe(0.02, status, now=now - minutes_ago * 60)
    for times in processes:
        await history.flush_request_times(redis_client, times, now)
    expected = sum(
        count
        for minutes_ago, per_process in answers.items()
        if minutes_ago <= 5
        for status, count in per_process
        if status >= 500
    )
    found = await history.server_errors(redis_client, slot_seconds=60, now=now, window=300)
    assert found == expected
    assert await history.merged_p95(redis_client, Slot.at(now - 60, 60)) is not None


async def test_missing_slots_are_gaps(redis_client: Any) -> None:
    values = {10: 1.0, 11: 2.5, 13: 4.0}

    async def probe(slot: Slot) -> float | None:
        return values.get(slot.index)

    sampler = Sampler(redis_client, {"test": probe}, slot_seconds=60)
    for index in range(10, 14):
        assert await sampler.record(Slot(index, 60))
        assert not await sampler.record(Slot(index, 60))  # claimed already
    points = await history.read_series(
        redis_client, "test", slot_seconds=60, since=10 * 60, until=14 * 60
    )
    assert [(p.time, p.value) for p in points] == [
        ((i + 1) * 60.0, values.get(i)) for i in range(10, 14)
    ]


async def test_a_failing_probe_leaves_a_gap_in_its_series_only(redis_client: Any) -> None:
    async def broken(slot: Slot) -> float:
        raise RuntimeError("no database")

    async def fine(slot: Slot) -> float:
        return 3.0

    sampler = Sampler(redis_client, {"broken": broken, "fine": fine}, slot_seconds=60)
    assert await sampler.record(Slot(5, 60))
    for name, expected in (("broken", None), ("fine", 3.0)):
        [point] = await history.read_series(
            redis_client, name, slot_seconds=60, since=300, until=360
        )
        assert point.value == expected


async def test_orders_per_minute_counts_the_orders_placed_in_the_slot(
    fresh_db: str, settings_for: Callable[..., Settings], redis_client: Any
) -> None:
    variants = await stocked_product(fresh_db, "mug", {"MUG-1": 5})
    conn = await connect(fresh_db)
    try:
        for _ in range(2):
            await place_order(conn, [(variants["MUG-1"], 1)])
    finally:
        await conn.close()
    async with open_database(settings_for(fresh_db)) as db:
        probes = history.standard_probes(db, redis_client)
        slot = Slot.at(time.time(), 30)
        assert await probes[history.ORDERS_PER_MINUTE](slot) == 2 * 60 / 30
        assert await probes[history.ORDERS_PER_MINUTE](Slot(slot.index - 1, 30)) == 0
        assert await probes[history.OUTBOX_OLDEST_AGE](slot) >= 0
        assert await probes[history.REPLICA_LAG](slot) is None  # none configured


async def test_the_sampler_survives_a_redis_outage_and_records_again() -> None:
    with RedisServer() as server:
        client = open_redis(server.url, timeout=0.5)
        calls: list[int] = []

        async def probe(slot: Slot) -> float:
            calls.append(slot.index)
            return 1.0

        def errors() -> float:
            return (
                REGISTRY.get_sample_value("aioshop_history_errors_total", {"stage": "record"})
                or 0.0
            )

        before = errors()
        sampler = Sampler(client, {"test": probe}, slot_seconds=1)
        stop = asyncio.Event()
        task = asyncio.create_task(sampler.run(stop))
        try:
            server.stop()
            await asyncio.sleep(2.5)
            assert not task.done() and errors() >= before + 1
            server.start()
            await asyncio.sleep(2.5)
            assert calls, "recorded again once Redis came back"
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=5)
            await client.aclose()
