"""Retries with backoff and dead letters, through the real broker and worker."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import dramatiq
import pytest

from actors.broker import build_broker
from actors.registry import SPECS, handles
from actors.resources import Resources
from domain.events import Event
from tests.support.waiting import eventually

ATTEMPTS: list[int] = []


async def flaky(res: Resources, fail_times: int) -> None:
    """Fails `fail_times` times, then succeeds (a transient fault)."""
    ATTEMPTS.append(fail_times)
    if len(ATTEMPTS) <= fail_times:
        raise ConnectionError("transient")


class FlakyPayload(TypedDict):
    fail_times: int


@pytest.fixture
def tests_broker(settings):  # type: ignore[no-untyped-def]
    """A broker that also has `tests.flaky` (declared only for these tests)."""
    event = Event("tests.flaky", "tests", FlakyPayload, __name__)
    handles(event, max_retries=3, min_backoff=10, max_backoff=50)(flaky)
    broker = build_broker(settings)
    broker.flush("tests")  # only its own queue: other runs may share this RabbitMQ
    yield broker
    broker.flush("tests")
    broker.close()
    SPECS.pop("tests.flaky", None)


async def test_transient_failure_is_retried_until_it_succeeds(tests_broker) -> None:
    ATTEMPTS.clear()
    worker = dramatiq.Worker(tests_broker, queues={"tests"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        await asyncio.to_thread(tests_broker.get_actor("tests.flaky").send, fail_times=2)
        assert await eventually(lambda: len(ATTEMPTS) >= 3)
        await asyncio.sleep(0.3)
    finally:
        worker.stop()
    assert len(ATTEMPTS) == 3  # two failures, one success, no more
    _, _, dead = tests_broker.get_queue_message_counts("tests")
    assert dead == 0


async def test_exhausted_retries_land_in_the_dead_letter_queue(tests_broker) -> None:
    ATTEMPTS.clear()
    worker = dramatiq.Worker(tests_broker, queues={"tests"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        await asyncio.to_thread(tests_broker.get_actor("tests.flaky").send, fail_times=99)
        assert await eventually(
            lambda: tests_broker.get_queue_message_counts("tests")[2] == 1, timeout=20
        )
    finally:
        worker.stop()
    assert len(ATTEMPTS) == 4  # the first run and max_retries=3 retries


async def test_error_that_must_not_retry_goes_straight_to_dead_letters(
    settings, broker, worker
) -> None:
    # search.index_product throws=(ProductNotFound,): a missing product is not worth retrying.
    message = broker.get_actor("search.index_product").message(
        event_id="00000000-0000-4000-8000-000000000001", product_id=987654
    )
    await asyncio.to_thread(broker.enqueue, message)
    assert await eventually(lambda: broker.get_queue_message_counts("search")[2] == 1)
