"""Dead letters: count, look at and requeue the messages Dramatiq gave up on.

Blocking code (pika, redis-py): run it in a thread. Every function takes a broker built by
`actors.broker.build_broker` and works on the queues of its declared actors.

A message lands in `<queue>.XQ` when it has exhausted its retries or raised one of its actor's
`throws`. The worker writes it there itself (`bury`, called by `actors.broker.FinalErrors`) with
the final attempt's error in its `failure` option (type, message, traceback, when it died), then
acknowledges the original: Dramatiq's own dead-lettering keeps the message as it was last
enqueued, without that error. `retries` counts the retries before the final attempt. A message
dead-lettered by Dramatiq itself (an unknown actor, or when `bury` could not write) shows the
previous attempt's `traceback` if it has one.

Requeueing enqueues a copy under the same message id (consumers deduplicate on it), without
`retries`, `traceback` and the old delay's `eta`, so it gets all its retries again; only then is
the dead one removed. A crash between the two leaves both, and the inbox makes a second run of
the same event a no-op: nothing is ever removed before its copy is in the queue.

Beyond Dramatiq's public API (checked against dramatiq 2.2) this relies on:
- RabbitMQ: `broker.parameters` (its pika connection parameters) to open a connection of our own
  for basic.get/ack/nack, and `broker.channel` (the thread's channel, in confirm mode) to bury.
  A peek holds the messages it reads unacknowledged for a moment, during which they are missing
  from counts and from a concurrent requeue.
- Redis: `broker.client` and `broker.namespace`; dead letters are the sorted set
  `<namespace>:<queue>.XQ` (members: the per-enqueue `redis_message_id`; scores: when they died,
  in ms) and the hash `<namespace>:<queue>.XQ.msgs` (member -> encoded message), as written by
  the `nack` command of dramatiq/brokers/redis/dispatch.lua and, the same way, by `bury`. A
  requeue claims each entry with a short-lived `<...>.XQ.claimed:<member>` key, so two requeues
  (a double click) never copy it twice.

Exceptions:
    DeadLetterError
    ├── UnknownQueue         the queue is not one of the broker's
    └── BrokerUnavailable    the broker could not be reached, or failed part-way
"""

from __future__ import annotations

import copy
import dataclasses
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
import pika
import pika.exceptions
import redis
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name, xq_name
from dramatiq.errors import BrokerConnectionError, DecodeError
from dramatiq.message import Message

from actors.ops import redact

log = structlog.get_logger(__name__)

SUMMARY_CHARS = 200
# Our own connections give up rather than hang: an operator's page must answer.
CONNECT_TIMEOUT_SECONDS = 3.0
OPERATION_TIMEOUT_SECONDS = 5.0
FAILURE = "failure"  # the option holding the final attempt's error
MESSAGE_CHARS = 2_000  # of the error's message, as stored
TRACEBACK_CHARS = 16_000  # of its traceback (the end is kept: the innermost frames)
TRACEBACK_FRAMES = 30
# Options that belong to the failed run, not to the message: dropped when it is requeued.
RUN_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", "eta", "redis_message_id", FAILURE}
)
CLAIM_MS = 60_000
NOT_FOUND = 404
REDIS_BATCH = 100


class DeadLetterError(Exception):
    """Base of the errors of this module."""


class UnknownQueue(DeadLetterError):
    """The queue is not declared on the broker."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"no actor uses the queue {queue!r}")
        self.queue = queue


class BrokerUnavailable(DeadLetterError):
    """The broker did not answer (or stopped answering); nothing was lost."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead message as operators see it."""

    message_id: str  # "" when the body could not be decoded
    actor_name: str
    summary: str  # arguments, cut to SUMMARY_CHARS
    retries: int  # retries before the final attempt
    error: str | None  # "Type: message" of the final attempt (else the stored traceback's end)
    enqueued_at: datetime | None
    dead_at: datetime | None
    traceback: str | None = None  # of the final attempt (else the last retried one's)
    due_at: datetime | None = None  # a delayed message's eta


