"""Per-actor and per-queue statistics, counted by every process's broker and kept in Redis.

`StatsMiddleware` (added by `actors.broker.build_broker`, so workers, relays and the web's own
broker all count) buffers in memory, per wall-clock minute:
- per actor: attempts processed, attempts failed (an exception, retried or not), and a histogram
  of their durations (DURATION_BUCKETS, seconds), from which p50/p95 are read;
- per queue: messages enqueued (rate in: new messages only, not retries or delayed messages
  coming due, which are the same messages again) and attempts processed (rate out), read as
  rates over the last RATE_MINUTES;
and keeps each actor's last error (type, message, traceback, when). A daemon thread flushes the
buffer to the shop's Redis (settings.redis_url) every `flush_seconds` (FLUSH_SECONDS unless
told), into one hash per minute, `aioshop:ops:stats:<minute>`, expiring after KEEP_SECONDS.
The hooks only touch memory under a lock: nothing here slows or fails a message. The flusher
survives any exception: it logs it (`ops_stats.flush_failed`), counts it
(aioshop_ops_stats_flush_errors_total) and keeps the unflushed counts for the next try
(minutes older than KEEP_SECONDS are dropped).

A worker process also says, on every flush, which queues it consumes (`aioshop:ops:consumers:
<queue>`, a sorted set of process tokens scored by time): the Redis broker keeps no consumer
registry of its own (its `__heartbeats__` count every process that talks to it, publishers
included), so the queue pages count there the worker processes that consume a queue and flushed
within CONSUMER_ALIVE_SECONDS.

Readers (`read_stats`, `failures_last_minute`) take an asyncio Redis client.

Field names in a minute's hash: `p|<actor>` processed, `f|<actor>` failed, `s|<actor>` summed
seconds, `d|<actor>|<i>` attempts in bucket i, `in|<queue>` enqueued, `out|<queue>` processed.
Actor and queue names are the declared ones (a bounded set).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import threading
import time
import traceback
import uuid
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
import redis
import redis.asyncio as aioredis
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from prometheus_client import Counter

from configs.settings import Settings

log = structlog.get_logger(__name__)

PREFIX = "aioshop:ops"
STATS_KEY = PREFIX + ":stats:{minute}"
LAST_ERRORS_KEY = PREFIX + ":last_errors"  # hash: actor -> JSON of its last error
CONSUMERS_KEY = PREFIX + ":consumers:{queue}"  # sorted set: process token -> last flush (s)
FLUSH_SECONDS = 2.0
IDLE_EXIT_SECONDS = 60.0
KEEP_SECONDS = 2 * 3600
WINDOW_MINUTES = 60
RATE_MINUTES = 5  # the queues' rates in and out: recent, not the hour's average
CONSUMER_ALIVE_SECONDS = 15.0
REDIS_TIMEOUT_SECONDS = 2.0
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    math.inf,
)  # fmt: skip
ERROR_MESSAGE_CHARS = 2_000
ERROR_TRACEBACK_CHARS = 16_000

FLUSH_ERRORS = Counter(
    "aioshop_ops_stats_flush_errors_total",
    "Flushes of the per-actor statistics to Redis that failed (kept for the next flush).",
)


def minute_of(seconds: float) -> int:
    """The wall-clock minute (Unix seconds // 60) that `seconds` falls in."""
    return int(seconds // 60)


def bucket_of(seconds: float) -> int:
    """The index in DURATION_BUCKETS of the first bound not below `seconds`."""
    return bisect.bisect_left(DURATION_BUCKETS, seconds)


@dataclass
class _Buffer:
    counts: dict[int, dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    errors: dict[str, str] = field(default_factory=dict)  # actor -> JSON


class StatsMiddleware(Middleware):
    """Counts what this process's broker does; a thread flushes it to Redis (see the module)."""

    def __init__(
        self,
        settings: Settings,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        idle_exit_seconds: float = IDLE_EXIT_SECONDS,
    ) -> None:
        self.redis_url = str(settings.redis_url)
        self.flush_seconds = flush_seconds
        self.idle_exit_seconds = idle_exit_seconds
        self._lock = threading.Lock()
        self._buffer = _Buffer()
        self._started = threading.local()  # the attempt this worker thread is running
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._client: redis.Redis | None = None
        self._consumed: set[str] = set()  # queues this process's worker consumes
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    # -- the hooks: memory only ---------------------------------------------------------------

    def after_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int) -> None:
        # A retry (delayed, with retries) or a delayed message coming due is not a new message.
        if delay is None and not message.options.get("retries"):
            self._add(time.time(), f"in|{q_name(message.queue_name)}", 1)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._started.at = time.monotonic()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = getattr(self._started, "at", None)
        self._started.at = None
        seconds = time.monotonic() - started if started is not None else 0.0
        self.record(message.actor_name, q_name(message.queue_name), seconds, exception, time.time())

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._started.at = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        queues = worker.consumer_whitelist or broker.get_declared_queues()
        with self._lock:
            self._consumed = {q_name(queue) for queue in queues}
        self._ensure_flusher()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        with self._lock:
            self._consumed = set()
        self.flush()

    def record(
        self,
        actor: str,
        queue: str,
        seconds: float,
        exception: BaseException | None,
        now: float,
    ) -> None:
        """Count one finished attempt of `actor` (public for tests and for callers outside a
        worker); never raises."""
        try:
            error = None if exception is None else _error_json(exception, now)
            minute = minute_of(now)
            with self._lock:
                counts = self._buffer.counts[minute]
                counts[f"p|{actor}"] += 1
                counts[f"s|{actor}"] += seconds
                counts[f"d|{actor}|{bucket_of(seconds)}"] += 1
                counts[f"out|{queue}"] += 1
                if error is not None:
                    counts[f"f|{actor}"] += 1
                    self._buffer.errors[actor] = error
            self._ensure_flusher()
        except Exception as exc:  # statistics must never fail a message
            log.warning("ops_stats.record_failed", error=repr(exc))

    def _add(self, now: float, name: str, amount: float) -> None:
        try:
            with self._lock:
                self._buffer.counts[minute_of(now)][name] += amount
            self._ensure_flusher()
        except Exception as exc:
            log.warning("ops_stats.record_failed", error=repr(exc))

    # -- the flusher ----------------------------------------------------------------------------

    def _ensure_flusher(self) -> None:
        flusher = self._flusher
        if flusher is not None and flusher.is_alive():
            return
        with self._lock:
            if self._flusher is not None and self._flusher.is_alive():
                return
            self._stop.clear()
            self._flusher = threading.Thread(
                target=self._run, name="ops-stats-flusher", daemon=True
            )
            self._flusher.start()

    def _run(self) -> None:
        """Flush every flush_seconds; after idle_exit_seconds with nothing to write (and no
        worker to report), end: the next count starts a new flusher (a publisher that sends
        now and then keeps no thread waiting)."""
        idle = 0.0
        while not self._stop.wait(self.flush_seconds):
            with self._lock:
                empty = not (self._buffer.counts or self._buffer.errors or self._consumed)
                idle = idle + self.flush_seconds if empty else 0.0
                if idle >= self.idle_exit_seconds:
                    # Under the lock that counts take: a count after this starts a new thread.
                    self._flusher = None
                    client, self._client = self._client, None
                    break
            try:
                self.flush()
            except Exception as exc:  # flush handles its own; this is the loop's last guard
                FLUSH_ERRORS.inc()
                log.warning("ops_stats.flush_failed", error=repr(exc))
        else:
            return  # stopped
        if client is not None:
            with suppress(redis.RedisError):
                client.close()

    def stop(self) -> None:
        """Stop the flusher after one last flush."""
        self._stop.set()
        self.flush()

    def flush(self) -> bool:
        """Write the buffer to Redis; False (logged, counted, kept) when that failed."""
        with self._lock:
            buffer, self._buffer = self._buffer, _Buffer()
            consumed = set(self._consumed)
        if not buffer.counts and not buffer.errors and not consumed:
            return True
        try:
            self._write(buffer, consumed, time.time())
        except Exception as exc:  # any: the loop must go on
            FLUSH_ERRORS.inc()
            log.warning("ops_stats.flush_failed", error=repr(exc))
            self._put_back(buffer)
            self._client = None  # a new connection next time
            return False
        return True

    def _write(self, buffer: _Buffer, consumed: set[str], now: float) -> None:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        pipe = self._client.pipeline(transaction=False)
        for minute, counts in buffer.counts.items():
            key = STATS_KEY.format(minute=minute)
            for name, amount in counts.items():
                if name.startswith("s|"):
                    pipe.hincrbyfloat(key, name, amount)
                else:
                    pipe.hincrby(key, name, int(amount))
            pipe.expire(key, KEEP_SECONDS)
        if buffer.errors:
            pipe.hset(LAST_ERRORS_KEY, mapping=cast(Any, buffer.errors))
        for queue in consumed:
            key = CONSUMERS_KEY.format(queue=queue)
            pipe.zadd(key, {self._token: now})
            pipe.zremrangebyscore(key, 0, now - KEEP_SECONDS)
            pipe.expire(key, KEEP_SECONDS)
        pipe.execute()

    def _put_back(self, buffer: _Buffer) -> None:
        oldest = minute_of(time.time() - KEEP_SECONDS)
        with self._lock:
            for minute, counts in buffer.counts.items():
                if minute < oldest:
                    continue
                mine = self._buffer.counts[minute]
                for name, amount in counts.items():
                    mine[name] += amount
            for actor, error in buffer.errors.items():
                self._buffer.errors.setdefault(actor, error)


def stop_stats(broker: dramatiq.Broker) -> None:
    """Flush and stop `broker`'s statistics (Dramatiq's close has no hook: call it before)."""
    for middleware in broker.middleware:
        if isinstance(middleware, StatsMiddleware):
            middleware.stop()


def _error_json(exception: BaseException, now: float) -> str:
    kind = type(exception)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    trace = "".join(traceback.format_exception(exception, limit=30))
    return json.dumps(
        {
            "type": name,
            "message": str(exception)[:ERROR_MESSAGE_CHARS],
            "traceback": trace[-ERROR_TRACEBACK_CHARS:],
            "at": now,
        }
    )


# -- readers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LastError:
    type: str
    message: str
    traceback: str
    at: datetime


@dataclass(frozen=True)
class ActorStats:
    """One actor over the window."""

    actor: str
    processed: int
    failed: int
    per_minute: float  # attempts per minute, over the window
    p50_seconds: float | None  # a bucket's upper bound: "at most"; None without attempts
    p95_seconds: float | None
    last_error: LastError | None

    @property
    def failure_rate(self) -> float | None:
        """Failed attempts / attempts, None without attempts."""
        return self.failed / self.processed if self.processed else None


@dataclass(frozen=True)
class QueueRates:
    """One queue's messages per minute in (enqueued) and out (processed), over the last
    RATE_MINUTES (the current minute counted for the part of it gone by)."""

    queue: str
    in_per_minute: float
    out_per_minute: float


@dataclass(frozen=True)
class Stats:
    minutes: int
    actors: list[ActorStats]
    queues: dict[str, QueueRates]


def quantile(buckets: list[int], q: float) -> float | None:
    """The upper bound of the bucket holding the q-th attempt (an 'at most' figure)."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            bound = DURATION_BUCKETS[index]
            return bound if math.isfinite(bound) else DURATION_BUCKETS[-2]
    return None


async def _minutes(client: aioredis.Redis, minutes: list[int]) -> list[dict[str, float]]:
    pipe = client.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(STATS_KEY.format(minute=minute))
    rows = await pipe.execute()
    return [{_text(k): float(v) for k, v in row.items()} for row in rows]


async def read_stats(
    client: aioredis.Redis, *, minutes: int = WINDOW_MINUTES, now: float | None = None
) -> Stats:
    """The last `minutes` (this one included) per actor and per queue. Raises redis errors."""
    at = time.time() if now is None else now
    current = minute_of(at)
    rows = await _minutes(client, list(range(current - minutes + 1, current + 1)))
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        for name, value in row.items():
            totals[name] += value
    raw_errors = await client.hgetall(LAST_ERRORS_KEY)
    errors = {_text(k): _last_error(v) for k, v in raw_errors.items()}
    actors = sorted(
        {name.split("|")[1] for name in totals if name[:2] in ("p|", "f|")} | set(errors)
    )
    actor_stats = []
    for actor in actors:
        buckets = [int(totals.get(f"d|{actor}|{i}", 0)) for i in range(len(DURATION_BUCKETS))]
        processed = int(totals.get(f"p|{actor}", 0))
        actor_stats.append(
            ActorStats(
                actor=actor,
                processed=processed,
                failed=int(totals.get(f"f|{actor}", 0)),
                per_minute=processed / minutes,
                p50_seconds=quantile(buckets, 0.5),
                p95_seconds=quantile(buckets, 0.95),
                last_error=errors.get(actor),
            )
        )
    # Rates: the last RATE_MINUTES, the current minute counted for the part of it gone by.
    recent: dict[str, float] = defaultdict(float)
    for row in rows[-RATE_MINUTES:]:
        for name, value in row.items():
            recent[name] += value
    elapsed_minutes = (min(RATE_MINUTES, minutes) - 1) + (at - current * 60) / 60
    queue_names = {name.split("|")[1] for name in totals if name[:3] in ("in|", "out")}
    queues = {
        queue: QueueRates(
            queue,
            recent.get(f"in|{queue}", 0) / elapsed_minutes,
            recent.get(f"out|{queue}", 0) / elapsed_minutes,
        )
        for queue in sorted(queue_names)
    }
    return Stats(minutes, actor_stats, queues)


async def failures_last_minute(client: aioredis.Redis, now: float | None = None) -> dict[str, int]:
    """Failed attempts per actor in the last complete minute (for the overview's history)."""
    previous = minute_of(time.time() if now is None else now) - 1
    (row,) = await _minutes(client, [previous])
    return {name[2:]: int(value) for name, value in row.items() if name.startswith("f|")}


def live_consumers(
    client: redis.Redis, queues: list[str], now: float | None = None
) -> dict[str, int]:
    """Worker processes that consume each queue and flushed within CONSUMER_ALIVE_SECONDS
    (blocking: for a thread). Raises redis errors."""
    since = (time.time() if now is None else now) - CONSUMER_ALIVE_SECONDS
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zcount(CONSUMERS_KEY.format(queue=queue), since, "+inf")
    return dict(zip(queues, (int(n) for n in pipe.execute()), strict=True))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _last_error(raw: bytes | str) -> LastError | None:
    try:
        data = json.loads(raw)
        return LastError(
            type=str(data["type"]),
            message=str(data["message"]),
            traceback=str(data["traceback"]),
            at=datetime.fromtimestamp(float(data["at"]), UTC),
        )
    except (ValueError, KeyError, TypeError):
        return None
