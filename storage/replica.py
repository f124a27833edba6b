"""Browsing reads: the ReadPool, which reads from the streaming replica while it is up and fresh,
else from a read-only primary pool, and the monitor that decides which.

`Database.replica` (storage.database) is a ReadPool. The monitor (`monitor_loop()`, every
`replica_check_interval_seconds`) measures the replica's lag from the primary's WAL position and
the replica's replay position; a replica down, lagging past `replica_max_lag_seconds` or of unknown
lag is not used. While the primary cannot be reached (a failover), a replica that was fresh keeps
serving (`_check_alone`). A routing decision is a `Reader`: every read of a unit of work goes to
the pool chosen when it was made, and moves for good to the primary only when the replica fails
under it. `fresh_for(lsn)` gives read-your-writes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import structlog
from prometheus_client import Counter

from storage.errors import DatabaseUnreachable
from storage.statements import OneStatement, StatementPool

if TYPE_CHECKING:
    from storage.database import Executor

log = structlog.get_logger(__name__)

REPLICA_CHECK_ERRORS = Counter(
    "aioshop_replica_check_errors_total",
    "Replica checks that failed (the replica is not used until one succeeds), by error.",
    ["error"],
)
DB_READS = Counter(
    "aioshop_db_reads_total",
    "Browsing reads by the pool that answered: replica, or primary (no usable replica, a read"
    " that needed a fresher one, or a replica that failed under it).",
    ["pool"],
)
_reads = {pool: DB_READS.labels(pool) for pool in ("replica", "primary")}

GET_CURRENT_LSN = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
GET_REPLAY_LSN = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"


@dataclass
class ReplicaState:
    """What the monitor last learned about the replica."""

    configured: bool
    healthy: bool = False
    replay_lsn: int | None = None
    lag_seconds: float | None = None  # None: not measured (yet), so not fresh
    checked_at: float | None = None
    last_error: str | None = None
    # (monotonic time, primary LSN) samples, to turn a replay position into a lag in seconds.
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))

    @property
    def usable(self) -> bool:
        return self.configured and self.healthy


# Where browsing reads go: open_database gives StatementPools (storage.statements); tests may
# give an asyncpg Pool.
ReadSource: TypeAlias = StatementPool | asyncpg.Pool


class ReadPool:
    """Browsing reads: the replica when it is healthy and fresh, else a read-only primary pool.

    Used directly as an Executor, each statement is routed on its own (one statement, one
    decision). A unit of work with several reads takes one decision for all of them:
    `reader = await pool.fresh_for(lsn)`.
    """

    def __init__(
        self,
        fallback: ReadSource,
        replica: ReadSource | None,
        max_lag_seconds: float,
    ) -> None:
        self.fallback = fallback
        self.replica_pool = replica
        self.max_lag_seconds = max_lag_seconds
        self.state = ReplicaState(configured=replica is not None)

    @property
    def current(self) -> ReadSource:
        """The pool a browsing read uses right now."""
        if self.replica_pool is not None and self.state.usable:
            return self.replica_pool
        return self.fallback

    @property
    def source(self) -> str:
        """'replica' or 'primary': where `current` points (for logs, metrics and headers)."""
        return "replica" if self.current is self.replica_pool else "primary"

    def reader(self) -> Reader:
        """The routing decision for reads that need no particular commit: the pool `current`
        points at now, kept for every read made through the Reader."""
        return Reader(self, self.current is self.replica_pool)

    async def fresh_for(self, min_lsn: int | None) -> Reader:
        """The routing decision for a unit of work whose reads must include the commit at
        `min_lsn` (read-your-writes): the replica when it is usable and has replayed that far,
        else the primary. Use the Reader for every read of the unit of work."""
        decided = self.reader()
        if min_lsn is None or decided.source == "primary":
            return decided
        if self.state.replay_lsn is not None and self.state.replay_lsn >= min_lsn:
            return decided
        assert self.replica_pool is not None
        try:
            replay = await self.replica_pool.fetchval(GET_REPLAY_LSN, timeout=REPLAY_CHECK_TIMEOUT)
        except Exception as exc:  # the replica cannot say: the primary can answer
            self._mark_down(exc)
            return Reader(self, False)
        if replay is not None and int(replay) >= min_lsn:
            self.state.replay_lsn = max(self.state.replay_lsn or 0, int(replay))
            return decided
        return Reader(self, False)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        result: list[Any] = await self.reader().fetch(query, *args, timeout=timeout)
        return result

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self.reader().fetchrow(query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self.reader().fetchval(query, *args, timeout=timeout)

    def _mark_down(self, exc: BaseException) -> None:
        if self.state.healthy:
            log.warning("replica.unavailable", error=repr(exc))
        self.state.healthy = False
        self.state.last_error = repr(exc)

    async def check(self, primary: Executor, timeout: float = 2.0) -> ReplicaState:
        """Measure the replica once: reachable, replay position, lag. Never raises (but
        CancelledError): whatever fails marks the replica unusable, logged and counted."""
        state = self.state
        if self.replica_pool is None:
            return state
        now = time.monotonic()
        state.checked_at = now
        try:
            # wait_for, not only the statement's timeout: opening a connection to a server that
            # accepts and never answers would otherwise wait asyncpg's 60 s (start-up included).
            current = await asyncio.wait_for(primary.fetchval(GET_CURRENT_LSN), timeout)
        except DatabaseUnreachable as exc:
            return await self._check_alone(exc, timeout)
        except Exception as exc:
            return self._check_failed(exc)
        try:
            primary_lsn = int(current)
            state.samples.append((now, primary_lsn))
            replay = await asyncio.wait_for(self.replica_pool.fetchval(GET_REPLAY_LSN), timeout)
        except Exception as exc:
            return self._check_failed(exc)
        if state.last_error is not None and state.healthy:
            log.info("replica.primary_back")  # it served alone (_check_alone) until now
        state.last_error = None
        replay_lsn = int(replay) if replay is not None else None
        state.replay_lsn = replay_lsn
        state.lag_seconds = _lag_seconds(state.samples, replay_lsn, now)
        fresh = state.lag_seconds is not None and state.lag_seconds <= self.max_lag_seconds
        if fresh != state.healthy:
            event = "replica.recovered" if fresh else "replica.lagging"
            lag = round(state.lag_seconds, 3) if state.lag_seconds is not None else None
            log.info(event, lag_seconds=lag, replay_lsn=replay_lsn)
        state.healthy = fresh
        return state

    def _check_failed(self, exc: BaseException) -> ReplicaState:
        state = self.state
        REPLICA_CHECK_ERRORS.labels(type(exc).__name__).inc()
        if state.healthy or state.last_error is None:
            log.warning("replica.check_failed", error=repr(exc))
        self._mark_down(exc)
        state.lag_seconds = None
        return state

    async def _check_alone(
        self, primary_error: DatabaseUnreachable, timeout: float
    ) -> ReplicaState:
        """The primary cannot be reached (down, or a failover under way). A replica that was
        fresh at the last check and still answers as a standby keeps the browsing reads: it has
        what the primary had sent it, and the storefront stays up while writes get 503. Anything
        else marks it down as any failed check does."""
        state = self.state
        assert self.replica_pool is not None
        if not state.healthy:
            return self._check_failed(primary_error)
        try:
            replay = await asyncio.wait_for(self.replica_pool.fetchval(GET_REPLAY_LSN), timeout)
        except Exception as exc:
            return self._check_failed(exc)
        if replay is None:  # not a standby: nothing says how fresh it is
            return self._check_failed(primary_error)
        if state.last_error is None:
            log.warning("replica.serving_alone", primary_error=str(primary_error))
        REPLICA_CHECK_ERRORS.labels(type(primary_error).__name__).inc()
        state.last_error = repr(primary_error)
        state.replay_lsn = max(state.replay_lsn or 0, int(replay))
        return state


REPLAY_CHECK_TIMEOUT = 2.0


class Reader(OneStatement):
    """One routing decision: every read through it goes to the pool chosen when it was made.

    Only a replica that fails under it (cannot connect, no connection free, the statement lost
    its server) moves it, for good, to the primary, which has everything the replica has; the
    replica is marked down for every other reader at the same time. A statement the server
    refuses (bad SQL, a write) fails the same on the primary and raises its error.
    """

    def __init__(self, pool: ReadPool, replica: bool) -> None:
        self._pool = pool
        self._replica = replica and pool.replica_pool is not None

    @property
    def source(self) -> str:
        """'replica' or 'primary': where this reader's reads go."""
        return "replica" if self._replica else "primary"

    async def _run(
        self, method: str, query: str, args: tuple[Any, ...], timeout: float | None
    ) -> Any:
        fallback = self._pool.fallback
        replica = self._pool.replica_pool
        if not self._replica or replica is None:
            _reads["primary"].inc()
            return await getattr(fallback, method)(query, *args, timeout=timeout)
        try:
            answer = await getattr(replica, method)(query, *args, timeout=timeout)
            _reads["replica"].inc()
            return answer
        except Exception as replica_failure:
            # Whatever the replica did (lost, refused the connection, cancelled the statement for
            # a recovery conflict, or the query is bad), the primary answers: if it refuses too,
            # the query was at fault and its error is the one raised, the replica kept.
            _reads["primary"].inc()
            result = await getattr(fallback, method)(query, *args, timeout=timeout)
            self._replica = False
            self._pool._mark_down(replica_failure)
            return result