def counts(broker: dramatiq.Broker) -> dict[str, int]:
    """Dead letters per declared queue. Raises BrokerUnavailable."""
    queues = sorted(broker.get_declared_queues())
    if isinstance(broker, RedisBroker):
        with redis_errors():
            pipe = broker.client.pipeline(transaction=False)
            for queue in queues:
                pipe.zcard(_redis_keys(broker, queue)[0])
            return dict(zip(queues, (int(n) for n in pipe.execute()), strict=True))
    with rabbitmq_connection(broker) as connection:
        return {queue: rabbitmq_count(connection, xq_name(queue)) for queue in queues}


def peek(broker: dramatiq.Broker, queue: str, limit: int = 20) -> list[DeadLetter]:
    """The oldest `limit` dead letters of `queue`, left in place.

    Raises UnknownQueue, BrokerUnavailable.
    """
    check_queue(broker, queue)
    if isinstance(broker, RedisBroker):
        return _redis_peek(broker, queue, limit)
    return _rabbitmq_peek(rabbitmq_broker(broker), queue, limit)


def requeue(broker: dramatiq.Broker, queue: str, message_id: str | None = None) -> int:
    """Move `queue`'s dead letters (all, or those with `message_id`) back with retries reset.

    Returns how many moved; undecodable ones stay. Raises UnknownQueue, BrokerUnavailable (the
    letter being moved then stays dead).
    """
    check_queue(broker, queue)
    if isinstance(broker, RedisBroker):
        return _redis_requeue(broker, queue, message_id)
    return _rabbitmq_requeue(rabbitmq_broker(broker), queue, message_id)


def bury(
    broker: dramatiq.Broker, message: MessageProxy, exception: BaseException, *, retries: int
) -> None:
    """Write `message` to its queue's dead letters with `exception` as its final error (the
    caller then acknowledges the original). Raises BrokerUnavailable: nothing was written."""
    options = {"retries": retries, FAILURE: failure_of(exception)}
    body = message.copy(options=options).encode()
    queue = q_name(message.queue_name)
    if isinstance(broker, RedisBroker):
        _redis_bury(broker, queue, message.options["redis_message_id"], body)
    else:
        _rabbitmq_bury(rabbitmq_broker(broker), queue, body)


def failure_of(exception: BaseException) -> dict[str, Any]:
    """What a dead letter keeps of the error that killed it (JSON: it travels in the message)."""
    kind = type(exception)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    trace = "".join(traceback.format_exception(exception, limit=TRACEBACK_FRAMES))
    return {
        "type": name,
        "message": clip(str(exception), MESSAGE_CHARS),
        "traceback": trace[-TRACEBACK_CHARS:],
        "dead_at": int(time.time() * 1000),
    }


def check_queue(broker: dramatiq.Broker, queue: str) -> None:
    if queue not in broker.get_declared_queues():
        raise UnknownQueue(queue)


def decode(body: bytes) -> Message[Any] | None:
    try:
        return Message.decode(body)
    except DecodeError:
        return None


def letter_of(body: bytes, dead_at: datetime | None) -> DeadLetter:
    message = decode(body)
    if message is None:
        return DeadLetter("", "(undecodable)", _cut(repr(body)), 0, None, None, dead_at)
    error: str | None
    failure = message.options.get(FAILURE)
    if isinstance(failure, dict):
        error = f"{failure.get('type')}: {failure.get('message')}".removesuffix(": ")
        trace = failure.get("traceback")
        if dead_at is None and isinstance(failure.get("dead_at"), int):
            dead_at = datetime.fromtimestamp(failure["dead_at"] / 1000, UTC)
    else:  # dead-lettered by Dramatiq itself: at best the last retried attempt's traceback
        trace = message.options.get("traceback")
        lines = trace.strip().splitlines() if isinstance(trace, str) else []
        error = lines[-1].strip() if lines else None
    return DeadLetter(
        message_id=message.message_id,
        actor_name=message.actor_name,
        summary=_cut(redact.arguments(message.args, message.kwargs)),
        retries=int(message.options.get("retries", 0)),
        error=error,
        enqueued_at=message.message_datetime,
        dead_at=dead_at,
        traceback=trace if isinstance(trace, str) and trace else None,
        due_at=_due_at(message),
    )


def _due_at(message: Message[Any]) -> datetime | None:
    """When a delayed message becomes ready (its `eta`, ms); None when it has none."""
    eta = message.options.get("eta")
    return datetime.fromtimestamp(eta / 1000, UTC) if isinstance(eta, int | float) else None


