"""Replica routing against a real streaming replica that this test run starts.

Reads go to the replica, writes to the primary; a write to the replica pool fails; a stopped or
lagging replica sends reads to the primary and they come back when it recovers; a client that
has just written reads its own write even while replay is paused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import asyncpg
import pytest

from configs.settings import Settings
from storage import open_database
from tests.conftest import Template, dsn_for
from tests.support.catalog import insert_product
from tests.support.pgcluster import PgCluster
from tests.support.waiting import eventually
from web.app import create_app
from web.keys import DB

NEW = {"slug": "fresh-mug", "name": "Fresh mug", "price_amount": 990, "price_currency": "EUR"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster() as running:
        yield running


@pytest.fixture(scope="module")
def cluster_template(cluster: PgCluster) -> Template:
    """A migrated template on the cluster's primary (gone with the cluster)."""
    template = Template(cluster.primary_dsn())
    asyncio.run(template.create())
    return template


@pytest.fixture
async def replica_settings(cluster, cluster_template, settings_for) -> AsyncIterator[Settings]:  # type: ignore[no-untyped-def]
    name = await cluster_template.clone()
    await asyncio.to_thread(cluster.wait_for_replay)  # the new database exists on the replica
    yield settings_for(
        dsn_for(cluster.primary_dsn(), name),
        replica_database_url=dsn_for(cluster.replica_dsn(), name),
        replica_check_interval_seconds=0.1,
        replica_max_lag_seconds=1.0,
        # These tests watch where reads go; the catalog cache would answer some of them itself
        # (test_a_cache_fill_after_a_change_never_reads_a_lagging_replica covers the two).
        catalog_cache_seconds=0,
    )
    await asyncio.to_thread(cluster.resume_replay)
    await cluster_template.drop(name)


@pytest.fixture
async def replica_client(aiohttp_client, replica_settings):  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(replica_settings))
    yield client
    await client.close()


async def listed_slugs(client, **kwargs) -> set[str]:  # type: ignore[no-untyped-def]
    resp = await client.get("/api/v1/products", **kwargs)
    assert resp.status == 200, await resp.text()
    return {item["slug"] for item in (await resp.json())["items"]}


async def test_reads_use_the_replica_and_writes_the_primary(replica_settings) -> None:
    async with open_database(replica_settings) as db:
        assert db.replica.source == "replica"
        assert await db.replica.fetchval("SELECT pg_is_in_recovery()") is True
        assert await db.primary.fetchval("SELECT pg_is_in_recovery()") is False


async def test_a_write_through_the_replica_pool_fails(replica_settings) -> None:
    async with open_database(replica_settings) as db:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await db.replica.fetchval(
                "INSERT INTO products (slug, name) VALUES ('x', 'x') RETURNING id"
            )


async def test_a_write_through_the_fallback_pool_fails_too(replica_settings) -> None:
    """With no replica configured, the browsing pool is the primary, read-only."""
    settings = replica_settings.model_copy(update={"replica_database_url": None})
    async with open_database(settings) as db:
        assert db.replica.source == "primary"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await db.replica.fetchval("DELETE FROM products")


async def test_browsing_reads_are_served_by_the_replica(
    cluster, replica_settings, replica_client
) -> None:
    await insert_product(replica_settings.database_url.unicode_string(), "seen")
    await asyncio.to_thread(cluster.wait_for_replay)
    await asyncio.to_thread(cluster.pause_replay)
    await insert_product(replica_settings.database_url.unicode_string(), "not-yet-replayed")
    slugs = await listed_slugs(replica_client)
    assert slugs == {"seen"}  # the replica answered: it has not replayed the second row
    await asyncio.to_thread(cluster.resume_replay)
    await asyncio.to_thread(cluster.wait_for_replay)
    assert await listed_slugs(replica_client) == {"seen", "not-yet-replayed"}


async def test_stopped_replica_falls_back_to_the_primary_and_returns(
    cluster, replica_settings, replica_client
) -> None:
    db = replica_client.app[DB]
    assert db.replica.source == "replica"
    await asyncio.to_thread(cluster.stop_replica)
    try:
        await insert_product(replica_settings.database_url.unicode_string(), "while-down")
        # The first read after the stop already answers, from the primary.
        assert await listed_slugs(replica_client) == {"while-down"}
        assert (await replica_client.get("/")).status == 200
        assert db.replica.source == "primary"
    finally:
        await asyncio.to_thread(cluster.start_replica)
    assert await eventually(lambda: db.replica.source == "replica")
    await asyncio.to_thread(cluster.pause_replay)
    await insert_product(replica_settings.database_url.unicode_string(), "after-return")
    assert "after-return" not in await listed_slugs(replica_client)  # the replica answers again


async def test_lagging_replica_is_left_until_it_catches_up(
    cluster, replica_settings, replica_client
) -> None:
    db = replica_client.app[DB]
    await asyncio.to_thread(cluster.pause_replay)
    await insert_product(replica_settings.database_url.unicode_string(), "lagging")
    assert await eventually(lambda: db.replica.source == "primary")  # lag > 1 s bound
    assert "lagging" in await listed_slugs(replica_client)
    await asyncio.to_thread(cluster.resume_replay)
    assert await eventually(lambda: db.replica.source == "replica")


async def test_a_client_reads_its_own_write_while_replay_is_paused(
    cluster, replica_client, staff_headers
) -> None:
    await asyncio.to_thread(cluster.pause_replay)
    resp = await replica_client.post("/api/v1/products", json=NEW, headers=staff_headers)
    assert resp.status == 201, await resp.text()
    lsn = resp.headers["X-Aioshop-Lsn"]
    # The writer's next read sees its write: its cookie carries the commit position ...
    assert "fresh-mug" in await listed_slugs(replica_client)
    async with aiohttp.ClientSession() as other:
        url = replica_client.make_url("/api/v1/products")
        # ... and so does an API client that sends the position as a header ...
        async with other.get(url, headers={"X-Aioshop-Lsn": lsn}) as fresh:
            assert "fresh-mug" in {item["slug"] for item in (await fresh.json())["items"]}
        # ... while a client that did not write reads the replica, which has not replayed it.
        async with other.get(url) as stale:
            assert "fresh-mug" not in {item["slug"] for item in (await stale.json())["items"]}


async def test_a_cache_fill_after_a_change_never_reads_a_lagging_replica(
    cluster, replica_settings, staff_headers, aiohttp_client
) -> None:
    """A staff change moves the catalog version to its commit position; a shopper who wrote
    nothing then misses the cache, and the fill must come from a reader that has that commit
    (the primary while the replica is paused), or the old list would be cached as the new one."""
    cached = replica_settings.model_copy(update={"catalog_cache_seconds": 300})
    client = await aiohttp_client(create_app(cached))
    try:
        assert await listed_slugs(client) == set()  # cached under the current version
        await asyncio.to_thread(cluster.pause_replay)
        resp = await client.post("/api/v1/products", json=NEW, headers=staff_headers)
        assert resp.status == 201, await resp.text()
        async with aiohttp.ClientSession() as shopper:  # no LSN cookie or header
            async with shopper.get(client.make_url("/api/v1/products")) as page:
                assert {item["slug"] for item in (await page.json())["items"]} == {"fresh-mug"}
            async with shopper.get(client.make_url("/api/v1/products")) as again:  # a hit now
                assert {item["slug"] for item in (await again.json())["items"]} == {"fresh-mug"}
    finally:
        await client.close()
