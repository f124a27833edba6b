"""StatementPool against a real PostgreSQL: the connection limit, reuse after refused statements,
no reuse of a connection a statement left in doubt (cancelled, timed out, killed), and acquires
bounded by the acquire timeout (here and in the write pool)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from storage.database import READ_ONLY, create_pool, statement_pool
from storage.errors import PoolExhausted
from storage.statements import StatementPool
from tests.support.db import fetch

NAME = "aioshop-statement-pool-test"


def pool_for(dsn: str, size: int, **options: float) -> StatementPool:
    async def connect() -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn, server_settings={**READ_ONLY, "application_name": NAME}
        )
        return conn

    return StatementPool(connect, size, **options)


async def backends(dsn: str) -> list[int]:
    rows = await fetch(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
        NAME,
    )
    return [row["pid"] for row in rows]


async def test_sixty_statements_share_three_connections(fresh_db) -> None:
    pool = pool_for(fresh_db, 3)
    try:
        pids = await asyncio.gather(
            *(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.01)") for _ in range(60))
        )
        assert len(set(pids)) == 3 and pool.get_size() == 3 and pool.get_idle_size() == 3
        assert len(await backends(fresh_db)) == 3
    finally:
        await pool.close()
    assert pool.get_size() == 0


async def test_a_refused_statement_keeps_its_connection_and_a_write_is_refused(fresh_db) -> None:
    pool = statement_pool(fresh_db, 1)
    try:
        first = await pool.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(asyncpg.UndefinedTableError):
            await pool.fetch("SELECT * FROM no_such_table")
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await pool.fetchval("DELETE FROM products")
        assert await pool.fetchval("SELECT pg_backend_pid()") == first
        assert await pool.fetchval("SELECT '{\"a\": 1}'::jsonb") == {"a": 1}  # the codecs
    finally:
        await pool.close()


async def test_a_cancelled_or_timed_out_statement_never_lends_its_connection_again(
    fresh_db,
) -> None:
    pool = pool_for(fresh_db, 1)
    try:
        first = await pool.fetchval("SELECT pg_backend_pid()")
        slow = asyncio.ensure_future(pool.fetch("SELECT pg_sleep(30)"))
        waiting = asyncio.ensure_future(pool.fetchval("SELECT pg_backend_pid()"))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # one connection: the second statement waits its turn
        slow.cancel()
        second = await asyncio.wait_for(waiting, 10)
        assert second != first  # the waiter got a new connection, not the cancelled one
        with pytest.raises(TimeoutError):
            await pool.fetch("SELECT pg_sleep(30)", timeout=0.2)
        third = await pool.fetchval("SELECT pg_backend_pid()")
        assert third not in (first, second) and pool.get_size() == 1
        await asyncio.sleep(0.2)
        assert await backends(fresh_db) == [third]  # the others are gone from the server
    finally:
        await pool.close()


async def test_a_connection_the_server_killed_is_replaced(fresh_db) -> None:
    pool = pool_for(fresh_db, 2)
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        await fetch(fresh_db, "SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.3)  # the client sees the socket close
        assert await pool.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await pool.close()


async def test_a_cancelled_waiter_passes_its_turn_on_and_close_fails_the_rest(fresh_db) -> None:
    pool = pool_for(fresh_db, 1)
    busy = asyncio.ensure_future(pool.fetch("SELECT pg_sleep(0.5)"))
    await asyncio.sleep(0.1)
    gone = asyncio.ensure_future(pool.fetchval("SELECT 1"))
    kept = asyncio.ensure_future(pool.fetchval("SELECT 2"))
    await asyncio.sleep(0.1)
    gone.cancel()
    assert await asyncio.wait_for(kept, 10) == 2 and (await busy) is not None
    last = asyncio.ensure_future(pool.fetch("SELECT pg_sleep(0.5)"))
    await asyncio.sleep(0.1)
    refused = asyncio.ensure_future(pool.fetchval("SELECT 3"))
    await asyncio.sleep(0.1)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await refused
    await last  # a statement under way finishes; its connection then closes
    assert pool.get_size() == 0
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetchval("SELECT 4")


async def test_connections_idle_for_a_while_are_closed_and_reopened_when_needed(
    fresh_db,
) -> None:
    pool = pool_for(fresh_db, 2, idle_seconds=0.3)
    try:
        await asyncio.gather(*(pool.fetchval("SELECT pg_sleep(0.05)") for _ in range(4)))
        assert len(await backends(fresh_db)) == 2
        kept = await pool.fetchval("SELECT pg_backend_pid()")
        await asyncio.sleep(0.2)
        assert await pool.fetchval("SELECT pg_backend_pid()") == kept  # used again in time
        await asyncio.sleep(1.0)
        assert pool.get_size() == 0 and await backends(fresh_db) == []
        assert await pool.fetchval("SELECT pg_backend_pid()") not in (None, kept)
        assert pool.get_size() == 1
    finally:
        await pool.close()


async def test_a_statement_waits_for_a_connection_at_most_the_acquire_timeout(fresh_db) -> None:
    pool = pool_for(fresh_db, 1, acquire_timeout=0.3)
    try:
        busy = asyncio.ensure_future(pool.fetch("SELECT pg_sleep(1.5)"))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(PoolExhausted):
            await pool.fetchval("SELECT 1")
        assert time.monotonic() - started < 1.0  # not until the busy statement ended
        await busy
        assert await pool.fetchval("SELECT 2") == 2  # the expired waiter took nothing with it
        assert pool.get_size() == 1
    finally:
        await pool.close()


async def test_opening_a_connection_counts_against_the_acquire_timeout() -> None:
    """A server that accepts and never answers (no PostgreSQL handshake): PoolExhausted within
    the timeout, and the slot is free again."""

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # holds the connection open, says nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = statement_pool(f"postgresql://nobody@127.0.0.1:{port}/none", 1, acquire_timeout=0.3)
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(PoolExhausted):
                await pool.fetchval("SELECT 1")
            assert time.monotonic() - started < 1.0
        assert pool.get_size() == 0
    finally:
        await pool.close()
        server.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()


async def test_the_write_pool_waits_at_most_the_acquire_timeout(fresh_db) -> None:
    pool = await create_pool(fresh_db, 1, acquire_timeout=0.3)
    held, done = asyncio.Event(), asyncio.Event()

    async def hold() -> None:  # another unit of work, holding the only connection
        async with pool.acquire():
            held.set()
            await done.wait()

    holder = asyncio.create_task(hold())
    try:
        await held.wait()
        started = time.monotonic()
        with pytest.raises(PoolExhausted):
            await pool.fetchval("SELECT 1")
        assert time.monotonic() - started < 1.0
        done.set()
        await holder
        assert await pool.fetchval("SELECT 2") == 2
    finally:
        done.set()
        await pool.close()