def _wanted(message: Message[Any], message_id: str | None) -> bool:
    return message_id is None or message.message_id == message_id


def _cut(text: str) -> str:
    return clip(text, SUMMARY_CHARS)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fresh(message: Message[Any], queue: str) -> Message[Any]:
    """The message as first sent: same id and arguments, none of the failed run's options."""
    options = {k: v for k, v in message.options.items() if k not in RUN_OPTIONS}
    return dataclasses.replace(message, queue_name=queue, options=options)


def log_requeued(queue: str, message: Message[Any]) -> None:
    log.info(
        "dead_letter.requeued",
        queue=queue,
        message_id=message.message_id,
        actor=message.actor_name,
        retries=message.options.get("retries", 0),
    )


# RabbitMQ ---------------------------------------------------------------------------------------


def rabbitmq_broker(broker: dramatiq.Broker) -> RabbitmqBroker:
    if not isinstance(broker, RabbitmqBroker):
        raise TypeError(f"unsupported broker {type(broker).__name__}")
    return broker


@contextmanager
def rabbitmq_connection(broker: dramatiq.Broker) -> Iterator[Any]:
    """A connection of our own; closing it gives back any message still held."""
    try:
        connection = pika.BlockingConnection(_bounded(rabbitmq_broker(broker).parameters))
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"RabbitMQ is unreachable: {exc!r}") from exc
    try:
        yield connection
    except (pika.exceptions.AMQPError, BrokerConnectionError) as exc:
        raise BrokerUnavailable(f"RabbitMQ failed: {exc!r}") from exc
    finally:
        if connection.is_open:
            # Already gone is fine: the server gives back unacknowledged messages itself.
            with suppress(pika.exceptions.AMQPError):
                connection.close()


def _bounded(parameters: Any) -> Any:
    """The broker's connection parameters (one node's, or a list: a cluster's) with timeouts on
    connecting and on a blocked server."""
    if isinstance(parameters, list):
        return [_bounded(each) for each in parameters]
    bounded = copy.deepcopy(parameters)
    bounded.socket_timeout = CONNECT_TIMEOUT_SECONDS
    bounded.stack_timeout = OPERATION_TIMEOUT_SECONDS
    bounded.blocked_connection_timeout = OPERATION_TIMEOUT_SECONDS
    return bounded


def _missing(exc: pika.exceptions.ChannelClosedByBroker) -> bool:
    return bool(exc.reply_code == NOT_FOUND)


