"""Two explicit pools: `primary` for writes and the reads that decide them, `replica` to browse.

`Database.replica` is a `ReadPool` (storage.replica): it reads from the streaming replica while
the replica is up and no further behind than `replica_max_lag_seconds`, and otherwise from a
read-only primary pool.
Both of its pools set `default_transaction_read_only`, so a write sent to the replica pool fails
whichever server answers it; they are StatementPools (storage.statements), which lend a
connection per statement far more cheaply than asyncpg's Pool. Read-your-writes: `transaction()`
remembers the WAL position of the commit it made (`last_write_lsn`); `db.replica.fresh_for(lsn)`
then only uses the replica once it has replayed past that position.

One unit of work, one connection: every acquire is bounded by `database_acquire_timeout_seconds`
(PoolExhausted, which the web answers 503 with Retry-After), and a task that holds a connection
of the primary pool cannot ask that pool for a second one (NestedAcquire, at once): under load
such a task waits for a connection that only its own kind of task can give back, and with every
connection held that way nothing moves again. Code that holds a connection passes it down.

A routing decision is an object: `await db.replica.fresh_for(lsn)` returns a `Reader` pinned to
the pool it chose, used for every read of the unit of work (it only moves, for good, to the
primary when the replica fails under it: the primary has everything the replica has).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg
import structlog
from asyncpg.pool import PoolAcquireContext
from prometheus_client import Counter

from configs.settings import Settings
from storage import failover
from storage.errors import PoolExhausted
from storage.replica import GET_CURRENT_LSN as GET_CURRENT_LSN  # where callers have found it
from storage.replica import ReadPool, monitor_loop
from storage.statements import StatementPool

log = structlog.get_logger(__name__)

READ_ONLY = {"default_transaction_read_only": "on"}

DEFAULT_ACQUIRE_TIMEOUT_SECONDS = 5.0
DEFAULT_COMMAND_TIMEOUT_SECONDS = 60.0  # a statement the server never answers fails by then
ACQUIRE_TIMEOUTS = Counter(
    "aioshop_database_acquire_timeouts_total",
    "Acquires that found no free connection within DATABASE_ACQUIRE_TIMEOUT_SECONDS.",
    ["pool"],
)

T = TypeVar("T")


# The WAL position (as an integer) of the last commit made through `transaction()` in this context.
last_write_lsn: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "last_write_lsn", default=None
)


# The pools (by id) whose connection the current task holds, for NestedAcquire.
_held: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "held_pools", default=frozenset()
)


class NestedAcquire(RuntimeError):
    """A unit of work that holds a connection of a pool asked the same pool for another one.

    A programming error, raised at once whatever the load: under load that second acquire waits
    for a connection only tasks like it can give back, and once they hold every connection no
    one does. Pass the held connection down instead.
    """

    def __init__(self) -> None:
        super().__init__(
            "this task already holds a connection of this pool: pass it down instead of"
            " acquiring a second one"
        )


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]
    """asyncpg's Pool whose every acquire, including those inside fetch/execute/..., waits at most
    `acquire_timeout` seconds (then PoolExhausted) and refuses a task that already holds one of
    its connections (NestedAcquire)."""

    __slots__ = ("acquire_timeout", "label")

    def __init__(self, *args: Any, acquire_timeout: float, label: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout
        self.label = label

    def acquire(self, *, timeout: float | None = None) -> BoundedAcquire:
        return BoundedAcquire(self, self.acquire_timeout if timeout is None else timeout)


class BoundedAcquire(PoolAcquireContext):  # type: ignore[misc]
    """`async with pool.acquire()` (or `await`) for BoundedPool."""

    _token: contextvars.Token[frozenset[int]]

    async def __aenter__(self) -> asyncpg.Connection:
        pool: BoundedPool = self.pool
        if id(pool) in _held.get():
            raise NestedAcquire()
        try:
            conn: asyncpg.Connection = await super().__aenter__()
        except TimeoutError:
            self.done = True
            ACQUIRE_TIMEOUTS.labels(pool.label).inc()
            raise PoolExhausted(pool.label, self.timeout) from None
        except Exception as exc:
            if (full := failover.refused(exc, pool.label)) is not None:
                self.done = True
                raise full from exc
            if not failover.unreachable(exc, connection_closed=True):
                raise
            self.done = True  # no server, or no writable one yet (a failover)
            await pool.expire_connections()
            raise failover.translated(exc, pool.label) from exc
        self._token = _held.set(_held.get() | {id(pool)})
        return conn

    async def __aexit__(self, *exc_info: Any) -> None:
        """Release; an error that says the server is gone (or is a standby now: 25006) expires
        the pool's connections and leaves as DatabaseUnreachable (storage.failover)."""
        _held.reset(self._token)
        pool: BoundedPool = self.pool
        exc = exc_info[1]
        closed = _closed(self.connection)
        try:
            await super().__aexit__(*exc_info)
        except Exception as release_error:  # resetting a connection whose server went away
            if not failover.unreachable(release_error, connection_closed=True, writes=True):
                raise
            exc = exc if exc is not None else release_error
        if isinstance(exc, Exception) and failover.unreachable(
            exc, connection_closed=closed, writes=True
        ):
            await pool.expire_connections()
            raise failover.translated(exc, pool.label) from exc

    def __await__(self) -> Any:
        return self._acquired().__await__()

    async def _acquired(self) -> asyncpg.Connection:
        # `conn = await pool.acquire()` ... `pool.release(conn)`: bounded and checked as above;
        # not recorded as held (nothing tells when it is released).
        conn: asyncpg.Connection = await self.__aenter__()
        _held.reset(self._token)
        self.done = True
        return conn


