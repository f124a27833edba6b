"""Two explicit pools: `primary` for writes and the reads that decide them, `replica` to browse.

`Database.replica` is a `ReadPool`: it reads from the streaming replica while the replica is up and
no further behind than `replica_max_lag_seconds`, and otherwise from a read-only primary pool.
Both of its pools set `default_transaction_read_only`, so a write sent to the replica pool fails
whichever server answers it; they are StatementPools (storage.statements), which lend a
connection per statement far more cheaply than asyncpg's Pool. Read-your-writes: `transaction()`
remembers the WAL position of the commit it made (`last_write_lsn`); `db.replica.fresh_for(lsn)`
then only uses the replica once it has replayed past that position.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, TypeVar

import asyncpg
import structlog

from configs.settings import Settings
from storage.statements import StatementPool

log = structlog.get_logger(__name__)

READ_ONLY = {"default_transaction_read_only": "on"}

# Errors that mean "this server cannot answer now", as opposed to a bad query.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
)

T = TypeVar("T")
GET_CURRENT_LSN = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
GET_REPLAY_LSN = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"

# The WAL position (as an integer) of the last commit made through `transaction()` in this context.
last_write_lsn: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "last_write_lsn", default=None
)


class Executor(Protocol):
    """What repositories read through: an asyncpg Pool or Connection, or a ReadPool."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...


@dataclass
class ReplicaState:
    """What the monitor last learned about the replica."""

    configured: bool
    healthy: bool = False
    replay_lsn: int | None = None
    lag_seconds: float | None = None
    checked_at: float | None = None
    # (monotonic time, primary LSN) samples, to turn a replay position into a lag in seconds.
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))

    @property
    def usable(self) -> bool:
        return self.configured and self.healthy


# Where browsing reads go: open_database gives StatementPools (storage.statements); tests may
# give an asyncpg Pool.
ReadSource: TypeAlias = StatementPool | asyncpg.Pool


class ReadPool:
    """Browsing reads: the replica when it is healthy and fresh, else a read-only primary pool."""

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

    async def fresh_for(self, min_lsn: int | None) -> Executor:
        """An executor whose data includes the commit at `min_lsn` (read-your-writes)."""
        fallback: Executor = self.fallback
        if min_lsn is None or self.current is self.fallback:
            return self
        if self.state.replay_lsn is not None and self.state.replay_lsn >= min_lsn:
            return self
        try:
            replay = await self._run("fetchval", GET_REPLAY_LSN)
        except UNAVAILABLE:
            return fallback
        if replay is not None and int(replay) >= min_lsn:
            self.state.replay_lsn = int(replay)
            return self
        return fallback

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        result: list[Any] = await self._run("fetch", query, *args, timeout=timeout)
        return result

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run("fetchrow", query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run("fetchval", query, *args, timeout=timeout)

    async def _run(self, method: str, query: str, *args: Any, timeout: float | None = None) -> Any:
        pool = self.current
        try:
            return await getattr(pool, method)(query, *args, timeout=timeout)
        except UNAVAILABLE as exc:
            if pool is self.fallback:
                raise
            # The replica went away between two checks: say so now, answer from the primary.
            self._mark_down(exc)
            return await getattr(self.fallback, method)(query, *args, timeout=timeout)

    def _mark_down(self, exc: BaseException) -> None:
        if self.state.healthy:
            log.warning("replica.unavailable", error=repr(exc))
        self.state.healthy = False

    async def check(self, primary: asyncpg.Pool, timeout: float = 2.0) -> ReplicaState:
        """Measure the replica once: reachable, replay position, lag. Never raises; each
        statement, with the connection it may have to open first, gets `timeout` seconds."""
        if self.replica_pool is None:
            return self.state
        state = self.state
        now = time.monotonic()
        try:
            # wait_for, not only the statement's timeout: opening a connection to a server that
            # accepts and never answers would otherwise wait asyncpg's 60 s (start-up included).
            current = await asyncio.wait_for(primary.fetchval(GET_CURRENT_LSN), timeout)
            primary_lsn = int(current)
            state.samples.append((now, primary_lsn))
            replay = await asyncio.wait_for(self.replica_pool.fetchval(GET_REPLAY_LSN), timeout)
        except UNAVAILABLE as exc:
            self._mark_down(exc)
            state.lag_seconds = None
            state.checked_at = now
            return state
        replay_lsn = int(replay) if replay is not None else None
        state.replay_lsn = replay_lsn
        state.lag_seconds = _lag_seconds(state.samples, replay_lsn, now)
        fresh = state.lag_seconds <= self.max_lag_seconds
        if fresh != state.healthy:
            event = "replica.recovered" if fresh else "replica.lagging"
            log.info(event, lag_seconds=round(state.lag_seconds, 3), replay_lsn=replay_lsn)
        state.healthy = fresh
        state.checked_at = now
        return state


def _lag_seconds(samples: Sequence[tuple[float, int]], replay_lsn: int | None, now: float) -> float:
    """Seconds since the primary first had WAL the replica has not replayed (0 when caught up)."""
    if replay_lsn is None:
        return float("inf")
    for sampled_at, primary_lsn in samples:
        if primary_lsn > replay_lsn:
            return now - sampled_at
    return 0.0


async def fresh_reader(reader: Executor, min_lsn: int | None) -> Executor:
    """`reader`, or for a ReadPool its executor whose data includes `min_lsn` (ReadPool.fresh_for);
    any other executor (a primary pool or connection) is always fresh."""
    if min_lsn is not None and isinstance(reader, ReadPool):
        return await reader.fresh_for(min_lsn)
    return reader


@dataclass(frozen=True)
class Database:
    """The primary pool (read-write) and the browsing ReadPool."""

    primary: asyncpg.Pool
    replica: ReadPool


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on the primary; after commit, `last_write_lsn` holds the commit's position."""
    async with db.primary.acquire() as conn:
        async with conn.transaction():
            yield conn
        lsn = await conn.fetchval(GET_CURRENT_LSN)
        last_write_lsn.set(int(lsn))


# Failures PostgreSQL asks the client to retry: the transaction lost a deadlock or a
# serialization conflict, and nothing of it was written.
RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


async def retrying_transaction(
    db: Database, work: Callable[[asyncpg.Connection], Awaitable[T]], *, attempts: int = 3
) -> T:
    """`work(conn)` in a transaction on the primary, run again (up to `attempts` times) when
    PostgreSQL aborts it as a deadlock victim or a serialization failure, so such a conflict
    never reaches the user as an error. `last_write_lsn` is set as by `transaction`."""
    for attempt in range(1, attempts + 1):
        try:
            async with transaction(db) as conn:
                return await work(conn)
        except RETRYABLE as exc:
            if attempt == attempts:
                raise
            log.info("transaction.retry", error=type(exc).__name__, attempt=attempt)
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog"
    )


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_loads(value: str) -> Any:
    return json.loads(value)


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pools (for CLI commands and tests)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


