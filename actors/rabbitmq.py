"""The RabbitMQ broker: Dramatiq's, on one node or a cluster, with classic or quorum queues.

Connections. BROKER_URL may list a cluster's nodes (comma-separated amqp:// URLs). pika tries
them in that order, once each, for every new connection: the publishing connection of each
thread, and each consumer's (Dramatiq's worker starts a consumer again 3 s after it lost its
connection). Every call is bounded: a node that does not answer costs at most
CONNECT_TIMEOUT_SECONDS, a silent connection is declared dead after two missed heartbeats, and a
connection RabbitMQ blocks (memory or disk alarm) is closed after BLOCKED_TIMEOUT_SECONDS, so the
caller reconnects instead of hanging. A URL's own query (`?heartbeat=30`) wins over these.

Queues. With RABBITMQ_QUEUE_TYPE=quorum every queue Dramatiq declares (the queue, its delay
queue `<q>.DQ` and its dead letters `<q>.XQ`) is a quorum queue: replicated on a majority of the
cluster's nodes, it keeps its messages and goes on when a node is lost. Its delivery limit
(RABBITMQ_DELIVERY_LIMIT) counts deliveries of one message; Dramatiq's retries publish a new
message each time (the shop's max_retries apply to those), so the limit only ends a message
that keeps being delivered and never settled, such as one that crashes its worker; it then goes
to the queue's dead letters. A queue that already exists with another type cannot be declared
again (RabbitMQ answers PRECONDITION_FAILED): QueueTypeMismatch names it and says what to do.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import Middleware

HEARTBEAT_SECONDS = 10
BLOCKED_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 5.0
# What the URL may set itself, by its query parameter names (pika.URLParameters).
TUNED = {
    "heartbeat": HEARTBEAT_SECONDS,
    "blocked_connection_timeout": BLOCKED_TIMEOUT_SECONDS,
    "socket_timeout": CONNECT_TIMEOUT_SECONDS,
    "stack_timeout": CONNECT_TIMEOUT_SECONDS * 2,
    "connection_attempts": 1,
}
PRECONDITION_FAILED = 406

QueueType = Literal["classic", "quorum"]


class QueueTypeMismatch(Exception):
    """A queue exists in RabbitMQ with another type or other arguments than the shop declares."""

    def __init__(self, queue: str, wanted: QueueType, reply: str) -> None:
        super().__init__(
            f"RabbitMQ queue {queue!r} exists with other arguments than RABBITMQ_QUEUE_TYPE="
            f"{wanted} declares ({reply}). Either set RABBITMQ_QUEUE_TYPE back, or drain the "
            f"queue and delete it (with its .DQ and .XQ queues) so that it is declared again: "
            f"see docs/deploy.md, 'RabbitMQ cluster'."
        )
        self.queue, self.wanted = queue, wanted


def connection_parameters(
    urls: list[str], name: str
) -> pika.URLParameters | list[pika.URLParameters]:
    """pika parameters for the node in `urls`, or a list for several nodes (pika tries them in
    turn); every wait bounded, the connection named `name` (RabbitMQ lists it so: which process
    holds which connection)."""
    parameters = []
    for url in urls:
        given = parse_qs(urlsplit(url).query)
        each = pika.URLParameters(url)
        for option, value in TUNED.items():
            if option not in given:
                setattr(each, option, value)
        each.client_properties = {**(each.client_properties or {}), "connection_name": name}
        parameters.append(each)
    return parameters[0] if len(parameters) == 1 else parameters


class ShopRabbitmqBroker(RabbitmqBroker):
    """Dramatiq's RabbitmqBroker on one node or several, declaring classic or quorum queues."""

    def __init__(
        self,
        *,
        urls: list[str],
        queue_type: QueueType = "classic",
        delivery_limit: int = 20,
        middleware: list[Middleware] | None = None,
    ) -> None:
        super().__init__(url=urls, confirm_delivery=True, middleware=middleware)
        self.parameters = connection_parameters(urls, f"aioshop pid {os.getpid()}")
        self.queue_type: QueueType = queue_type
        self.delivery_limit = delivery_limit

    def _type_arguments(self) -> dict[str, Any]:
        if self.queue_type == "classic":
            return {}
        return {"x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit}

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = super()._build_queue_arguments(queue_name)  # type: ignore[no-untyped-call]
        return {**arguments, **self._type_arguments()}

    def _declare_queue(self, queue_name: str) -> Any:
        return self._declared(queue_name, super()._declare_queue, queue_name)

    def _declare_dq_queue(self, queue_name: str) -> Any:
        return self._declared(dq_name(queue_name), super()._declare_dq_queue, queue_name)

    def _declare_xq_queue(self, queue_name: str) -> Any:
        # Dramatiq's own arguments (the dead letters' TTL) and the queue type: the same call
        # with the type added, since the parent's takes no arguments of ours.
        arguments = {"x-message-ttl": DEAD_MESSAGE_TTL, **self._type_arguments()}
        name = xq_name(queue_name)
        return self._declared(
            name, self.channel.queue_declare, name, durable=True, arguments=arguments
        )

    def _declared(self, name: str, declare: Any, *args: Any, **kwargs: Any) -> Any:
        """`declare(...)`; a PRECONDITION_FAILED becomes QueueTypeMismatch (not retried: the
        same declaration fails the same way on every node)."""
        try:
            return declare(*args, **kwargs)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != PRECONDITION_FAILED:
                raise
            del self.channel  # closed by RabbitMQ; the next call opens another
            raise QueueTypeMismatch(name, self.queue_type, exc.reply_text) from None

    def get_queue_message_counts(self, queue_name: str) -> tuple[int, int, int]:
        counts: tuple[int, int, int] = self._once_more(super().get_queue_message_counts, queue_name)
        return counts

    def flush(self, queue_name: str) -> None:
        self._once_more(super().flush, queue_name)

    def _once_more(self, call: Any, *args: Any) -> Any:
        """`call(*args)`, again on a new connection if this thread's had died: an idle
        publishing connection misses its heartbeats (pika beats only while it is used), and
        RabbitMQ closes it. Dramatiq's enqueue and declare_queue retry that way themselves;
        its message counts and purges do not."""
        try:
            return call(*args)
        except pika.exceptions.AMQPConnectionError:
            del self.connection  # the dead one; the next use opens a new one
            return call(*args)