def _closed(conn: asyncpg.Connection | None) -> bool:
    """Whether a pool's connection lost its server: closed, or already taken back by the pool
    (asyncpg releases a connection the moment the server closes it)."""
    if conn is None:
        return False
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # released on close: the proxy no longer has it
        return True


class Executor(Protocol):
    """What repositories read through: an asyncpg Pool or Connection, or a ReadPool."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...


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


async def create_pool(
    dsn: str,
    size: int,
    *,
    min_size: int = 1,
    acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_SECONDS,
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT_SECONDS,
    label: str = "primary",
    reset: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> BoundedPool:
    """One asyncpg pool, for writes and transactions (browsing reads use statement_pool); its
    acquires wait at most `acquire_timeout` s (PoolExhausted) and are never nested, a statement
    at most `command_timeout` s. A server that went away, or no writable host of a multi-host
    `dsn`, raises DatabaseUnreachable and expires the pool's connections (storage.failover).

    `reset`: what a released connection runs after asyncpg's own rollback of an unfinished
    transaction; by default asyncpg's reset query (advisory locks, cursors, LISTEN, settings),
    one more round trip per release."""
    pool = BoundedPool(
        dsn,
        acquire_timeout=acquire_timeout,
        label=label,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=min(min_size, size),
        max_size=size,
        max_queries=50_000,
        max_inactive_connection_lifetime=60,
        init=_init_connection,
        loop=None,
        timeout=acquire_timeout,  # opening a connection (every host of the DSN), within an acquire
        command_timeout=command_timeout,
        reset=reset,
    )
    await pool
    return pool


def statement_pool(
    dsn: str,
    size: int,
    *,
    acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_SECONDS,
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT_SECONDS,
    label: str = "read",
) -> StatementPool:
    """Read-only connections for single statements (browsing reads), opened when first needed:
    a replica that is down at start-up does not stop the process. The server refuses writes.
    A multi-host `dsn`'s target_session_attrs=read-write picks the primary here too (asked as
    `primary`: these connections are read-only by their own setting)."""
    target = failover.session_target(dsn, read_only=True)

    async def connect_read_only() -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn,
            server_settings=dict(READ_ONLY),
            timeout=acquire_timeout,
            command_timeout=command_timeout,
            target_session_attrs=target,
        )
        await _init_connection(conn)
        return conn

    return StatementPool(connect_read_only, size, acquire_timeout=acquire_timeout, label=label)


async def no_reset(conn: asyncpg.Connection) -> None:
    """A pool's `reset` that runs nothing beyond asyncpg's rollback of an unfinished
    transaction: for connections whose users leave no session state (no session advisory lock,
    open cursor, LISTEN or SET), to whom asyncpg's reset query is one more round trip per release
    for nothing."""


@asynccontextmanager
async def open_database(
    settings: Settings,
    *,
    monitor: bool = True,
    reset: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> AsyncIterator[Database]:
    """Open both pools (and the replica monitor); closes everything on exit, even on error.
    `reset`: the primary pool's (create_pool)."""
    size = settings.database_pool_size
    acquire = settings.database_acquire_timeout_seconds
    command = settings.database_command_timeout_seconds
    url = str(settings.database_url)
    primary = await create_pool(
        url, size, acquire_timeout=acquire, command_timeout=command, reset=reset
    )
    pools: list[StatementPool | asyncpg.Pool] = [primary]
    monitor_task: asyncio.Task[None] | None = None
    try:
        timeouts = {"acquire_timeout": acquire, "command_timeout": command}
        fallback = statement_pool(url, size, label="primary_read", **timeouts)
        pools.append(fallback)
        replica_pool = None
        if settings.replica_database_url is not None:
            replica_url = str(settings.replica_database_url)
            replica_pool = statement_pool(replica_url, size, label="replica", **timeouts)
            pools.append(replica_pool)
        db = Database(
            primary=primary,
            replica=ReadPool(fallback, replica_pool, settings.replica_max_lag_seconds),
        )
        if replica_pool is not None:
            await db.replica.check(fallback)
            if monitor:
                monitor_task = asyncio.create_task(
                    monitor_loop(db.replica, settings.replica_check_interval_seconds),
                    name="replica-monitor",
                )
        yield db
    finally:
        if monitor_task is not None:
            monitor_task.cancel()
            with suppress(asyncio.CancelledError):
                await monitor_task
        for pool in reversed(pools):
            await pool.close()
