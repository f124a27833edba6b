"""The RabbitMQ broker's connection parameters and queue arguments (no server needed: nothing
here connects)."""

from __future__ import annotations

import pika

from actors.broker import build_broker
from actors.rabbitmq import HEARTBEAT_SECONDS, ShopRabbitmqBroker, connection_parameters
from configs.settings import Settings
from tests.support.settings import OFFLINE

NODES = ["amqp://u:p@mq1:5672/%2Fshop", "amqp://u:p@mq2:5673/%2Fshop?heartbeat=30"]


def test_every_node_is_tried_with_bounded_waits_and_the_connection_named() -> None:
    first, second = connection_parameters(NODES, "aioshop pid 7")  # type: ignore[misc]
    assert (first.host, first.port, second.host, second.port) == ("mq1", 5672, "mq2", 5673)
    assert first.virtual_host == second.virtual_host == "/shop"
    assert first.heartbeat == HEARTBEAT_SECONDS
    assert second.heartbeat == 30  # the URL's own choice wins
    for each in (first, second):
        assert each.blocked_connection_timeout is not None and each.socket_timeout is not None
        assert each.stack_timeout is not None and each.connection_attempts == 1
        assert each.client_properties == {"connection_name": "aioshop pid 7"}


def test_one_node_gives_one_parameters_object() -> None:
    assert isinstance(connection_parameters(NODES[:1], "x"), pika.URLParameters)


def test_quorum_queues_carry_their_type_and_delivery_limit() -> None:
    broker = ShopRabbitmqBroker(urls=NODES, queue_type="quorum", delivery_limit=7)
    try:
        arguments = broker._build_queue_arguments("orders")
    finally:
        broker.close()
    assert arguments == {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "orders.XQ",
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
    }


def test_classic_queues_keep_dramatiqs_arguments() -> None:
    broker = ShopRabbitmqBroker(urls=NODES)
    try:
        arguments = broker._build_queue_arguments("orders")
    finally:
        broker.close()
    assert "x-queue-type" not in arguments and "x-delivery-limit" not in arguments


def test_the_settings_choose_the_queue_type() -> None:
    settings = Settings.from_env(
        **{**OFFLINE, "rabbitmq_queue_type": "quorum", "rabbitmq_delivery_limit": 12}
    )
    broker = build_broker(settings)
    try:
        assert isinstance(broker, ShopRabbitmqBroker)
        assert (broker.queue_type, broker.delivery_limit) == ("quorum", 12)
    finally:
        broker.close()
