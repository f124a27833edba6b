"""Dead letters through the real brokers and a real worker: counted, peeked without being
consumed, and requeued (from the ops page) once the bug is fixed, to run exactly once more.

Other test runs share this RabbitMQ and Redis: these tests declare and flush only their own
queues (not the shared `broker` fixture, which flushes every shop queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import xq_name
from dramatiq.message import Message

from actors import dead_letters
from actors.broker import build_broker
from actors.dead_letters import BrokerUnavailable
from actors.registry import SPECS, handles
from actors.resources import Resources
from domain.events import Event
from tests.support.browser import csrf_of, signed_in
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually
from web.app import create_app

QUEUE = "tests_poison"
ACTOR = "tests_poison.poison"
REDIS_QUEUE = "tests_poison_redis"
REDIS_ACTOR = "tests_poison_redis.poison"
UNREACHABLE_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/%2F"
MAX_RETRIES = 2


@dataclass
class Poison:
    """What the poison actor saw and did; `fixed` is the bug fix the test ships."""

    fixed: bool = False
    attempts: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)


STATE = Poison()


async def poison(res: Resources, item: str) -> None:
    """Fails on every item until the bug is fixed; then records its effect."""
    STATE.attempts.append(item)
    if not STATE.fixed:
        raise ValueError(f"poison: cannot handle {item}")
    STATE.effects.append(item)


class PoisonPayload(TypedDict):
    item: str


@contextmanager
def declared(name: str, queue: str, settings) -> Iterator[dramatiq.Broker]:  # type: ignore[no-untyped-def]
    """A broker with the poison actor on `queue` (declared only here), that queue emptied."""
    STATE.fixed = False
    STATE.attempts.clear()
    STATE.effects.clear()
    event = Event(name, queue, PoisonPayload, __name__)
    handles(event, max_retries=MAX_RETRIES, min_backoff=10, max_backoff=50)(poison)
    broker = build_broker(settings)
    try:
        if isinstance(broker, RabbitmqBroker):
            broker.declare_queue(queue, ensure=True)
        broker.flush(queue)  # its delay and dead-letter queues too; never the shop's queues
        yield broker
        broker.flush(queue)
    finally:
        broker.close()
        SPECS.pop(name, None)


@pytest.fixture
def poison_broker(settings) -> Iterator[dramatiq.Broker]:  # type: ignore[no-untyped-def]
    with declared(ACTOR, QUEUE, settings) as broker:
        yield broker


@pytest.fixture
def redis_poison_broker(fresh_db, settings_for, redis_url) -> Iterator[dramatiq.Broker]:  # type: ignore[no-untyped-def]
    settings = settings_for(fresh_db, broker_url=redis_url)
    with declared(REDIS_ACTOR, REDIS_QUEUE, settings) as broker:
        yield broker


@pytest.fixture
async def client_without_broker(aiohttp_client, fresh_db, settings_for) -> AsyncIterator[Any]:  # type: ignore[no-untyped-def]
    """The app with a BROKER_URL where nothing listens; closed before the database is dropped."""
    test_client = await aiohttp_client(
        create_app(settings_for(fresh_db, broker_url=UNREACHABLE_BROKER_URL))
    )
    yield test_client
    await test_client.close()


@contextmanager
def running_worker(broker: dramatiq.Broker, queue: str) -> Iterator[None]:
    """A real worker consuming only `queue` (and its delay queue)."""
    worker = dramatiq.Worker(broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        yield
    finally:
        worker.stop()


def dead(broker: dramatiq.Broker, queue: str) -> int:
    return dead_letters.counts(broker)[queue]


def bury(broker: dramatiq.Broker, item: str) -> Message[Any]:
    """Put a message straight into QUEUE's dead letters, as after its last failed retry."""
    message = broker.get_actor(ACTOR).message_with_options(
        kwargs={"item": item},
        retries=MAX_RETRIES,
        traceback="Traceback (most recent call last):\nValueError: poison: cannot handle it\n",
        eta=1,
    )
    broker.channel.basic_publish(exchange="", routing_key=xq_name(QUEUE), body=message.encode())
    return message


