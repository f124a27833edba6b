"""Time-critical effects on queues of their own, on the real RabbitMQ: the relay routes an order's
confirmation email to the urgent email queue and its "placed" email to the bulk one; a worker
takes an urgent message ahead of a bulk queue's backlog; and the new queues are declared under
both queue types (a vhost of the test's own for quorum, as a run's vhost holds classic ones)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import dramatiq
import pika
import pytest

from actors.broker import build_broker
from actors.rabbitmq import QueueTypeMismatch, ShopRabbitmqBroker
from actors.relay import Relay
from configs.settings import Settings
from domain.events import (
    CAPTURE_PAYMENT,
    PAYMENTS_QUEUE,
    QUEUES,
    SEND_ORDER_EMAIL,
    URGENT_EMAIL_QUEUE,
    URGENT_QUEUES,
)
from storage import outbox
from storage.database import connect, create_pool
from tests.conftest import BROKER_BASE_URL
from tests.support.isolation import create_vhost

BULK = 200


async def test_the_relay_routes_confirmations_to_the_urgent_queues(
    settings: Settings, fresh_db: str, broker: dramatiq.Broker
) -> None:
    conn = await connect(fresh_db)
    try:
        async with conn.transaction():
            for order_id in range(1, 6):
                await outbox.add(conn, SEND_ORDER_EMAIL, order_id=order_id, kind="placed")
            await outbox.add(conn, SEND_ORDER_EMAIL, order_id=1, kind="confirmed")
            await outbox.add(conn, SEND_ORDER_EMAIL, order_id=2, kind="payment_declined")
            await outbox.add(conn, CAPTURE_PAYMENT, order_id=3)
    finally:
        await conn.close()
    pool = await create_pool(fresh_db, 2)
    try:
        assert await Relay(pool, broker).drain() == 8
    finally:
        await pool.close()
    ready = {queue: broker.get_queue_message_counts(queue)[0] for queue in QUEUES}
    assert ready["email"] == 5
    assert ready[URGENT_EMAIL_QUEUE] == 2
    assert ready[PAYMENTS_QUEUE] == 1
    assert ready["orders"] == 0


def test_an_urgent_message_is_taken_ahead_of_a_bulk_backlog(broker: dramatiq.Broker) -> None:
    """BULK messages wait on the bulk email queue when one urgent message arrives: a worker
    takes it after at most the few bulk ones it had already fetched, not after the backlog."""
    taken: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def take(label: str) -> None:
        with lock:
            taken.append(label)
            if label == "urgent":
                done.set()

    bulk = dramatiq.actor(take, broker=broker, actor_name="tests.bulk", queue_name="email")
    urgent = dramatiq.actor(
        take, broker=broker, actor_name="tests.urgent", queue_name=URGENT_EMAIL_QUEUE
    )
    for n in range(BULK):
        bulk.send(f"bulk-{n}")
    urgent.send("urgent")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert done.wait(30), "the urgent message was never taken"
    finally:
        worker.stop()
    position = taken.index("urgent")
    # One thread fetches 2 messages ahead per queue: a handful of bulk ones may go first.
    assert position < 10, f"the urgent message came after {position} bulk ones"
    assert len(taken) < BULK  # the backlog was still there when it was taken


@pytest.fixture
def quorum_vhost() -> Iterator[str]:
    """A vhost of the test's own (its queues have no past), deleted after."""
    vhost = create_vhost(BROKER_BASE_URL, f"queues-{secrets.token_hex(4)}")
    try:
        yield vhost.url
    finally:
        vhost.delete()


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_every_queue_is_declared_with_the_configured_type(
    settings: Settings, quorum_vhost: str, queue_type: str
) -> None:
    shop = build_broker(
        settings.model_copy(update={"broker_url": quorum_vhost, "rabbitmq_queue_type": queue_type})
    )
    other = build_broker(
        settings.model_copy(
            update={
                "broker_url": quorum_vhost,
                "rabbitmq_queue_type": "classic" if queue_type == "quorum" else "quorum",
            }
        )
    )
    assert isinstance(shop, ShopRabbitmqBroker) and isinstance(other, ShopRabbitmqBroker)
    try:
        assert set(URGENT_QUEUES) <= shop.get_declared_queues()
        for queue in QUEUES:
            shop.declare_queue(queue, ensure=True)
        for queue in URGENT_QUEUES:
            message = dramatiq.Message(queue, SEND_ORDER_EMAIL.name, (), {}, {})
            shop.enqueue(message)  # confirmed by RabbitMQ
            assert shop.get_queue_message_counts(queue)[0] == 1
            # Proof of its type: the other type's declaration of the same queue is refused.
            with pytest.raises(QueueTypeMismatch):
                other.declare_queue(queue, ensure=True)
        assert _exists(quorum_vhost, f"{URGENT_EMAIL_QUEUE}.DQ")
        assert _exists(quorum_vhost, f"{PAYMENTS_QUEUE}.XQ")
    finally:
        shop.close()
        other.close()


def _exists(url: str, queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        connection.close()
