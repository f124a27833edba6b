"""Browsing and handling a queue's parts on both brokers: pages of messages with their errors,
retry one (dead or delayed: runs once, same id), retry all, delete one, purge exactly one part,
secrets redacted."""

from __future__ import annotations

import asyncio

import pytest
from dramatiq.message import Message

from actors.dead_letters import UnknownQueue
from actors.ops import messages
from actors.ops.messages import browse, delete_one, purge, retry_all, retry_one
from actors.ops.queues import read_depths
from actors.ops.redact import REDACTED
from tests.support.queues import ACTOR, POISON, QUEUE, poisoned, running_worker, settings_for_kind
from tests.support.waiting import eventually

KINDS = ["rabbitmq", "redis"]


def counts(broker, settings) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    (d,) = [d for d in read_depths(broker, settings) if d.queue == QUEUE]
    return d.ready, d.delayed, d.dead


async def kill(broker, item: str) -> Message:  # type: ignore[no-untyped-def]
    """A message that dies on its first run (a worker runs it)."""
    return await asyncio.to_thread(
        broker.get_actor(ACTOR).send_with_options, kwargs={"item": item}, max_retries=0
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_a_poisoned_message_is_browsed_with_its_traceback_and_retried_once(
    kind, settings_for, fresh_db, redis_url
) -> None:
    settings = settings_for_kind(kind, settings_for, fresh_db, redis_url)
    with poisoned(settings) as broker, running_worker(broker):
        sent = await kill(broker, "bad-1")
        other = await kill(broker, "bad-2")
        assert await eventually(lambda: counts(broker, settings)[2] == 2, timeout=20)
        page = await asyncio.to_thread(browse, broker, QUEUE, "dead")
        assert page.total == 2 and not page.has_more
        by_id = {m.message_id: m for m in page.messages}
        dead = by_id[sent.message_id]
        assert dead.actor_name == ACTOR and dead.summary == "item='bad-1'"
        assert dead.error == "ValueError: poison: cannot handle bad-1"
        assert dead.traceback is not None and "raise ValueError" in dead.traceback
        assert dead.enqueued_at is not None and dead.dead_at is not None
        # A page of one, then the next.
        first = await asyncio.to_thread(browse, broker, QUEUE, "dead", 0, 1)
        second = await asyncio.to_thread(browse, broker, QUEUE, "dead", 1, 1)
        assert first.has_more and not second.has_more
        assert {first.messages[0].message_id, second.messages[0].message_id} == set(by_id)

        POISON.fixed = True
        assert await asyncio.to_thread(retry_one, broker, QUEUE, "dead", sent.message_id) == 1
        assert await eventually(lambda: POISON.effects == ["bad-1"], timeout=20)
        await asyncio.sleep(0.5)  # room for a second run, if there were to be one
        assert POISON.attempts.count("bad-1") == 2  # died once, then ran once
        (left,) = (await asyncio.to_thread(browse, broker, QUEUE, "dead")).messages
        assert left.message_id == other.message_id
        # Retrying it again finds nothing: it is gone from the dead part.
        assert await asyncio.to_thread(retry_one, broker, QUEUE, "dead", sent.message_id) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_delete_one_and_purge_exactly_one_part(
    kind, settings_for, fresh_db, redis_url
) -> None:
    settings = settings_for_kind(kind, settings_for, fresh_db, redis_url)
    with poisoned(settings) as broker:
        actor = broker.get_actor(ACTOR)
        with running_worker(broker):
            doomed = await kill(broker, "bad-a")
            await kill(broker, "bad-b")
            assert await eventually(lambda: counts(broker, settings)[2] == 2, timeout=20)
        ready = [await asyncio.to_thread(actor.send, item=f"good-{i}") for i in range(3)]
        delayed = await asyncio.to_thread(
            actor.send_with_options, kwargs={"item": "later"}, delay=600_000
        )
        assert await asyncio.to_thread(counts, broker, settings) == (3, 1, 2)

        (waiting,) = (await asyncio.to_thread(browse, broker, QUEUE, "delayed")).messages
        assert waiting.message_id == delayed.message_id and waiting.due_at is not None
        shown = (await asyncio.to_thread(browse, broker, QUEUE, "ready")).messages
        assert [m.message_id for m in shown] == [m.message_id for m in ready]

        assert await asyncio.to_thread(delete_one, broker, QUEUE, "dead", doomed.message_id) == 1
        assert await asyncio.to_thread(delete_one, broker, QUEUE, "dead", doomed.message_id) == 0
        assert await asyncio.to_thread(delete_one, broker, QUEUE, "ready", ready[1].message_id) == 1
        assert await asyncio.to_thread(counts, broker, settings) == (2, 1, 1)
        shown = (await asyncio.to_thread(browse, broker, QUEUE, "ready")).messages
        assert [m.message_id for m in shown] == [ready[0].message_id, ready[2].message_id]

        assert await asyncio.to_thread(purge, broker, QUEUE, "ready") == 2
        assert await asyncio.to_thread(counts, broker, settings) == (0, 1, 1)
        assert await asyncio.to_thread(purge, broker, QUEUE, "dead") == 1
        assert await asyncio.to_thread(counts, broker, settings) == (0, 1, 0)
        assert await asyncio.to_thread(purge, broker, QUEUE, "delayed") == 1
        assert await asyncio.to_thread(counts, broker, settings) == (0, 0, 0)
        assert await asyncio.to_thread(purge, broker, QUEUE, "delayed") == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_delayed_message_retried_now_runs_at_once_with_its_id(
    kind, settings_for, fresh_db, redis_url
) -> None:
    settings = settings_for_kind(kind, settings_for, fresh_db, redis_url)
    with poisoned(settings) as broker:
        delayed = await asyncio.to_thread(
            broker.get_actor(ACTOR).send_with_options, kwargs={"item": "later"}, delay=600_000
        )
        assert await asyncio.to_thread(retry_one, broker, QUEUE, "delayed", "no-such-id") == 0
        moved = await asyncio.to_thread(retry_one, broker, QUEUE, "delayed", delayed.message_id)
        assert moved == 1
        assert await asyncio.to_thread(counts, broker, settings) == (1, 0, 0)
        (now,) = (await asyncio.to_thread(browse, broker, QUEUE, "ready")).messages
        assert now.message_id == delayed.message_id and now.due_at is None
        with running_worker(broker):
            assert await eventually(lambda: POISON.effects == ["later"], timeout=20)


@pytest.mark.parametrize("kind", KINDS)
async def test_retry_all_moves_every_dead_message(kind, settings_for, fresh_db, redis_url) -> None:
    settings = settings_for_kind(kind, settings_for, fresh_db, redis_url)
    with poisoned(settings) as broker:
        with running_worker(broker):
            for index in range(3):
                await kill(broker, f"bad-{index}")
            assert await eventually(lambda: counts(broker, settings)[2] == 3, timeout=20)
        assert await asyncio.to_thread(retry_all, broker, QUEUE) == 3
        assert await asyncio.to_thread(counts, broker, settings) == (3, 0, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_secrets_in_arguments_are_redacted(kind, settings_for, fresh_db, redis_url) -> None:
    settings = settings_for_kind(kind, settings_for, fresh_db, redis_url)
    with poisoned(settings) as broker:
        await asyncio.to_thread(
            broker.get_actor(ACTOR).send,
            item="good",
            password="hunter2",
            api_token="tok-123",
            card={"number": "4242424242424242", "holder": "Ada"},
            nested={"Authorization": "Bearer abc", "note": "x" * 500},
        )
        (shown,) = (await asyncio.to_thread(browse, broker, QUEUE, "ready")).messages
    for secret in ("hunter2", "tok-123", "4242424242424242", "Bearer abc"):
        assert secret not in shown.summary
    assert f"password={REDACTED}" in shown.summary and f"card={REDACTED}" in shown.summary
    assert f"'Authorization': '{REDACTED}'" in shown.summary
    assert "item='good'" in shown.summary
    assert "x" * 100 not in shown.summary  # long values are cut


async def test_unknown_queues_are_refused(settings_for, fresh_db) -> None:
    settings = settings_for(fresh_db)
    with poisoned(settings) as broker:
        with pytest.raises(UnknownQueue):
            await asyncio.to_thread(browse, broker, "no_such_queue", "ready")
        with pytest.raises(UnknownQueue):
            await asyncio.to_thread(purge, broker, "no_such_queue", "dead")


async def test_rabbitmq_refuses_a_page_too_far(settings_for, fresh_db) -> None:
    with poisoned(settings_for(fresh_db)) as broker, pytest.raises(messages.PageTooFar):
        await asyncio.to_thread(browse, broker, QUEUE, "ready", messages.MAX_BROWSE, 20)