async def test_poison_message_is_dead_lettered_peeked_and_requeued_from_the_ops_page(
    poison_broker, client, fresh_db
) -> None:
    broker = poison_broker
    with running_worker(broker, QUEUE):
        sent = await asyncio.to_thread(broker.get_actor(ACTOR).send, item="parcel-1")
        assert await eventually(lambda: dead(broker, QUEUE) == 1, timeout=20)
        assert STATE.attempts == ["parcel-1"] * (1 + MAX_RETRIES)

        (letter,) = await asyncio.to_thread(dead_letters.peek, broker, QUEUE)
        assert letter.message_id == sent.message_id and letter.actor_name == ACTOR
        assert letter.summary == "item='parcel-1'"
        assert letter.retries == MAX_RETRIES
        assert letter.error == "ValueError: poison: cannot handle parcel-1"
        assert letter.enqueued_at is not None and letter.dead_at is not None
        assert dead(broker, QUEUE) == 1  # peeking consumed nothing
        assert len(await asyncio.to_thread(dead_letters.peek, broker, QUEUE)) == 1

        STATE.fixed = True  # the bug is fixed and deployed
        await signed_in(client, role="ops", fresh_db=fresh_db)
        page = await client.get("/ops/dead-letters")
        assert page.status == 200 and sent.message_id in await page.text()
        resp = await client.post(
            f"/ops/dead-letters/{QUEUE}/requeue",
            data={
                "csrf_token": await csrf_of(client, "/ops/dead-letters"),
                "message_id": sent.message_id,
            },
            allow_redirects=False,
        )
        assert resp.status == 303
        assert resp.headers["Location"] == f"/ops/dead-letters?queue={QUEUE}&requeued=1"
        assert await eventually(lambda: STATE.effects == ["parcel-1"])
        await asyncio.sleep(0.5)  # room for a second run, if there were to be one
    assert STATE.attempts == ["parcel-1"] * (2 + MAX_RETRIES)
    assert STATE.effects == ["parcel-1"]
    assert broker.get_queue_message_counts(QUEUE) == (0, 0, 0)
    notice = await (await client.get(resp.headers["Location"])).text()
    assert f"Requeued 1 message on {QUEUE}." in notice


async def test_requeue_all_resets_retries_and_leaves_undecodable_letters(poison_broker) -> None:
    broker = poison_broker
    first, second = bury(broker, "a"), bury(broker, "b")
    broker.channel.basic_publish(exchange="", routing_key=xq_name(QUEUE), body=b"not a message")
    assert (await asyncio.to_thread(dead_letters.counts, broker))[QUEUE] == 3
    letters = await asyncio.to_thread(dead_letters.peek, broker, QUEUE)
    assert [letter.actor_name for letter in letters] == [ACTOR, ACTOR, "(undecodable)"]

    assert await asyncio.to_thread(dead_letters.requeue, broker, QUEUE) == 2

    assert broker.get_queue_message_counts(QUEUE) == (2, 0, 1)
    requeued = [Message.decode(broker.channel.basic_get(QUEUE, auto_ack=True)[2]) for _ in "ab"]
    assert [m.message_id for m in requeued] == [first.message_id, second.message_id]
    for message in requeued:
        assert message.queue_name == QUEUE and message.actor_name == ACTOR
        assert not {"retries", "traceback", "eta"} & set(message.options)


async def test_requeue_of_one_id_leaves_the_others(poison_broker) -> None:
    broker = poison_broker
    first, second = bury(broker, "a"), bury(broker, "b")
    assert await asyncio.to_thread(dead_letters.requeue, broker, QUEUE, "no-such-id") == 0
    assert await asyncio.to_thread(dead_letters.requeue, broker, QUEUE, second.message_id) == 1
    assert broker.get_queue_message_counts(QUEUE) == (1, 0, 1)
    (left,) = await asyncio.to_thread(dead_letters.peek, broker, QUEUE)
    assert left.message_id == first.message_id


