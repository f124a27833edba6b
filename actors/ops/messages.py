"""Browse and handle the messages of one part of a queue, on both brokers.

A queue `q` has three parts: `ready` (q: waiting for a worker), `delayed` (q.DQ: retries and
delayed messages waiting to be due) and `dead` (q.XQ: given up on, actors.dead_letters). Blocking
(pika, redis-py): run it in a thread, as actors.ops.queues.

- `browse`: a page of a part, oldest first, each message with its actor, arguments (secrets
  redacted, actors.ops.redact), retries, error and traceback when it has one, enqueued time (and
  when it died or is due). RabbitMQ can only show a queue by taking messages: a page takes the
  first `offset + limit` (at most MAX_BROWSE) unacknowledged and gives them all back in their
  place, so a page further than that is refused, and messages a worker holds (prefetched, or
  delayed ones held until due) are not seen.
- `retry_one` (dead or delayed -> the queue now) and `retry_all` (dead): a copy with the same
  message id is enqueued first, and only then is the original removed (consumers deduplicate on
  the id, and the inbox makes a second run of an event a no-op, so a crash in between is
  harmless). A dead message gets its retries back (actors.dead_letters.fresh); a delayed one
  keeps its retry count and error, and only loses its `eta`.
- `delete_one`: removes one message (the first with that id) from a part.
- `purge`: removes every message of one part (RabbitMQ: those no worker holds; Redis: those in
  the list, not those a worker has taken). Returns how many went.
Each returns how many messages it moved or removed (0: not there any more, or held by a worker).

Raises actors.dead_letters.UnknownQueue and BrokerUnavailable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import dramatiq
import pika.exceptions
import redis
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.message import Message

from actors import dead_letters
from actors.dead_letters import BrokerUnavailable, DeadLetter
from actors.ops.queues import reader_client

log = structlog.get_logger(__name__)

Part = Literal["ready", "delayed", "dead"]
PARTS: tuple[Part, ...] = ("ready", "delayed", "dead")
PAGE_SIZE = 20
MAX_BROWSE = 500  # RabbitMQ: messages a page may take and give back
REDIS_BATCH = 200
# Options of a delayed message that belong to its wait, dropped when it is retried now.
WAIT_OPTIONS = frozenset({"eta", "redis_message_id"})

PURGE_LIST = """
local ids = redis.call('lrange', KEYS[1], 0, -1)
redis.call('del', KEYS[1])
for i = 1, #ids, 1000 do
  redis.call('hdel', KEYS[2], unpack(ids, i, math.min(i + 999, #ids)))
end
return #ids
"""
PURGE_SET = """
local n = redis.call('zcard', KEYS[1])
redis.call('del', KEYS[1], KEYS[2])
return n
"""
REMOVE_FROM_LIST = """
if redis.call('lrem', KEYS[1], 1, ARGV[1]) > 0 then
  redis.call('hdel', KEYS[2], ARGV[1])
  return 1
end
return 0
"""
REMOVE_FROM_SET = """
if redis.call('zrem', KEYS[1], ARGV[1]) > 0 then
  redis.call('hdel', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


class PageTooFar(dead_letters.DeadLetterError):
    """RabbitMQ cannot show messages that far into a queue without taking too many."""


@dataclass(frozen=True)
class Page:
    """Messages of one part of a queue, from `offset`."""

    queue: str
    part: Part
    total: int  # in the part now (RabbitMQ: those no worker holds)
    offset: int
    messages: list[DeadLetter]

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.messages) < self.total


def part_queue(queue: str, part: Part) -> str:
    """The broker's name of a part: q, q.DQ or q.XQ."""
    return {"ready": queue, "delayed": dq_name(queue), "dead": xq_name(queue)}[part]


def browse(
    broker: dramatiq.Broker, queue: str, part: Part, offset: int = 0, limit: int = PAGE_SIZE
) -> Page:
    """A page of `part`, oldest first, left in place. Raises PageTooFar (RabbitMQ), UnknownQueue,
    BrokerUnavailable."""
    dead_letters.check_queue(broker, queue)
    if isinstance(broker, RedisBroker):
        return _redis_browse(broker, queue, part, offset, limit)
    if offset + limit > MAX_BROWSE:
        raise PageTooFar(f"RabbitMQ shows only the first {MAX_BROWSE} messages of a queue")
    return _rabbitmq_browse(dead_letters.rabbitmq_broker(broker), queue, part, offset, limit)


def retry_one(broker: dramatiq.Broker, queue: str, part: Part, message_id: str) -> int:
    """Move one dead or delayed message to the queue now (1), or 0 when it is not there."""
    dead_letters.check_queue(broker, queue)
    if part == "dead":
        return dead_letters.requeue(broker, queue, message_id)
    if part != "delayed":
        raise ValueError("only dead and delayed messages are retried")

    def send_now(message: Message[Any]) -> None:
        options = {k: v for k, v in message.options.items() if k not in WAIT_OPTIONS}
        broker.enqueue(dataclasses.replace(message, queue_name=queue, options=options))
        log.info("message.retried_now", queue=queue, message_id=message.message_id)

    return _take(broker, queue, part, message_id, send_now, copied=True)


def retry_all(broker: dramatiq.Broker, queue: str) -> int:
    """Move every dead message of `queue` back, retries reset; how many moved."""
    return dead_letters.requeue(broker, queue)


def delete_one(broker: dramatiq.Broker, queue: str, part: Part, message_id: str) -> int:
    """Remove one message (1), or 0 when it is not there (any more)."""
    dead_letters.check_queue(broker, queue)

    def forget(message: Message[Any]) -> None:
        log.info("message.deleted", queue=queue, part=part, message_id=message.message_id)

    return _take(broker, queue, part, message_id, forget)


def purge(broker: dramatiq.Broker, queue: str, part: Part) -> int:
    """Remove every message of `part` that no worker holds; how many went."""
    dead_letters.check_queue(broker, queue)
    name = part_queue(queue, part)
    if isinstance(broker, RedisBroker):
        client = reader_client(broker)
        key = f"{broker.namespace}:{name}"
        try:
            with dead_letters.redis_errors():
                script = client.register_script(PURGE_SET if part == "dead" else PURGE_LIST)
                removed = int(script(keys=[key, f"{key}.msgs"]))
        finally:
            client.close()
    else:
        with dead_letters.rabbitmq_connection(broker) as connection:
            channel = connection.channel()
            try:
                removed = int(channel.queue_purge(name).method.message_count)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != dead_letters.NOT_FOUND:
                    raise
                removed = 0
            finally:
                if channel.is_open:
                    channel.close()
    log.info("queue.purged", queue=queue, part=part, count=removed)
    return removed


def _take(
    broker: dramatiq.Broker,
    queue: str,
    part: Part,
    message_id: str,
    act: Callable[[Message[Any]], None],
    *,
    copied: bool = False,
) -> int:
    """Find the first message `message_id` of a part, `act` on it (`copied`: act enqueued a
    copy), and only then remove it."""
    if isinstance(broker, RedisBroker):
        return _redis_take(broker, queue, part, message_id, act, copied)
    return _rabbitmq_take(dead_letters.rabbitmq_broker(broker), queue, part, message_id, act)


# RabbitMQ ---------------------------------------------------------------------------------------


def _rabbitmq_browse(
    broker: RabbitmqBroker, queue: str, part: Part, offset: int, limit: int
) -> Page:
    name = part_queue(queue, part)
    shown: list[DeadLetter] = []
    with dead_letters.rabbitmq_connection(broker) as connection:
        total = dead_letters.rabbitmq_count(connection, name)
        if total <= offset or limit < 1:
            return Page(queue, part, total, offset, shown)
        channel = connection.channel()
        last_tag: int | None = None
        try:
            for index in range(offset + limit):
                method, properties, body = channel.basic_get(name, auto_ack=False)
                if method is None:
                    break
                last_tag = method.delivery_tag
                if index >= offset:
                    dead_at = dead_letters.dead_at_of(properties) if part == "dead" else None
                    shown.append(dead_letters.letter_of(body, dead_at))
        finally:
            if last_tag is not None and channel.is_open:
                channel.basic_nack(last_tag, multiple=True, requeue=True)
    return Page(queue, part, total, offset, shown)


def _rabbitmq_take(
    broker: RabbitmqBroker,
    queue: str,
    part: Part,
    message_id: str,
    act: Callable[[Message[Any]], None],
) -> int:
    name = part_queue(queue, part)
    with dead_letters.rabbitmq_connection(broker) as connection:
        present = dead_letters.rabbitmq_count(connection, name)
        if present == 0:
            return 0
        channel = connection.channel()
        held: list[int] = []  # the others: kept until the end, so each is read once
        try:
            for _ in range(present):
                method, _properties, body = channel.basic_get(name, auto_ack=False)
                if method is None:
                    break
                message = dead_letters.decode(body)
                if message is None or message.message_id != message_id:
                    held.append(method.delivery_tag)
                    continue
                try:
                    act(message)
                except BaseException:
                    dead_letters.give_back(channel, method.delivery_tag)
                    raise
                channel.basic_ack(method.delivery_tag)
                return 1
        finally:
            for tag in held:
                dead_letters.give_back(channel, tag)
    return 0


# Redis ------------------------------------------------------------------------------------------


def _redis_browse(broker: RedisBroker, queue: str, part: Part, offset: int, limit: int) -> Page:
    key = f"{broker.namespace}:{part_queue(queue, part)}"
    client = reader_client(broker)
    try:
        with dead_letters.redis_errors():
            if part == "dead":
                total = int(client.zcard(key))
                scored = cast(
                    list[tuple[bytes, float]],
                    client.zrange(key, offset, offset + limit - 1, withscores=True),
                )
                members = [member for member, _ in scored]
                when: list[datetime | None] = [
                    datetime.fromtimestamp(score / 1000, UTC) for _, score in scored
                ]
            else:
                total = int(client.llen(key))
                members = cast(list[bytes], client.lrange(key, offset, offset + limit - 1))
                when = [None] * len(members)
            bodies = cast(
                list[bytes | None], client.hmget(f"{key}.msgs", members) if members else []
            )
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis failed: {exc!r}") from exc
    finally:
        client.close()
    shown = [
        dead_letters.letter_of(body, dead_at)
        for body, dead_at in zip(bodies, when, strict=True)
        if body is not None  # taken between the two reads
    ]
    return Page(queue, part, total, offset, shown)


def _redis_take(
    broker: RedisBroker,
    queue: str,
    part: Part,
    message_id: str,
    act: Callable[[Message[Any]], None],
    copied: bool,
) -> int:
    key = f"{broker.namespace}:{part_queue(queue, part)}"
    client = reader_client(broker)
    try:
        with dead_letters.redis_errors():
            if part == "dead":
                members = cast(list[bytes], client.zrange(key, 0, -1))
            else:
                members = cast(list[bytes], client.lrange(key, 0, -1))
            remove = client.register_script(REMOVE_FROM_SET if part == "dead" else REMOVE_FROM_LIST)
            for start in range(0, len(members), REDIS_BATCH):
                batch = members[start : start + REDIS_BATCH]
                found = cast(list[bytes | None], client.hmget(f"{key}.msgs", batch))
                for member, body in zip(batch, found, strict=True):
                    message = None if body is None else dead_letters.decode(body)
                    if message is None or message.message_id != message_id:
                        continue
                    claim = f"{key}.claimed:{member.decode()}"
                    if not client.set(claim, broker.broker_id, nx=True, px=dead_letters.CLAIM_MS):
                        return 0  # another operator is acting on it
                    try:
                        if not client.hexists(f"{key}.msgs", member):
                            return 0
                        act(message)
                        removed = int(remove(keys=[key, f"{key}.msgs"], args=[member]))
                        # Not removed: a worker took it meanwhile. A retried copy then runs
                        # twice, which the inbox makes harmless (it was retried); a delete
                        # did nothing.
                        return 1 if copied else removed
                    finally:
                        client.delete(claim)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis failed: {exc!r}") from exc
    finally:
        client.close()
    return 0
