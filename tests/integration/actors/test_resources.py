"""A worker that stops lets the messages in progress finish with their resources still open."""

from __future__ import annotations

import asyncio
import threading

import dramatiq

from actors.broker import ResourcesMiddleware, bind
from actors.resources import Resources


async def test_a_message_in_progress_at_shutdown_still_has_its_resources(broker) -> None:
    started, finished = threading.Event(), threading.Event()
    outcome: list[object] = []

    async def slow(res: Resources) -> None:
        started.set()
        await asyncio.sleep(0.5)  # the worker is told to stop meanwhile
        try:
            outcome.append(await res.db.primary.fetchval("SELECT 42"))
            outcome.append(await res.redis.ping())
        except Exception as exc:  # recorded: the assertion below shows what the actor met
            outcome.append(exc)
        finally:
            finished.set()

    (resources,) = (m for m in broker.middleware if isinstance(m, ResourcesMiddleware))
    actor = dramatiq.Actor(
        bind(slow, resources),
        broker=broker,
        actor_name="test.slow_at_shutdown",
        queue_name="test_shutdown",
        priority=0,
        options={"max_retries": 0},
    )
    broker.flush("test_shutdown")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send()
        assert await asyncio.to_thread(started.wait, 30), "the message never started"
    finally:
        await asyncio.to_thread(worker.stop)  # waits for the message in progress
    assert finished.is_set()
    assert outcome == [42, True]
    assert resources.resources is None  # closed after the message, not before
