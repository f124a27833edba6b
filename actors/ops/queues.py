"""How deep each queue is, on both brokers: ready, delayed, dead, unacknowledged, consumers, the
age of the oldest ready message, and the queue's SLO (how old a ready message may get).

Blocking (pika, redis-py): run it in a thread (web.ops keeps one broker thread, OpsBroker). Our
own connections have short timeouts (actors.dead_letters.rabbitmq_connection), and a broker that
does not answer raises BrokerUnavailable; the caller also bounds the whole read.

What is counted, per queue `q`:
- RabbitMQ, over AMQP with passive declares (never creating a queue): `ready` and `consumers`
  of `q`, `delayed` = the messages ready in `q.DQ`, `dead` = those of `q.XQ`. A worker takes the
  delayed messages off `q.DQ` and holds them unacknowledged until they are due, so without the
  management API `delayed` counts only those no worker holds and `unacked` is None ("n/a").
  With RABBITMQ_MANAGEMENT_URL set, its /api/queues/<vhost> adds `q`'s unacknowledged messages
  (`unacked`: taken by a worker, in progress or prefetched) and the held delayed ones; when it
  does not answer (MANAGEMENT_TIMEOUT_SECONDS), those are n/a again (logged), the rest stands.
  The oldest ready message is peeked: basic.get without ack, then nack with requeue, which puts
  it back at the head (a consumer misses it for that moment).
- Redis (Dramatiq's keys, `<namespace>:...`): `ready` = the list `q`; `delayed` = the hash
  `q.DQ.msgs` (waiting in the delay list or held by a worker until due); `dead` = the sorted set
  `q.XQ`; `unacked` = the sum of the `__acks__.<worker>.q` sets of every broker in
  `__heartbeats__`; `consumers` = worker processes consuming `q` that reported within
  actors.ops.stats.CONSUMER_ALIVE_SECONDS (Dramatiq's heartbeats also list every publisher);
  the oldest ready message is the head of the list, read with its body.
The age is that of the message's `message_timestamp`, when it was first enqueued (a retried or
requeued message keeps it).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, cast

import dramatiq
import pika.exceptions
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name, xq_name
from prometheus_client.core import GaugeMetricFamily

from actors import dead_letters
from actors.dead_letters import BrokerUnavailable
from actors.ops import stats
from actors.registry import SPECS
from configs.settings import Settings
from domain.events import QUEUES

# How old (seconds) the oldest ready message of a queue may get before the queue is behind:
# what a customer or an operator waits for. Payments and urgent emails (confirmations, declines,
# one-time links): ten seconds, the customer is looking; orders (refunds, stock notices): a
# minute; email and the outbox's ticks: two minutes; search: a product's page right within
# five; images: renditions within ten. A queue not listed gets DEFAULT_SLO_SECONDS.
SLO_SECONDS: dict[str, int] = {
    "payments": 10,
    "email_urgent": 10,
    "orders": 60,
    "email": 120,
    "search": 300,
    "images": 600,
    "outbox": 120,
}
DEFAULT_SLO_SECONDS = 300
log = structlog.get_logger(__name__)

CACHE_SECONDS = 5.0
MANAGEMENT_TIMEOUT_SECONDS = 3.0
REDIS_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class QueueDepth:
    """One queue as the broker sees it now."""

    queue: str
    ready: int
    delayed: int
    dead: int
    unacked: int | None  # None: the broker cannot say (RabbitMQ without the management API)
    consumers: int
    oldest_age_seconds: float | None  # of the oldest ready message; None when none is ready
    slo_seconds: int

    @property
    def behind(self) -> bool:
        """Whether the oldest ready message is older than the SLO."""
        return self.oldest_age_seconds is not None and self.oldest_age_seconds > self.slo_seconds


def slo_of(queue: str) -> int:
    """The queue's SLO in seconds."""
    return SLO_SECONDS.get(queue, DEFAULT_SLO_SECONDS)


def known_queues() -> list[str]:
    """Every queue an event or a declared actor uses (what the pages accept in a URL)."""
    return sorted(set(QUEUES) | {s.queue_name for s in SPECS.values()})