async def create_pool(dsn: str, size: int, *, min_size: int = 1) -> asyncpg.Pool:
    """One asyncpg pool, for writes and transactions (browsing reads use statement_pool)."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min(min_size, size),
        max_size=size,
        init=_init_connection,
        max_inactive_connection_lifetime=60,
    )
    return pool


def statement_pool(dsn: str, size: int) -> StatementPool:
    """Read-only connections for single statements (browsing reads), opened when first needed:
    a replica that is down at start-up does not stop the process. The server refuses writes."""

    async def connect_read_only() -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(dsn, server_settings=dict(READ_ONLY))
        await _init_connection(conn)
        return conn

    return StatementPool(connect_read_only, size)


@asynccontextmanager
async def open_database(settings: Settings, *, monitor: bool = True) -> AsyncIterator[Database]:
    """Open both pools (and the replica monitor); closes everything on exit, even on error."""
    size = settings.database_pool_size
    primary = await create_pool(str(settings.database_url), size)
    pools: list[StatementPool | asyncpg.Pool] = [primary]
    monitor_task: asyncio.Task[None] | None = None
    try:
        fallback = statement_pool(str(settings.database_url), size)
        pools.append(fallback)
        replica_pool = None
        if settings.replica_database_url is not None:
            replica_pool = statement_pool(str(settings.replica_database_url), size)
            pools.append(replica_pool)
        db = Database(
            primary=primary,
            replica=ReadPool(fallback, replica_pool, settings.replica_max_lag_seconds),
        )
        if replica_pool is not None:
            await db.replica.check(primary)
            if monitor:
                monitor_task = asyncio.create_task(
                    _monitor(db, settings.replica_check_interval_seconds), name="replica-monitor"
                )
        yield db
    finally:
        if monitor_task is not None:
            monitor_task.cancel()
            with suppress(asyncio.CancelledError):
                await monitor_task
        for pool in reversed(pools):
            await pool.close()


async def _monitor(db: Database, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await db.replica.check(db.primary)