def _lag_seconds(
    samples: Sequence[tuple[float, int]], replay_lsn: int | None, now: float
) -> float | None:
    """An upper bound of the replay lag: 0 when the replica has replayed what the primary had
    at the newest sample, else the time since the newest sample whose position it has reached.
    None (unknown, so not fresh) when it has reached none of them: after a start, a replica far
    behind is never taken for a fresh one because there is no older sample to compare with."""
    if replay_lsn is None or not samples:
        return None
    newest_lsn = samples[-1][1]
    if replay_lsn >= newest_lsn:
        return 0.0
    for sampled_at, primary_lsn in reversed(samples):
        if primary_lsn <= replay_lsn:
            return max(0.0, now - sampled_at)
    return None


async def fresh_reader(reader: Executor, min_lsn: int | None) -> Executor:
    """`reader`, or for a ReadPool its Reader whose data includes `min_lsn` (ReadPool.fresh_for);
    any other executor (a primary pool or connection, a Reader already decided) is kept."""
    if isinstance(reader, ReadPool):
        return await reader.fresh_for(min_lsn)
    return reader


async def monitor_loop(pool: ReadPool, interval: float) -> None:
    """Check the replica every `interval` s until cancelled. The primary's position is read
    through the read-only primary pool, so a busy write pool cannot hold the checks up."""
    while True:
        await asyncio.sleep(interval)
        try:
            await pool.check(pool.fallback)
        except Exception as exc:  # check() catches everything; this is the loop's own guard
            REPLICA_CHECK_ERRORS.labels(type(exc).__name__).inc()
            log.exception("replica.monitor_failed")
            pool._mark_down(exc)
