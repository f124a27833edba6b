"""The test-run replication pair replicates, keeps the standby read-only, and recovers."""

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from tests.support.pgcluster import PgCluster, PgClusterError


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster() as started:
        yield started


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_row_written_on_primary_is_read_on_replica(cluster: PgCluster) -> None:
    await fetchval(cluster.primary_dsn(), "CREATE TABLE replicated (id int PRIMARY KEY, name text)")
    await fetchval(cluster.primary_dsn(), "INSERT INTO replicated VALUES (1, 'mug')")
    cluster.wait_for_replay()
    assert (
        await fetchval(cluster.replica_dsn(), "SELECT name FROM replicated WHERE id = 1") == "mug"
    )


async def test_replica_refuses_writes(cluster: PgCluster) -> None:
    assert await fetchval(cluster.replica_dsn(), "SELECT pg_is_in_recovery()") is True
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await fetchval(cluster.replica_dsn(), "CREATE TABLE not_on_a_standby (id int)")


async def test_stopped_replica_refuses_connections_until_restarted(cluster: PgCluster) -> None:
    cluster.stop_replica()
    try:
        with pytest.raises(ConnectionRefusedError):
            await fetchval(cluster.replica_dsn(), "SELECT 1")
    finally:
        cluster.start_replica()
    status = await fetchval(cluster.replica_dsn(), "SELECT status FROM pg_stat_wal_receiver")
    assert status == "streaming"


async def test_paused_replay_hides_new_rows_until_resumed(cluster: PgCluster) -> None:
    await fetchval(cluster.primary_dsn(), "CREATE TABLE paused (id int PRIMARY KEY)")
    cluster.wait_for_replay()
    cluster.pause_replay()
    try:
        await fetchval(cluster.primary_dsn(), "INSERT INTO paused VALUES (1)")
        lsn = await fetchval(cluster.primary_dsn(), "SELECT pg_current_wal_lsn()::text")
        received = "SELECT pg_last_wal_receive_lsn() >= $1::text::pg_lsn"
        for _ in range(200):  # the insert has reached the replica, it is just not applied
            if await fetchval(cluster.replica_dsn(), received, lsn):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"replica never received WAL up to {lsn}")
        assert await fetchval(cluster.replica_dsn(), "SELECT count(*) FROM paused") == 0
        with pytest.raises(PgClusterError, match="replica replay up to"):
            cluster.wait_for_replay(timeout=0.5)
    finally:
        cluster.resume_replay()
    cluster.wait_for_replay()
    assert await fetchval(cluster.replica_dsn(), "SELECT count(*) FROM paused") == 1


def test_stop_is_idempotent_and_removes_the_data() -> None:
    own = PgCluster().start()
    base = own.base
    assert base is not None
    assert own.psql(own.replica_dsn(), "SELECT pg_is_in_recovery()") == "t"
    own.stop()
    own.stop()
    assert not base.exists()


async def test_failover_promotes_the_standby_and_rebuilds_the_lost_primary() -> None:
    with PgCluster(synchronous=True) as own:
        await fetchval(own.primary_dsn(), "CREATE TABLE kept (id int PRIMARY KEY)")
        await fetchval(own.primary_dsn(), "INSERT INTO kept VALUES (1)")  # on both: synchronous
        read_write = own.hosts_dsn("postgres", "read-write")
        old_pid = own.postmaster_pid("primary")
        assert old_pid is not None

        assert own.stop_primary() == "primary"
        assert own.postmaster_pid("primary") is None
        with pytest.raises((OSError, asyncpg.TargetServerAttributeNotMatched)):
            await fetchval(read_write, "SELECT 1")  # the standby is there, but not writable

        assert own.promote() == "replica"
        assert own.roles == {"primary": "replica", "replica": None}
        assert await fetchval(read_write, "SELECT NOT pg_is_in_recovery()") is True
        assert await fetchval(read_write, "SELECT count(*) FROM kept") == 1
        await fetchval(read_write, "INSERT INTO kept VALUES (2)")  # asynchronous now: no wait

        own.rebuild_standby("primary")
        assert own.roles == {"primary": "replica", "replica": "primary"}
        own.wait_for_replay()
        assert await fetchval(own.replica_dsn(), "SELECT count(*) FROM kept") == 2
        assert await fetchval(own.replica_dsn(), "SELECT pg_is_in_recovery()") is True
        prefer_standby = own.hosts_dsn("postgres", "prefer-standby", first="replica")
        assert await fetchval(prefer_standby, "SELECT pg_is_in_recovery()") is True