def read_depths(broker: dramatiq.Broker, settings: Settings) -> list[QueueDepth]:
    """Every declared queue's depth, by name. Raises BrokerUnavailable."""
    queues = sorted(broker.get_declared_queues())
    if isinstance(broker, RedisBroker):
        return _redis_depths(broker, settings, queues)
    return _rabbitmq_depths(broker, settings, queues)


@dataclass(frozen=True)
class DepthReading:
    """A read of every queue, or why there is none; `at` is time.time() of the read."""

    depths: list[QueueDepth]
    error: str | None
    at: float


class DepthCache:
    """The last read, shared for CACHE_SECONDS by scrapes and page refreshes (thread-safe)."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._last: DepthReading | None = None

    def read(self, broker: dramatiq.Broker, settings: Settings) -> DepthReading:
        """The cached reading when fresh, else a new one (a failure is cached too)."""
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.at < self.seconds:
                return last
            try:
                reading = DepthReading(read_depths(broker, settings), None, time.monotonic())
            except BrokerUnavailable as exc:
                reading = DepthReading([], str(exc), time.monotonic())
            self._last = reading
            return reading

    def forget(self) -> None:
        """Drop the cached reading (after an operator changed a queue)."""
        with self._lock:
            self._last = None


def metric_families(depths: list[QueueDepth]) -> list[GaugeMetricFamily]:
    """aioshop_queue_* gauges for a Prometheus collector (an unknown value has no sample)."""
    messages = GaugeMetricFamily(
        "aioshop_queue_messages", "Messages in a queue, by state.", labels=["queue", "state"]
    )
    consumers = GaugeMetricFamily(
        "aioshop_queue_consumers", "Consumers of a queue.", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "aioshop_queue_oldest_age_seconds",
        "Age of the oldest ready message of a queue (0 when none is ready).",
        labels=["queue"],
    )
    slo = GaugeMetricFamily(
        "aioshop_queue_slo_seconds",
        "How old the oldest ready message of a queue may get.",
        labels=["queue"],
    )
    for depth in depths:
        for state, value in (
            ("ready", depth.ready),
            ("delayed", depth.delayed),
            ("dead", depth.dead),
            ("unacked", depth.unacked),
        ):
            if value is not None:
                messages.add_metric([depth.queue, state], value)
        consumers.add_metric([depth.queue], depth.consumers)
        oldest.add_metric([depth.queue], depth.oldest_age_seconds or 0.0)
        slo.add_metric([depth.queue], depth.slo_seconds)
    return [messages, consumers, oldest, slo]


def _age(body: bytes | None, now: float) -> float | None:
    message = None if body is None else dead_letters.decode(body)
    if message is None:
        return None
    return max(0.0, now - message.message_timestamp / 1000)


# RabbitMQ ---------------------------------------------------------------------------------------


def _rabbitmq_depths(
    broker: dramatiq.Broker, settings: Settings, queues: list[str]
) -> list[QueueDepth]:
    rabbit = dead_letters.rabbitmq_broker(broker)
    parameters = cast(Any, rabbit.parameters)  # a list on a cluster: its nodes share vhosts
    first = parameters[0] if isinstance(parameters, list) else parameters
    managed = _management(settings, first.virtual_host)
    depths = []
    with dead_letters.rabbitmq_connection(rabbit) as connection:
        for queue in queues:
            ready, consumers = _declare(connection, queue)
            delayed, _ = _declare(connection, dq_name(queue))
            dead, _ = _declare(connection, xq_name(queue))
            unacked = None
            if managed is not None:
                unacked = managed.get(queue, {}).get("messages_unacknowledged", 0)
                delayed += managed.get(dq_name(queue), {}).get("messages_unacknowledged", 0)
            depths.append(
                QueueDepth(
                    queue=queue,
                    ready=ready,
                    delayed=delayed,
                    dead=dead,
                    unacked=unacked,
                    consumers=consumers,
                    oldest_age_seconds=_rabbitmq_oldest(connection, queue) if ready else None,
                    slo_seconds=slo_of(queue),
                )
            )
    return depths


def _declare(connection: Any, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of `name`; (0, 0) when nobody declared it yet."""
    channel = connection.channel()
    try:
        method = channel.queue_declare(name, passive=True).method
        return int(method.message_count), int(method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == dead_letters.NOT_FOUND:
            return 0, 0
        raise
    finally:
        if channel.is_open:
            channel.close()


def _rabbitmq_oldest(connection: Any, queue: str) -> float | None:
    channel = connection.channel()
    try:
        method, _properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return None
        dead_letters.give_back(channel, method.delivery_tag)
        return _age(body, time.time())
    finally:
        if channel.is_open:
            channel.close()


def _management(settings: Settings, vhost: str) -> dict[str, dict[str, int]] | None:
    """Per queue name, the management API's counts; None when it is not configured."""
    if settings.rabbitmq_management_url is None:
        return None
    url = str(settings.rabbitmq_management_url)
    parts = urllib.parse.urlsplit(url)
    base = urllib.parse.urlunsplit(
        parts._replace(netloc=parts.netloc.rpartition("@")[2], path=parts.path.rstrip("/"))
    )
    query = "columns=name,messages_ready,messages_unacknowledged,consumers"
    request = urllib.request.Request(  # noqa: S310 (an http(s) URL checked by Settings)
        f"{base}/api/queues/{urllib.parse.quote(vhost, safe='')}?{query}"
    )
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=MANAGEMENT_TIMEOUT_SECONDS) as response:  # noqa: S310
            rows = json.loads(response.read())
    except (OSError, ValueError) as exc:
        # Optional: the AMQP counts still stand; the unacknowledged ones show "n/a".
        log.warning("queues.management_failed", error=repr(exc))
        return None
    if not isinstance(rows, list):
        return None
    return {
        str(row["name"]): {key: int(value) for key, value in row.items() if isinstance(value, int)}
        for row in rows
        if isinstance(row, dict) and "name" in row
    }


