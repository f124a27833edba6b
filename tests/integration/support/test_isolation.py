"""Two test runs on one machine never share a Redis database or a RabbitMQ vhost."""

from __future__ import annotations

import pika

from tests.conftest import BROKER_BASE_URL, REDIS_BASE_URL
from tests.support.isolation import claim_redis_database, create_vhost, new_run_id


def test_a_second_run_gets_another_redis_database(run_redis_url: str) -> None:
    other = claim_redis_database(REDIS_BASE_URL, new_run_id())
    try:
        assert other.url != run_redis_url
        assert other.url.rsplit("/", 1)[1] != "0"
    finally:
        other.release()
    again = claim_redis_database(REDIS_BASE_URL, new_run_id())  # released: free again
    again.release()
    assert again.url == other.url


def test_a_second_run_gets_its_own_vhost_and_it_is_gone_afterwards(broker_url: str) -> None:
    other = create_vhost(BROKER_BASE_URL, new_run_id())
    assert other.url != broker_url and other.name in other.url
    connection = pika.BlockingConnection(pika.URLParameters(other.url))
    channel = connection.channel()
    channel.queue_declare("isolation-probe")
    channel.basic_publish("", "isolation-probe", b"only in this vhost")
    connection.close()
    # The run's own vhost does not see the other run's queue.
    mine = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        probe = mine.channel()
        try:
            probe.queue_declare("isolation-probe", passive=True)
            seen = True
        except pika.exceptions.ChannelClosedByBroker:
            seen = False
        assert not seen
    finally:
        mine.close()
    other.delete()
    try:
        pika.BlockingConnection(pika.URLParameters(other.url)).close()
        reachable = True
    except pika.exceptions.AMQPConnectionError:
        reachable = False
    assert not reachable
