"""The shop's own short history of a few numbers, kept in Redis, for the /ops charts.

Time is cut into slots of HISTORY_SLOT_SECONDS (slot n is [n*len, (n+1)*len)). Every web process
runs a `Sampler`; once slot n has ended, the first sampler to claim it (`SET NX` on the slot) asks
each probe for its value over that slot and adds it to the series' sorted set (score: the slot),
so N web processes record each slot once. Series keep KEEP_SECONDS (two hours); a probe that
fails leaves a gap in its series only.

Request times are per process: each web process buckets the durations of its requests per slot
in memory (`RequestTimes.observe`, fed by the request middleware) and, at the start of the next
slot, adds its counts to the slot's shared buckets in Redis (HINCRBY); the sampler that records
the slot a little later computes the 95th percentile from the merged buckets (as Prometheus's
`histogram_quantile` does: linear within the bucket).

Adding a series is one line: `probes["queue_depth"] = lambda slot: ...` (an async callable of
the `Slot`, giving a number, or None for "no value").
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter

from storage import orders, outbox
from storage.database import Database

log = structlog.get_logger(__name__)

KEEP_SECONDS = 2 * 3600
REDIS_TIMEOUT_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 5.0
# Upper bounds of the request-time buckets, in seconds (the last one catches the rest).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 10.0, math.inf,
)  # fmt: skip
# After the buckets, a request's counts hold its 5xx answers (a field of its own in Redis).
SERVER_ERRORS_INDEX = len(LATENCY_BUCKETS)
SERVER_ERRORS_FIELD = "5xx"
# A process keeps at most this many slots of request times in memory (flushes failing).
MAX_BUFFERED_SLOTS = 5

ORDERS_PER_MINUTE = "orders_per_minute"
QUEUE_DEPTH = "queue_depth"
ACTOR_FAILURES = "actor_failures"
OUTBOX_OLDEST_AGE = "outbox_oldest_age_seconds"
REPLICA_LAG = "replica_lag_seconds"
REQUEST_P95 = "request_p95_seconds"

SAMPLER_ERRORS = Counter(
    "aioshop_history_errors_total",
    "Failures of the /ops history sampler (a probe, Redis), by stage.",
    ["stage"],
)


@dataclass(frozen=True)
class Slot:
    """One slot of the history: [start, end) in Unix seconds."""

    index: int
    seconds: int

    @property
    def start(self) -> float:
        return float(self.index * self.seconds)

    @property
    def end(self) -> float:
        return float((self.index + 1) * self.seconds)

    @classmethod
    def at(cls, when: float, seconds: int) -> Slot:
        return cls(int(when // seconds), seconds)


Probe = Callable[[Slot], Awaitable[float | None]]


@dataclass(frozen=True)
class Point:
    """A value at a time (the end of its slot); None is a gap."""

    time: float
    value: float | None


def _prefix(slot_seconds: int) -> str:
    return f"aioshop:history:{slot_seconds}:"


def series_key(name: str, slot_seconds: int) -> str:
    return f"{_prefix(slot_seconds)}series:{name}"


def latency_key(slot: Slot) -> str:
    return f"{_prefix(slot.seconds)}latency:{slot.index}"


def claim_key(slot: Slot) -> str:
    return f"{_prefix(slot.seconds)}claim:{slot.index}"


class RequestTimes:
    """This process's request durations, bucket counts per slot, until flushed to Redis."""

    def __init__(self, slot_seconds: int) -> None:
        self.slot_seconds = slot_seconds
        self._slots: dict[int, list[int]] = {}

    def observe(self, seconds: float, status: int = 200, now: float | None = None) -> None:
        """Count one request of `seconds` (and whether it answered 5xx) in the slot of `now`
        (cheap: no I/O)."""
        index = int((time.time() if now is None else now) // self.slot_seconds)
        counts = self._slots.get(index)
        if counts is None:
            counts = self._slots[index] = [0] * (len(LATENCY_BUCKETS) + 1)
            for old in sorted(self._slots)[:-MAX_BUFFERED_SLOTS]:
                del self._slots[old]
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if status >= 500:
            counts[SERVER_ERRORS_INDEX] += 1

    def take_ended(self, now: float) -> dict[int, list[int]]:
        """Remove and return the counts of the slots that ended before `now`."""
        current = int(now // self.slot_seconds)
        ended = {i: c for i, c in self._slots.items() if i < current}
        for index in ended:
            del self._slots[index]
        return ended


async def flush_request_times(client: aioredis.Redis, times: RequestTimes, now: float) -> None:
    """Add this process's counts of ended slots to the shared buckets (raises on Redis errors;
    the counts taken are then lost, which only thins that slot's sample)."""
    ended = times.take_ended(now)
    if not ended:
        return
    async with client.pipeline(transaction=False) as pipe:
        for index, counts in ended.items():
            key = latency_key(Slot(index, times.slot_seconds))
            for bucket, count in enumerate(counts):
                if count:
                    field = SERVER_ERRORS_FIELD if bucket == SERVER_ERRORS_INDEX else str(bucket)
                    pipe.hincrby(key, field, count)
            pipe.expire(key, KEEP_SECONDS)
        await asyncio.wait_for(pipe.execute(), timeout=REDIS_TIMEOUT_SECONDS)


def quantile(q: float, counts: Mapping[int, int]) -> float | None:
    """The q-quantile of bucket counts (bucket index -> count), linear within its bucket; None
    without any count. Past the last finite bound it is that bound (as Prometheus answers)."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket, upper in enumerate(LATENCY_BUCKETS):
        count = counts.get(bucket, 0)
        if count and seen + count >= rank:
            if math.isinf(upper):
                return LATENCY_BUCKETS[-2]
            lower = LATENCY_BUCKETS[bucket - 1] if bucket else 0.0
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return LATENCY_BUCKETS[-2]


async def merged_p95(client: aioredis.Redis, slot: Slot) -> float | None:
    """The 95th percentile of the slot's request times, every web process's counts merged."""
    raw = await asyncio.wait_for(client.hgetall(latency_key(slot)), timeout=REDIS_TIMEOUT_SECONDS)
    return quantile(0.95, {int(k): int(v) for k, v in raw.items() if k.isdigit()})


async def server_errors(
    client: aioredis.Redis, *, slot_seconds: int, now: float, window: float = 300
) -> int:
    """5xx answers of every web process in the slots that ended within `window` s of `now`
    (the slot in progress is not flushed yet)."""
    last = Slot.at(now, slot_seconds).index - 1
    first = max(Slot.at(now - window, slot_seconds).index, last - 600)
    async with client.pipeline(transaction=False) as pipe:
        for index in range(first, last + 1):
            pipe.hget(latency_key(Slot(index, slot_seconds)), SERVER_ERRORS_FIELD)
        found = await asyncio.wait_for(pipe.execute(), timeout=REDIS_TIMEOUT_SECONDS)
    return sum(int(value) for value in found if value is not None)


def standard_probes(db: Database, client: aioredis.Redis) -> dict[str, Probe]:
    """The series a web process can measure itself (queue depth and actor failures join them
    from the queue modules)."""

    async def orders_per_minute(slot: Slot) -> float:
        placed = await orders.count_placed(db.primary, slot.start, slot.end)
        return placed * 60.0 / slot.seconds

    async def outbox_oldest_age(slot: Slot) -> float:
        return (await outbox.backlog(db.primary)).oldest_age_seconds

    async def replica_lag(slot: Slot) -> float | None:
        state = db.replica.state
        return state.lag_seconds if state.configured else None

    async def request_p95(slot: Slot) -> float | None:
        return await merged_p95(client, slot)

    return {
        ORDERS_PER_MINUTE: orders_per_minute,
        OUTBOX_OLDEST_AGE: outbox_oldest_age,
        REPLICA_LAG: replica_lag,
        REQUEST_P95: request_p95,
    }


class Sampler:
    """Records each ended slot once for the whole shop; flushes this process's request times."""

    def __init__(
        self,
        client: aioredis.Redis,
        probes: Mapping[str, Probe],
        *,
        slot_seconds: int,
        request_times: RequestTimes | None = None,
    ) -> None:
        self.client = client
        self.probes = probes
        self.slot_seconds = slot_seconds
        self.request_times = request_times
        # Within each slot: flush at this offset, record the previous slot at the later one.
        self.flush_offset = min(1.0, slot_seconds * 0.1)
        self.record_offset = min(5.0, slot_seconds * 0.4)

    async def flush(self, now: float) -> None:
        if self.request_times is not None:
            await flush_request_times(self.client, self.request_times, now)

    async def record(self, slot: Slot) -> bool:
        """Claim `slot` and record every probe's value for it; False if another sampler has.
        A failing probe is logged, counted and leaves a gap; Redis errors are raised."""
        claimed = await asyncio.wait_for(
            self.client.set(claim_key(slot), b"1", nx=True, ex=KEEP_SECONDS),
            timeout=REDIS_TIMEOUT_SECONDS,
        )
        if not claimed:
            return False
        names = list(self.probes)
        values = await asyncio.gather(*(self._measure(name, slot) for name in names))
        async with self.client.pipeline(transaction=False) as pipe:
            for name, value in zip(names, values, strict=True):
                key = series_key(name, self.slot_seconds)
                if value is not None:
                    pipe.zadd(key, {f"{slot.index}:{value!r}": slot.index})
                pipe.zremrangebyscore(key, "-inf", slot.index - KEEP_SECONDS // self.slot_seconds)
                pipe.expire(key, KEEP_SECONDS)
            await asyncio.wait_for(pipe.execute(), timeout=REDIS_TIMEOUT_SECONDS)
        return True

    async def _measure(self, name: str, slot: Slot) -> float | None:
        try:
            value = await asyncio.wait_for(self.probes[name](slot), timeout=PROBE_TIMEOUT_SECONDS)
        except Exception as exc:
            SAMPLER_ERRORS.labels("probe").inc()
            log.warning("history.probe_failed", series=name, error=repr(exc))
            return None
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: at each slot's start flush, a little later record the slot that ended.
        Survives any exception (logged, counted in aioshop_history_errors_total)."""
        while not stop.is_set():
            now = time.time()
            current = Slot.at(now, self.slot_seconds)
            await self._step("flush", self.flush(now))
            await _sleep_or_stop(stop, current.start + self.record_offset - time.time())
            if stop.is_set():
                return
            await self._step("record", self.record(Slot(current.index - 1, self.slot_seconds)))
            await _sleep_or_stop(stop, current.end + self.flush_offset - time.time())

    async def _step(self, stage: str, work: Awaitable[object]) -> None:
        try:
            await work
        except Exception as exc:  # Redis down, anything: the next slot tries again
            SAMPLER_ERRORS.labels(stage).inc()
            log.warning("history.failed", stage=stage, error=repr(exc))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def read_series(
    client: aioredis.Redis, name: str, *, slot_seconds: int, since: float, until: float
) -> list[Point]:
    """One point per slot that ended in (since, until], at the slot's end; None where no value
    was recorded. Raises what Redis raises (or TimeoutError)."""
    first = Slot.at(since, slot_seconds).index
    last = Slot.at(until, slot_seconds).index - 1
    if last < first:
        return []
    raw = cast(
        list[bytes],
        await asyncio.wait_for(
            client.zrangebyscore(series_key(name, slot_seconds), first, last),
            timeout=REDIS_TIMEOUT_SECONDS,
        ),
    )
    values: dict[int, float] = {}
    for member in raw:
        index, _, value = member.decode().partition(":")
        values[int(index)] = float(value)
    return [Point(Slot(i, slot_seconds).end, values.get(i)) for i in range(first, last + 1)]