async def test_failed_enqueue_leaves_the_dead_letter_in_place(
    poison_broker, settings_for, fresh_db, broker_url
) -> None:
    broker = poison_broker
    buried = bury(broker, "a")
    # A broker that reaches RabbitMQ through a proxy admitting one more connection: requeue's
    # own (it reads the dead letter), not the one its enqueue opens next.
    proxy = TcpProxy.of(broker_url, 5672)
    await proxy.start()
    through = settings_for(fresh_db, broker_url=proxy.url_through(broker_url))
    cut_off = await asyncio.to_thread(build_broker, through)
    try:
        proxy.admit_only(1)
        with pytest.raises(BrokerUnavailable):
            await asyncio.to_thread(dead_letters.requeue, cut_off, QUEUE)
    finally:
        await asyncio.to_thread(cut_off.close)
        await proxy.stop()
    assert proxy.refused >= 1  # the enqueue really found the broker gone
    assert await eventually(lambda: broker.get_queue_message_counts(QUEUE) == (0, 0, 1), 5)
    (letter,) = await asyncio.to_thread(dead_letters.peek, broker, QUEUE)
    assert letter.message_id == buried.message_id and letter.retries == MAX_RETRIES


async def test_ops_page_answers_503_when_the_broker_is_unreachable(
    client_without_broker, fresh_db
) -> None:
    client = client_without_broker
    await signed_in(client, role="ops", fresh_db=fresh_db)
    page = await client.get("/ops/dead-letters")
    assert page.status == 503
    assert "broker is unreachable" in await page.text()
    resp = await client.post(
        "/ops/dead-letters/search/requeue",
        data={"csrf_token": await csrf_of(client, "/ops/")},
        allow_redirects=False,
    )
    assert resp.status == 503


async def test_requeue_on_an_unknown_queue_is_404(client_without_broker, fresh_db) -> None:
    client = client_without_broker
    await signed_in(client, role="ops", fresh_db=fresh_db)
    resp = await client.post(
        "/ops/dead-letters/no_such_queue/requeue",
        data={"csrf_token": await csrf_of(client, "/ops/")},
        allow_redirects=False,
    )
    assert resp.status == 404


async def test_redis_broker_dead_letters_are_counted_peeked_and_requeued(
    redis_poison_broker,
) -> None:
    broker = redis_poison_broker
    send = broker.get_actor(REDIS_ACTOR).send
    with running_worker(broker, REDIS_QUEUE):
        first = await asyncio.to_thread(send, item="r-1")
        second = await asyncio.to_thread(send, item="r-2")
        assert await eventually(lambda: dead(broker, REDIS_QUEUE) == 2, timeout=20)
        assert sorted(STATE.attempts) == sorted(["r-1", "r-2"] * (1 + MAX_RETRIES))
        letters = await asyncio.to_thread(dead_letters.peek, broker, REDIS_QUEUE)
        assert {letter.message_id for letter in letters} == {first.message_id, second.message_id}
        for letter in letters:
            assert letter.retries == MAX_RETRIES and letter.dead_at is not None
            assert letter.error is not None and letter.error.startswith("ValueError: poison")
        assert dead(broker, REDIS_QUEUE) == 2  # peeking consumed nothing

        STATE.fixed = True
        requeue = dead_letters.requeue
        assert await asyncio.to_thread(requeue, broker, REDIS_QUEUE, "no-such-id") == 0
        assert await asyncio.to_thread(requeue, broker, REDIS_QUEUE, first.message_id) == 1
        assert await eventually(lambda: STATE.effects == ["r-1"])
        assert dead(broker, REDIS_QUEUE) == 1
        assert await asyncio.to_thread(requeue, broker, REDIS_QUEUE) == 1
        assert await eventually(lambda: sorted(STATE.effects) == ["r-1", "r-2"])
        await asyncio.sleep(0.5)  # room for a second run, if there were to be one
    assert sorted(STATE.attempts) == sorted(["r-1", "r-2"] * (2 + MAX_RETRIES))
    assert sorted(STATE.effects) == ["r-1", "r-2"]
    assert dead(broker, REDIS_QUEUE) == 0
    assert broker.client.hlen(f"{broker.namespace}:{REDIS_QUEUE}.XQ.msgs") == 0  # no orphan


