"""Queue types on the real RabbitMQ (the run's vhost, one node: a quorum queue of one member).

A quorum broker declares quorum queues that carry messages; a queue that exists with the other
type is refused with QueueTypeMismatch naming it, and the relay blames no outbox row for it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import dramatiq
import pika
import pytest

from actors.broker import build_broker
from actors.rabbitmq import QueueTypeMismatch, ShopRabbitmqBroker
from actors.relay import BrokerDown, Relay
from configs.settings import Settings
from domain.events import INDEX_PRODUCT
from storage import outbox
from storage.database import connect, create_pool
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def queue_name(broker_url: str) -> Iterator[str]:
    """A queue name of the test's own; the queue and its .DQ and .XQ are deleted after."""
    name = f"tests_type_{secrets.token_hex(4)}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        for each in (name, f"{name}.DQ", f"{name}.XQ"):
            channel.queue_delete(each)
    finally:
        connection.close()


def a_broker(settings: Settings, queue_type: str) -> ShopRabbitmqBroker:
    broker = build_broker(settings.model_copy(update={"rabbitmq_queue_type": queue_type}))
    assert isinstance(broker, ShopRabbitmqBroker)
    return broker


def test_a_quorum_broker_declares_quorum_queues_that_carry_messages(
    settings: Settings, queue_name: str
) -> None:
    quorum = a_broker(settings, "quorum")
    classic = a_broker(settings, "classic")
    try:
        quorum.declare_queue(queue_name, ensure=True)
        message = dramatiq.Message(queue_name, "tests.any", (), {}, {})
        quorum.enqueue(message)  # confirmed by RabbitMQ
        quorum.enqueue(message, delay=60_000)
        assert quorum.get_queue_message_counts(queue_name) == (1, 1, 0)
        # Proof of its type: the classic declaration of the same queue is refused.
        with pytest.raises(QueueTypeMismatch) as caught:
            classic.declare_queue(queue_name, ensure=True)
        assert caught.value.queue == queue_name
    finally:
        quorum.close()
        classic.close()


def test_a_classic_queue_is_not_declared_again_as_quorum_and_the_message_says_what_to_do(
    settings: Settings, queue_name: str
) -> None:
    classic = a_broker(settings, "classic")
    quorum = a_broker(settings, "quorum")
    try:
        classic.declare_queue(queue_name, ensure=True)
        with pytest.raises(QueueTypeMismatch) as caught:
            quorum.declare_queue(queue_name, ensure=True)
        message = str(caught.value)
        assert f"{queue_name!r}" in message and "RABBITMQ_QUEUE_TYPE=quorum" in message
        assert "PRECONDITION_FAILED" in message and "docs/deploy.md" in message
        # The broker goes on: the channel RabbitMQ closed is replaced.
        quorum.declare_queue(f"{queue_name}_other")  # only noted, not created
        assert quorum.channel.is_open
        assert classic.get_queue_message_counts(queue_name) == (0, 0, 0)  # unchanged
    finally:
        classic.close()
        quorum.close()


async def test_the_relay_blames_no_row_for_a_queue_of_the_other_type(
    settings: Settings, broker: dramatiq.Broker, fresh_db: str
) -> None:
    broker.declare_queue(INDEX_PRODUCT.queue, ensure=True)  # classic, as the run's vhost has it
    conn = await connect(fresh_db)
    try:
        event_id = await outbox.add(conn, INDEX_PRODUCT, product_id=1)
    finally:
        await conn.close()
    quorum = a_broker(settings, "quorum")
    pool = await create_pool(fresh_db, 2)
    try:
        with pytest.raises(BrokerDown) as caught:
            await Relay(pool, quorum).publish_batch()
        assert isinstance(caught.value.__cause__, QueueTypeMismatch)
        row = await pool.fetchrow(
            "SELECT published_at, last_error, parked_at FROM outbox WHERE event_id = $1",
            event_id,
        )
        assert dict(row) == {"published_at": None, "last_error": None, "parked_at": None}
    finally:
        await pool.close()
        quorum.close()


async def test_a_count_or_purge_after_the_connection_died_opens_another(
    broker_url: str, queue_name: str
) -> None:
    """A thread's publishing connection that RabbitMQ closed (idle past its heartbeats; here the
    proxy cuts it) is replaced by the next count or purge, as enqueue does for itself."""
    proxy = TcpProxy.of(broker_url, 5672)
    await proxy.start()
    broker = ShopRabbitmqBroker(urls=[proxy.url_through(broker_url)])
    try:
        await asyncio.to_thread(broker.declare_queue, queue_name, ensure=True)
        await asyncio.to_thread(broker.flush, queue_name)
        assert proxy.cut() >= 1
        await asyncio.to_thread(broker.flush, queue_name)
        assert proxy.cut() >= 1
        counts = await asyncio.to_thread(broker.get_queue_message_counts, queue_name)
        assert counts == (0, 0, 0)
    finally:
        await asyncio.to_thread(broker.close)
        await proxy.stop()