def rabbitmq_count(connection: Any, name: str) -> int:
    """Messages ready in `name`; 0 when no one has declared it yet (passive: never creates it)."""
    channel = connection.channel()
    try:
        return int(channel.queue_declare(name, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if _missing(exc):
            return 0
        raise
    finally:
        if channel.is_open:
            channel.close()


def dead_at_of(properties: Any) -> datetime | None:
    """When RabbitMQ dead-lettered the message (its `x-death` header)."""
    deaths = (properties.headers or {}).get("x-death") or []
    when = deaths[0].get("time") if deaths else None
    if not isinstance(when, datetime):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def give_back(channel: Any, tag: int) -> None:
    """Return a held message to its queue, in its place (if the channel is gone, it is already)."""
    if channel.is_open:
        with suppress(pika.exceptions.AMQPError):
            channel.basic_nack(tag, requeue=True)


def _rabbitmq_bury(broker: RabbitmqBroker, queue: str, body: bytes) -> None:
    """Publish to `<queue>.XQ` on this thread's channel; confirmed before it returns."""
    try:
        broker.channel.basic_publish(
            exchange="",
            routing_key=xq_name(queue),
            body=body,
            properties=pika.BasicProperties(delivery_mode=2),
            mandatory=True,  # with confirms: a missing XQ raises instead of dropping it
        )
    except (pika.exceptions.AMQPError, BrokerConnectionError) as exc:
        del broker.connection  # as Dramatiq's enqueue does: the next use opens a new one
        raise BrokerUnavailable(f"RabbitMQ did not take the dead letter: {exc!r}") from exc


def _rabbitmq_peek(broker: RabbitmqBroker, queue: str, limit: int) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    with rabbitmq_connection(broker) as connection:
        if limit < 1 or rabbitmq_count(connection, xq_name(queue)) == 0:
            return letters
        channel = connection.channel()
        last_tag: int | None = None
        try:
            while len(letters) < limit:
                method, properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
                if method is None:
                    break
                last_tag = method.delivery_tag
                letters.append(letter_of(body, dead_at_of(properties)))
        finally:
            if last_tag is not None and channel.is_open:
                channel.basic_nack(last_tag, multiple=True, requeue=True)
    return letters


def _rabbitmq_requeue(broker: RabbitmqBroker, queue: str, message_id: str | None) -> int:
    moved = 0
    with rabbitmq_connection(broker) as connection:
        # At most the letters there now: one requeued and dead again meanwhile is not moved twice.
        present = rabbitmq_count(connection, xq_name(queue))
        if present == 0:
            return 0
        channel = connection.channel()
        held: list[int] = []  # letters we skip: kept unacknowledged until the end, so read once
        try:
            for _ in range(present):
                method, _properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
                if method is None:
                    break
                message = decode(body)
                if message is None or not _wanted(message, message_id):
                    held.append(method.delivery_tag)
                    continue
                try:
                    broker.enqueue(fresh(message, queue))  # publisher confirms: in the queue now
                except BaseException:
                    give_back(channel, method.delivery_tag)
                    raise
                channel.basic_ack(method.delivery_tag)
                moved += 1
                log_requeued(queue, message)
        finally:
            for tag in held:
                give_back(channel, tag)
    return moved


# Redis ------------------------------------------------------------------------------------------


def _redis_keys(broker: RedisBroker, queue: str) -> tuple[str, str]:
    """The dead letters' sorted set (member -> when it died) and hash (member -> message)."""
    dead = f"{broker.namespace}:{xq_name(queue)}"
    return dead, f"{dead}.msgs"


@contextmanager
def redis_errors() -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, BrokerConnectionError) as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc!r}") from exc


def _redis_bury(broker: RedisBroker, queue: str, member: str, body: bytes) -> None:
    """What dispatch.lua's `nack` does, with our body: the sorted set and the hash, at once."""
    dead, bodies = _redis_keys(broker, queue)
    with redis_errors():
        pipe = broker.client.pipeline(transaction=True)
        pipe.zadd(dead, {member: int(time.time() * 1000)})
        pipe.hset(bodies, member, body)
        pipe.execute()


def _redis_peek(broker: RedisBroker, queue: str, limit: int) -> list[DeadLetter]:
    if limit < 1:
        return []
    dead, bodies = _redis_keys(broker, queue)
    with redis_errors():
        members = cast(
            list[tuple[bytes, float]], broker.client.zrange(dead, 0, limit - 1, withscores=True)
        )
        if not members:
            return []
        found = broker.client.hmget(bodies, [member for member, _ in members])
    return [
        letter_of(body, datetime.fromtimestamp(score / 1000, UTC))
        for (_, score), body in zip(members, found, strict=True)
        if body is not None  # requeued between the two reads
    ]


def _redis_requeue(broker: RedisBroker, queue: str, message_id: str | None) -> int:
    dead, bodies = _redis_keys(broker, queue)
    client = broker.client
    moved = 0
    with redis_errors():
        members = cast(list[bytes], client.zrange(dead, 0, -1))  # there now, oldest first
        for start in range(0, len(members), REDIS_BATCH):
            batch = members[start : start + REDIS_BATCH]
            for member, body in zip(batch, client.hmget(bodies, batch), strict=True):
                message = None if body is None else decode(body)
                if message is None or not _wanted(message, message_id):
                    continue
                claim = f"{dead}.claimed:{member.decode()}"
                if not client.set(claim, broker.broker_id, nx=True, px=CLAIM_MS):
                    continue  # another requeue is moving it
                try:
                    if not client.hexists(bodies, member):
                        continue  # moved by another requeue before our claim
                    broker.enqueue(fresh(message, queue))
                    pipe = client.pipeline(transaction=True)
                    pipe.zrem(dead, member)
                    pipe.hdel(bodies, member)
                    pipe.execute()
                finally:
                    client.delete(claim)
                moved += 1
                log_requeued(queue, message)
    return moved