async def test_concurrent_redis_requeues_move_each_letter_once(redis_poison_broker) -> None:
    # Two operators (or one double click) requeueing the same queue at the same time.
    broker = redis_poison_broker
    dead_key = f"{broker.namespace}:{REDIS_QUEUE}.XQ"
    for index in range(20):  # dead letters as dispatch.lua's `nack` leaves them
        message = broker.get_actor(REDIS_ACTOR).message(item=f"r-{index}")
        broker.client.zadd(dead_key, {f"member-{index}": 1_000 + index})
        broker.client.hset(f"{dead_key}.msgs", f"member-{index}", message.encode())
    assert dead(broker, REDIS_QUEUE) == 20
    moved = await asyncio.gather(
        asyncio.to_thread(dead_letters.requeue, broker, REDIS_QUEUE),
        asyncio.to_thread(dead_letters.requeue, broker, REDIS_QUEUE),
    )
    assert sum(moved) == 20
    assert broker.client.llen(f"{broker.namespace}:{REDIS_QUEUE}") == 20
    assert dead(broker, REDIS_QUEUE) == 0


@pytest.mark.parametrize("broker_kind", ["rabbitmq", "redis"])
async def test_every_dead_letter_shows_the_error_and_traceback_of_its_final_attempt(
    broker_kind: str, aiohttp_client, settings_for, fresh_db, redis_url
) -> None:
    settings, name, queue = settings_for(fresh_db), ACTOR, QUEUE
    if broker_kind == "redis":
        settings = settings_for(fresh_db, broker_url=redis_url)
        name, queue = REDIS_ACTOR, REDIS_QUEUE
    with declared(name, queue, settings) as broker:
        actor = broker.get_actor(name)
        with running_worker(broker, queue):
            # One dies on its only run (max_retries=0: Dramatiq stores no traceback for it), one
            # after its retries (Dramatiq stores the one before last).
            at_once = await asyncio.to_thread(
                actor.send_with_options, kwargs={"item": "no-retry"}, max_retries=0
            )
            retried = await asyncio.to_thread(actor.send, item="retried")
            assert await eventually(lambda: dead(broker, queue) == 2, timeout=20)
        letters = {
            letter.message_id: letter
            for letter in await asyncio.to_thread(dead_letters.peek, broker, queue)
        }
        client = await aiohttp_client(create_app(settings))
        try:
            await signed_in(client, role="ops", fresh_db=fresh_db)
            page = await (await client.get("/ops/dead-letters")).text()
        finally:
            await client.close()
    assert STATE.attempts.count("no-retry") == 1
    assert STATE.attempts.count("retried") == 1 + MAX_RETRIES
    for message, item, retries in ((at_once, "no-retry", 0), (retried, "retried", MAX_RETRIES)):
        letter = letters[message.message_id]
        assert letter.retries == retries
        assert letter.error == f"ValueError: poison: cannot handle {item}"
        assert letter.traceback is not None
        assert letter.traceback.startswith("Traceback (most recent call last):")
        assert 'raise ValueError(f"poison: cannot handle {item}")' in letter.traceback
        assert letter.traceback.rstrip().endswith(letter.error)
        assert letter.dead_at is not None
        # On the page: the error, and the traceback (escaped) under it.
        assert f"ValueError: poison: cannot handle {item}" in page
    assert page.count("<summary>Traceback</summary>") == 2
    assert "raise ValueError(f&#34;poison: cannot handle {item}&#34;)" in page
