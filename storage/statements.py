"""StatementPool: connections lent one statement at a time, for the browsing reads.

asyncpg's Pool lends a connection around every `pool.fetch`; giving it back runs as a task of
its own (shielded from cancellation), under a timeout, and rearms an idle timer: a cost per
statement that showed in the uncached catalog list (`make bench-catalog` measures it; the figures
are in docs/architecture.md). A browsing read is one statement outside any transaction, so its
connection can go back the moment the statement ends: a deque of idle connections and a queue
of waiters is all the lending needs.

What keeps it safe:
- A connection is only reused after a statement that ended normally or that the server refused
  (a PostgresError: the connection is fine) and that left no transaction open. Anything else
  (cancelled, timed out, connection lost) closes it, after the server got the cancel request;
  the next statement that needs one opens a new one. A connection the server closed meanwhile
  is noticed (is_closed) and replaced. A server that is gone (or, opening a connection, no host
  of the role asked for) raises storage.errors.DatabaseUnreachable (storage.failover).
- At most `size` connections are open or opening; a statement beyond them waits its turn (FIFO),
  at most `acquire_timeout` seconds in all (waiting, then opening a connection): then it raises
  storage.errors.PoolExhausted. A waiter cancelled or timed out after being handed a connection
  (or a slot to open one) passes it on.
- A connection idle for `idle_seconds` (60, as the asyncpg pools here) is closed by one timer
  per pool, so a quiet process does not hold its connections against `max_connections`.

Writes and transactions keep asyncpg's Pool (storage.database): this is for single statements.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog

from storage import failover
from storage.errors import PoolExhausted

log = structlog.get_logger(__name__)
Connect = Callable[[], Awaitable[asyncpg.Connection]]
CLOSE_TIMEOUT_SECONDS = 5.0
IDLE_SECONDS = 60.0
ACQUIRE_TIMEOUT_SECONDS = 5.0


class OneStatement:
    """fetch/fetchrow/fetchval of a reader that runs each statement in `_run` on its own."""

    async def _run(
        self, method: str, query: str, args: tuple[Any, ...], timeout: float | None
    ) -> Any:
        raise NotImplementedError

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        result: list[Any] = await self._run("fetch", query, args, timeout)
        return result

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run("fetchrow", query, args, timeout)

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run("fetchval", query, args, timeout)


class StatementPool(OneStatement):
    """fetch/fetchrow/fetchval on up to `size` connections opened by `connect` when needed."""

    def __init__(
        self,
        connect: Connect,
        size: int,
        *,
        idle_seconds: float = IDLE_SECONDS,
        acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS,
        label: str = "read",
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self._connect = connect
        self._size = size
        self.acquire_timeout = acquire_timeout
        self.label = label
        self._idle_seconds = idle_seconds
        self._open = 0  # connections open, or being opened for a statement
        # (connection, when it went idle); taken from the right, so the left idled longest.
        self._idle: deque[tuple[asyncpg.Connection, float]] = deque()
        self._reaper: asyncio.TimerHandle | None = None
        # Each gets a connection, or None: a slot, to open a connection itself.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False
        self._closing: set[asyncio.Future[None]] = set()  # connections being closed (_discard)

    def get_size(self) -> int:
        """Connections open or opening (as asyncpg.Pool.get_size, for the metrics)."""
        return self._open

    def get_idle_size(self) -> int:
        return len(self._idle)

    async def close(self) -> None:
        """Refuse new statements, fail the waiting ones (InterfaceError, as asyncpg's Pool does)
        and close idle connections; busy ones close when their statement ends."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the pool is closed"))
        idle, self._idle = [conn for conn, _ in self._idle], deque()
        self._open -= len(idle)
        closing = [*(conn.close(timeout=CLOSE_TIMEOUT_SECONDS) for conn in idle), *self._closing]
        await asyncio.gather(*closing, return_exceptions=True)

    async def _run(
        self, method: str, query: str, args: tuple[Any, ...], timeout: float | None
    ) -> Any:
        conn = await self._take()
        try:
            result = await getattr(conn, method)(query, *args, timeout=timeout)
        except Exception as exc:
            if failover.unreachable(exc, connection_closed=conn.is_closed()):
                self._discard(conn)  # its server is gone or going (a failover): the 503 kind
                raise failover.translated(exc, self.label) from exc
            if isinstance(exc, asyncpg.PostgresError):
                self._give(conn)  # refused by the server; the connection itself is fine
            else:
                self._discard(conn)
            raise
        except BaseException:
            self._discard(conn)
            raise
        self._give(conn)
        return result

    async def _take(self) -> asyncpg.Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.acquire_timeout
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the pool is closed")
            if self._idle:
                conn, _ = self._idle.pop()  # the most recently used: its caches are warm
                if conn.is_closed():
                    self._open -= 1
                    continue
                return conn
            if self._open < self._size:
                self._open += 1
                return await self._opened(deadline)
            waiter = loop.create_future()
            self._waiters.append(waiter)
            expiry = loop.call_at(deadline, self._expire, waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())
                raise
            finally:
                expiry.cancel()
            if handed is None:
                return await self._opened(deadline)
            if not handed.is_closed():
                return handed
            self._open -= 1

    def _expire(self, waiter: asyncio.Future[asyncpg.Connection | None]) -> None:
        """A waiter's acquire timeout passed before it was handed anything."""
        if not waiter.done():
            waiter.set_exception(PoolExhausted(self.label, self.acquire_timeout))

    async def _opened(self, deadline: float) -> asyncpg.Connection:
        """Open a connection in a slot already counted in `_open`, by `deadline`; the slot is
        freed (and passed to a waiter) when opening fails."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self._connect(), max(remaining, 0.001))
        except TimeoutError:
            self._pass_on(None)
            raise PoolExhausted(self.label, self.acquire_timeout) from None
        except Exception as exc:
            self._pass_on(None)
            if (full := failover.refused(exc, self.label)) is not None:
                raise full from exc
            if failover.unreachable(exc, connection_closed=True):  # no server, or none of the role
                raise failover.translated(exc, self.label) from exc
            raise
        except BaseException:
            self._pass_on(None)
            raise

    def _give(self, conn: asyncpg.Connection) -> None:
        """A statement ended: reuse the connection if it is clean, else close it."""
        if conn.is_closed() or self._closed:
            conn.terminate()  # gone already, or the pool is closing: nothing to wait for
            self._pass_on(None)
        elif conn.is_in_transaction():
            self._discard(conn)
        else:
            self._pass_on(conn)

    def _discard(self, conn: asyncpg.Connection) -> None:
        """Close a connection that must not be lent again; its slot is free once it is closed.

        Politely, in the background: a cancelled or timed-out statement has asyncpg send the
        server a cancel request, and closing waits for it. (terminate() would drop that request,
        and the server would run the statement to its end for nobody.)
        """
        task = asyncio.ensure_future(self._close(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, conn: asyncpg.Connection) -> None:
        try:
            await conn.close(timeout=CLOSE_TIMEOUT_SECONDS)
        except Exception as exc:  # could not close politely: terminated below
            log.info("statement_pool.close_failed", error=repr(exc))
        finally:
            if not conn.is_closed():
                conn.terminate()
            self._pass_on(None)

    def _pass_on(self, conn: asyncpg.Connection | None) -> None:
        """Hand a connection (or, for None, its freed slot) to the first live waiter; else keep
        the connection idle, or free the slot."""
        while self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is None:
            self._open -= 1
        elif self._closed:
            conn.terminate()
            self._open -= 1
        else:
            loop = asyncio.get_running_loop()
            self._idle.append((conn, loop.time()))
            if self._reaper is None:
                self._reaper = loop.call_later(self._idle_seconds, self._reap)

    def _reap(self) -> None:
        """Close the connections idle for `idle_seconds`; run again while any are idle."""
        self._reaper = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        while self._idle and loop.time() - self._idle[0][1] >= self._idle_seconds:
            conn, _ = self._idle.popleft()
            self._discard(conn)
        if self._idle:
            wait = self._idle_seconds - (loop.time() - self._idle[0][1])
            self._reaper = loop.call_later(max(wait, 0.0), self._reap)