# Redis ------------------------------------------------------------------------------------------


def reader_client(broker: RedisBroker) -> redis.Redis:
    """A client of the broker's Redis whose calls time out (Dramatiq's own never do)."""
    pool = broker.client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(
        socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


def _redis_depths(broker: RedisBroker, settings: Settings, queues: list[str]) -> list[QueueDepth]:
    ns = broker.namespace
    client = reader_client(broker)
    shop = redis.Redis.from_url(
        str(settings.redis_url),
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    try:
        with dead_letters.redis_errors():
            workers = [
                w.decode() for w in cast(list[bytes], client.zrange(f"{ns}:__heartbeats__", 0, -1))
            ]
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                pipe.llen(f"{ns}:{queue}")
                pipe.hlen(f"{ns}:{dq_name(queue)}.msgs")
                pipe.zcard(f"{ns}:{xq_name(queue)}")
                pipe.lindex(f"{ns}:{queue}", 0)
                for worker in workers:
                    pipe.scard(f"{ns}:__acks__.{worker}.{queue}")
            answers = pipe.execute()
            heads = [answers[i * (4 + len(workers)) + 3] for i in range(len(queues))]
            head_bodies = _bodies(client, ns, queues, heads)
            consumers = stats.live_consumers(shop, queues)
        now = time.time()
        depths = []
        step = 4 + len(workers)
        for index, queue in enumerate(queues):
            ready, delayed, dead, _head = answers[index * step : index * step + 4]
            unacked = sum(int(n) for n in answers[index * step + 4 : (index + 1) * step])
            depths.append(
                QueueDepth(
                    queue=queue,
                    ready=int(ready),
                    delayed=int(delayed),
                    dead=int(dead),
                    unacked=unacked,
                    consumers=consumers[queue],
                    oldest_age_seconds=_age(head_bodies[index], now) if int(ready) else None,
                    slo_seconds=slo_of(queue),
                )
            )
        return depths
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis failed: {exc!r}") from exc
    finally:
        client.close()
        shop.close()


def _bodies(
    client: redis.Redis, ns: str, queues: list[str], heads: list[bytes | None]
) -> list[bytes | None]:
    pipe = client.pipeline(transaction=False)
    for queue, head in zip(queues, heads, strict=True):
        if head is not None:
            pipe.hget(f"{ns}:{queue}.msgs", head)
    found = iter(pipe.execute())
    return [next(found) if head is not None else None for head in heads]
