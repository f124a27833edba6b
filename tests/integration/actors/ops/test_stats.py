"""Per-actor statistics from a real worker run with known durations and failures, flushed to
the shop's Redis and read back; a flusher that cannot reach Redis keeps its counts."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from actors.ops import stats
from actors.ops.stats import StatsMiddleware, failures_last_minute, read_stats
from tests.support.queues import ACTOR, POISON, QUEUE, poisoned, running_worker, settings_for_kind
from tests.support.waiting import eventually


def middleware_of(broker) -> StatsMiddleware:  # type: ignore[no-untyped-def]
    (found,) = [m for m in broker.middleware if isinstance(m, StatsMiddleware)]
    return found


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
async def test_p95_failure_rate_rates_and_last_error_of_a_run_with_known_durations(
    kind, settings_for, fresh_db, redis_url
) -> None:
    settings = settings_for_kind(kind, settings_for, fresh_db, redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        with poisoned(settings) as broker:
            actor = broker.get_actor(ACTOR)
            # 18 fast ones, 2 of 0.3 s (the slowest 10 %), 5 failures that die at once.
            POISON.sleeps.update({"slow-0": 0.3, "slow-1": 0.3})
            items = [f"fast-{i}" for i in range(18)] + ["slow-0", "slow-1"]
            with running_worker(broker):
                for item in items:
                    await asyncio.to_thread(actor.send, item=item)
                for index in range(5):
                    await asyncio.to_thread(
                        actor.send_with_options, kwargs={"item": f"bad-{index}"}, max_retries=0
                    )
                assert await eventually(lambda: len(POISON.attempts) == 25, timeout=30)
                await asyncio.sleep(0.2)

                async def flushed() -> stats.Stats:
                    middleware_of(broker).flush()
                    return await read_stats(client)

                figures = await flushed()
                deadline = time.monotonic() + 10
                while not figures.actors or figures.actors[0].processed < 25:
                    assert time.monotonic() < deadline, figures
                    await asyncio.sleep(0.2)
                    figures = await flushed()
        (mine,) = [a for a in figures.actors if a.actor == ACTOR]
        assert mine.processed == 25 and mine.failed == 5
        assert mine.failure_rate == pytest.approx(0.2)
        assert mine.p50_seconds is not None and mine.p50_seconds <= 0.1
        assert mine.p95_seconds is not None and 0.25 <= mine.p95_seconds <= 0.5
        assert mine.per_minute == pytest.approx(25 / stats.WINDOW_MINUTES)
        assert mine.last_error is not None
        assert mine.last_error.type == "ValueError"
        assert mine.last_error.message.startswith("poison: cannot handle bad-")
        assert "raise ValueError" in mine.last_error.traceback
        # Rates over the last 5 minutes, the current one counted for its seconds gone by.
        at = time.time()
        rates = (await read_stats(client, now=at)).queues[QUEUE]
        elapsed_minutes = stats.RATE_MINUTES - 1 + (at % 60) / 60
        assert rates.in_per_minute == pytest.approx(25 / elapsed_minutes)
        assert rates.out_per_minute == pytest.approx(25 / elapsed_minutes)
        later = (await read_stats(client, now=at + 10 * 60)).queues[QUEUE]
        assert later.in_per_minute == later.out_per_minute == 0  # out of the rates' window
        # The history's failures: the minute the failures fell in, seen from the next minute.
        then = time.time()
        failures = await failures_last_minute(client, now=then + 60)
        here = await failures_last_minute(client, now=then)
        assert failures.get(ACTOR, 0) + here.get(ACTOR, 0) >= 5
    finally:
        await client.aclose()


async def test_a_flush_that_cannot_reach_redis_is_counted_and_its_counts_kept(
    settings, redis_url
) -> None:
    middleware = StatsMiddleware(settings)
    middleware.redis_url = "redis://127.0.0.1:1/0"  # nothing listens there
    now = time.time()
    middleware.record("tests.actor", "tests", 0.02, None, now)
    middleware.record("tests.actor", "tests", 0.02, RuntimeError("boom"), now)
    before = stats.FLUSH_ERRORS._value.get()
    assert middleware.flush() is False
    assert stats.FLUSH_ERRORS._value.get() == before + 1
    middleware.redis_url = redis_url  # Redis is back: the kept counts arrive
    assert middleware.flush() is True
    client = aioredis.Redis.from_url(redis_url)
    try:
        figures = await read_stats(client, now=now)
    finally:
        await client.aclose()
    (actor,) = figures.actors
    assert (actor.actor, actor.processed, actor.failed) == ("tests.actor", 2, 1)
    assert actor.last_error is not None and actor.last_error.message == "boom"


def test_a_hook_never_raises_even_on_nonsense() -> None:
    middleware = StatsMiddleware.__new__(StatsMiddleware)  # no lock: every hook would fail
    middleware.record("a", "q", 0.1, None, time.time())  # logged, not raised


async def test_an_idle_flusher_ends_and_the_next_count_starts_another(settings, redis_url) -> None:
    middleware = StatsMiddleware(settings, flush_seconds=0.05, idle_exit_seconds=0.2)
    client = aioredis.Redis.from_url(redis_url)
    try:
        for round_number in (1, 2):
            middleware.record("tests.actor", "tests", 0.01, None, time.time())
            first = middleware._flusher
            assert first is not None and first.is_alive()
            assert await eventually(lambda: middleware._flusher is None, timeout=5)
            assert await eventually(lambda thread=first: not thread.is_alive(), timeout=5)
            (actor,) = (await read_stats(client)).actors
            assert actor.processed == round_number  # written before it ended
    finally:
        await client.aclose()
