"""The pools through a real failover: the primary of a streaming pair crashes (pg_ctl stop -m
immediate), the standby is promoted (pg_ctl promote), and the pools, given both hosts
(target_session_attrs), find the new primary by themselves. Meanwhile every failure is the 503
kind (DatabaseUnreachable), never a hang and never another error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from configs.settings import Settings
from storage.database import Database, create_pool, open_database, transaction
from storage.errors import DatabaseUnreachable
from tests.support.pgcluster import PgCluster

DATABASE = "shop"
CREATE_NOTES = "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL)"
INSERT_NOTE = "INSERT INTO notes VALUES ($1, 'note')"
# Generous for a loaded machine, and still far below a hang: an acquire waits at most 2 s.
BOUND_SECONDS = 10.0


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    with PgCluster(synchronous=True) as running:
        running.psql(running.primary_dsn(), f"CREATE DATABASE {DATABASE}")
        running.psql(running.primary_dsn(DATABASE), CREATE_NOTES)
        running.wait_for_replay()  # synchronous means flushed there, not yet applied
        yield running


@pytest.fixture
async def db(cluster: PgCluster, settings_for: Callable[..., Settings]) -> AsyncIterator[Database]:
    settings = settings_for(
        cluster.hosts_dsn(DATABASE, "read-write"),
        replica_database_url=cluster.hosts_dsn(DATABASE, "prefer-standby", first="replica"),
        database_acquire_timeout_seconds=2.0,
        replica_check_interval_seconds=0.2,
    )
    async with open_database(settings) as opened:
        yield opened


async def bounded(work: Callable[[], Awaitable[object]]) -> object:
    """`work()`'s result or its exception, which must come within BOUND_SECONDS."""
    try:
        return await asyncio.wait_for(work(), BOUND_SECONDS)
    except TimeoutError:
        raise AssertionError(f"no answer within {BOUND_SECONDS} s: a hang") from None
    except Exception as exc:
        return exc


async def test_pools_answer_unavailable_until_the_promoted_standby_takes_writes(
    cluster: PgCluster, db: Database
) -> None:
    await db.primary.execute(INSERT_NOTE, 1)

    # A transaction in progress when the primary crashes: its connection is gone.
    async def crash_mid_transaction() -> str:
        async with transaction(db) as conn:
            await conn.execute(INSERT_NOTE, 2)
            crashed = await asyncio.to_thread(cluster.stop_primary)
            await conn.execute(INSERT_NOTE, 3)
        return crashed

    old = cluster.primary_node
    with pytest.raises(DatabaseUnreachable):
        await crash_mid_transaction()
    assert cluster.postmaster_pid(old) is None  # the fault happened

    # Until a standby is promoted there is no writable host: every write is DatabaseUnreachable,
    # in bounded time. Browsing reads go on from the standby, which the monitor keeps (it was
    # fresh, it still replays) through several of its checks.
    for _ in range(5):
        failed = await bounded(lambda: db.primary.execute(INSERT_NOTE, 4))
        assert isinstance(failed, DatabaseUnreachable), repr(failed)
        read = await bounded(lambda: db.replica.fetchval("SELECT count(*) FROM notes"))
        assert read == 1, repr(read)
        await asyncio.sleep(0.2)
    assert db.replica.source == "replica"

    new = await asyncio.to_thread(cluster.promote)
    assert new != old
    # The same pools, no restart: new connections go to the promoted standby.
    await db.primary.execute(INSERT_NOTE, 4)
    assert await db.primary.fetchval("SELECT NOT pg_is_in_recovery()") is True
    rows = await db.primary.fetch("SELECT id FROM notes ORDER BY id")
    assert [row["id"] for row in rows] == [1, 4]  # 1 was committed (synchronously): kept
    assert await db.replica.fetchval("SELECT count(*) FROM notes") == 2


async def test_a_write_connection_on_a_standby_is_unavailable_and_expired(
    cluster: PgCluster,
) -> None:
    # One host only, and it is the standby (a DATABASE_URL not updated after a failover, or a
    # connection that outlived one): the write fails as the 503 kind, not as a 500.
    pool = await create_pool(cluster.replica_dsn(DATABASE), 2, acquire_timeout=2.0)
    try:
        async with pool.acquire() as conn:
            before = conn._con  # the connection behind the pool's proxy
        with pytest.raises(DatabaseUnreachable) as caught:
            await pool.execute(INSERT_NOTE, 9)
        assert isinstance(caught.value.__cause__, asyncpg.ReadOnlySQLTransactionError)
        async with pool.acquire() as conn:  # expired: a new connection, opened anew
            assert conn._con is not before
    finally:
        await pool.close()
