"""Heartbeats: every worker process and relay says it is alive, in the shop's Redis.

A process writes one hash, `aioshop:heartbeat:<kind>:<host>:<pid>:<token>` (kind, host, pid,
started at, queues, threads, messages in progress and done, its interval, last beat), every
HEARTBEAT_INTERVAL_SECONDS from a daemon thread of its own, so a busy event loop or busy worker
threads do not silence it. The hash lives KEEP_SECONDS after the last beat (a process killed
without a word stays visible, red, that long); an index sorted by last beat lists them. A clean
stop writes `stopped_at` and shortens the hash's life to STOPPED_KEEP_SECONDS: grey, not red.
`host` is the machine's name, HOST_NAME (configs.settings.default_host_name: the OS host name
unless set), so two machines, or two containers, with the same OS host name are told apart; the
pid alone is not (each machine has its own pids).

Status, as read (`processes`): green while the last beat is at most STALE_AFTER_INTERVALS of the
process's own interval old, red once it is older, grey once stopped. Times are wall-clock seconds
of the writing and reading hosts (keep them in NTP sync).

The beat loop never dies: a Redis that does not answer (every call bounded by a timeout) is
logged on the first failure and every LOG_EVERY_FAILURES after, counted in
`aioshop_heartbeat_errors_total{kind}`, and the next beat tries again.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

import dramatiq
import redis
import redis.asyncio as aioredis
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import Middleware
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from configs.settings import default_host_name

log = structlog.get_logger(__name__)

Kind = Literal["worker", "relay"]
KINDS: tuple[Kind, ...] = ("worker", "relay")
Status = Literal["green", "red", "grey"]

KEY_PREFIX = "aioshop:heartbeat:"
INDEX_KEY = "aioshop:heartbeats"
KEEP_SECONDS = 3600  # a silent process stays listed (red) this long after its last beat
STOPPED_KEEP_SECONDS = 600  # a process stopped cleanly stays listed (grey) this long
STALE_AFTER_INTERVALS = 3
LOG_EVERY_FAILURES = 60
MAX_REDIS_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 2.0

HEARTBEAT_ERRORS = Counter(
    "aioshop_heartbeat_errors_total",
    "Heartbeats a worker or relay could not write to Redis.",
    ["kind"],
)


@dataclass(frozen=True)
class Beat:
    """What a process reports about itself at each beat."""

    in_progress: int = 0
    processed: int = 0


class HeartbeatThread:
    """Writes one process's heartbeat every `interval` seconds until `stop()`."""

    def __init__(
        self,
        redis_url: str,
        *,
        kind: Kind,
        interval: float,
        queues: Iterable[str] = (),
        threads: int = 0,
        report: Callable[[], Beat] = Beat,
        host: str | None = None,
    ) -> None:
        self.kind = kind
        self.interval = interval
        self.queues = tuple(sorted(queues))
        self.threads = threads
        self.report = report
        self.host = default_host_name() if host is None else host
        self.pid = os.getpid()
        self.started_at = time.time()
        self.key = f"{KEY_PREFIX}{kind}:{self.host}:{self.pid}:{secrets.token_hex(4)}"
        timeout = min(MAX_REDIS_TIMEOUT_SECONDS, interval)
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        """Beat now, then every interval on a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.kind}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and mark the process stopped (grey); waits at most ~2 timeouts."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 2 * MAX_REDIS_TIMEOUT_SECONDS)
            self._thread = None
        try:
            now = time.time()
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key, mapping={"stopped_at": repr(now)})
                pipe.expire(self.key, STOPPED_KEEP_SECONDS)
                pipe.execute()
            log.info("heartbeat.stopped", kind=self.kind, pid=self.pid)
        except Exception as exc:  # it turns red after 3 intervals instead of grey
            HEARTBEAT_ERRORS.labels(self.kind).inc()
            log.warning("heartbeat.stop_not_recorded", kind=self.kind, error=repr(exc))
        finally:
            self._redis.close()

    def beat(self) -> None:
        """Write one heartbeat (raises what Redis raises)."""
        now = time.time()
        beat = self.report()
        fields: dict[Any, Any] = {  # redis-py's mapping type is invariant in its keys
            "kind": self.kind,
            "host": self.host,
            "pid": str(self.pid),
            "started_at": repr(self.started_at),
            "queues": ",".join(self.queues),
            "threads": str(self.threads),
            "in_progress": str(beat.in_progress),
            "processed": str(beat.processed),
            "interval": repr(self.interval),
            "last_beat": repr(now),
        }
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping=fields)
            pipe.expire(self.key, KEEP_SECONDS)
            pipe.zadd(INDEX_KEY, {self.key: now})
            pipe.zremrangebyscore(INDEX_KEY, "-inf", now - KEEP_SECONDS)
            pipe.execute()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                if self.failures:
                    log.info("heartbeat.recovered", kind=self.kind, failures=self.failures)
                self.failures = 0
            except Exception as exc:  # Redis down or anything else: the loop goes on
                HEARTBEAT_ERRORS.labels(self.kind).inc()
                if self.failures % LOG_EVERY_FAILURES == 0:
                    log.warning(
                        "heartbeat.failed", kind=self.kind, failures=self.failures, error=repr(exc)
                    )
                self.failures += 1
            self._stop.wait(self.interval)


class Heartbeats(Middleware):
    """Dramatiq middleware: a worker process's heartbeat, from its boot to its shutdown.

    Only a process that boots a Worker beats (the web's and the relay's brokers never do).
    Counts the messages in progress (before/after processing, skips included) and done.
    Place it before any middleware that may skip a message, so its before-hook always runs.
    """

    def __init__(self, redis_url: str, interval: float, host: str | None = None) -> None:
        self.redis_url = redis_url
        self.interval = interval
        self.host = host
        self._lock = threading.Lock()
        self.in_progress = 0
        self.processed = 0
        self._thread: HeartbeatThread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        whitelist = getattr(worker, "consumer_whitelist", None)
        queues = whitelist or {
            q for q in broker.get_declared_queues() if q not in _companions(broker)
        }
        self._thread = HeartbeatThread(
            self.redis_url,
            kind="worker",
            interval=self.interval,
            queues=queues,
            threads=worker.worker_threads,
            report=self.report,
            host=self.host,
        )
        self._thread.start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def report(self) -> Beat:
        with self._lock:
            return Beat(in_progress=self.in_progress, processed=self.processed)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        with self._lock:
            self.in_progress += 1

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._done()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._done()

    def _done(self) -> None:
        with self._lock:
            self.in_progress = max(0, self.in_progress - 1)
            self.processed += 1


def _companions(broker: dramatiq.Broker) -> set[str]:
    declared = broker.get_declared_queues()
    return {name for q in declared for name in (dq_name(q), xq_name(q))}


@dataclass(frozen=True)
class Process:
    """One process as its heartbeat shows it."""

    key: str
    kind: str
    host: str
    pid: int
    started_at: float
    queues: tuple[str, ...]
    threads: int
    in_progress: int
    processed: int
    interval: float
    last_beat: float
    stopped_at: float | None
    status: Status
    reason: str  # "beat 2 s ago", "silent for 17 s", "stopped 40 s ago"

    @property
    def silent_seconds(self) -> float:
        return (self.stopped_at or time.time()) - self.last_beat


def status_of(last_beat: float, interval: float, stopped_at: float | None, now: float) -> Status:
    """Green within STALE_AFTER_INTERVALS intervals of the last beat, red after, grey stopped."""
    if stopped_at is not None:
        return "grey"
    return "green" if now - last_beat <= STALE_AFTER_INTERVALS * interval else "red"


def _reason(status: Status, last_beat: float, stopped_at: float | None, now: float) -> str:
    if status == "grey" and stopped_at is not None:
        return f"stopped {_ago(now - stopped_at)} ago"
    if status == "red":
        return f"silent for {_ago(now - last_beat)}"
    return f"beat {_ago(now - last_beat)} ago"


def _ago(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _parse(key: str, fields: dict[bytes, bytes], now: float) -> Process | None:
    values = {k.decode(): v.decode() for k, v in fields.items()}
    try:
        last_beat = float(values["last_beat"])
        interval = float(values["interval"])
        stopped = float(values["stopped_at"]) if "stopped_at" in values else None
        status = status_of(last_beat, interval, stopped, now)
        return Process(
            key=key,
            kind=values["kind"],
            host=values["host"],
            pid=int(values["pid"]),
            started_at=float(values["started_at"]),
            queues=tuple(q for q in values["queues"].split(",") if q),
            threads=int(values["threads"]),
            in_progress=int(values["in_progress"]),
            processed=int(values["processed"]),
            interval=interval,
            last_beat=last_beat,
            stopped_at=stopped,
            status=status,
            reason=_reason(status, last_beat, stopped, now),
        )
    except (KeyError, ValueError):  # a half-written or foreign hash: not a process
        return None


async def processes(client: aioredis.Redis, *, now: float | None = None) -> list[Process]:
    """Every process that beat within KEEP_SECONDS, by kind, host and pid.

    Raises what Redis raises (or TimeoutError after READ_TIMEOUT_SECONDS)."""
    return await asyncio.wait_for(_processes(client, now), timeout=READ_TIMEOUT_SECONDS)


async def _processes(client: aioredis.Redis, now: float | None) -> list[Process]:
    now = time.time() if now is None else now
    found_keys = cast(
        list[bytes], await client.zrangebyscore(INDEX_KEY, now - KEEP_SECONDS, "+inf")
    )
    keys = [k.decode() for k in found_keys]
    if not keys:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = await pipe.execute()
    found = [_parse(key, fields, now) for key, fields in zip(keys, hashes, strict=True) if fields]
    return sorted(
        (p for p in found if p is not None), key=lambda p: (p.kind, p.host, p.pid, p.started_at)
    )


@dataclass(frozen=True)
class Census:
    """How many processes of one kind are alive (green) and stale (red)."""

    alive: int = 0
    stale: int = 0
    stopped: int = 0


def census(found: Iterable[Process]) -> dict[str, Census]:
    """Alive, stale and stopped counts per kind (every kind listed, zeros included)."""
    counts: dict[str, list[int]] = {kind: [0, 0, 0] for kind in KINDS}
    for process in found:
        row = counts.setdefault(process.kind, [0, 0, 0])
        row[("green", "red", "grey").index(process.status)] += 1
    return {kind: Census(*row) for kind, row in counts.items()}


async def metric_families(
    client: aioredis.Redis, *, now: float | None = None
) -> list[GaugeMetricFamily]:
    """aioshop_processes_alive{kind} and aioshop_processes_stale{kind}, read from the heartbeats
    at scrape time (one value per shop). Empty when Redis does not answer (logged)."""
    try:
        found = await processes(client, now=now)
    except Exception as exc:  # a scrape must not fail because Redis is down
        log.warning("heartbeat.read_failed", error=repr(exc))
        return []
    alive = GaugeMetricFamily(
        "aioshop_processes_alive", "Workers and relays whose heartbeat is fresh.", labels=["kind"]
    )
    stale = GaugeMetricFamily(
        "aioshop_processes_stale",
        "Workers and relays silent for more than 3 heartbeat intervals (not stopped cleanly).",
        labels=["kind"],
    )
    for kind, counts in census(found).items():
        alive.add_metric([kind], counts.alive)
        stale.add_metric([kind], counts.stale)
    return [alive, stale]
