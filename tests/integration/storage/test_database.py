"""Replica routing against a real streaming replica that this test run starts.

Reads go to the replica, writes to the primary; a write to the replica pool fails; a stopped or
lagging replica sends reads to the primary and they come back when it recovers; a client that
has just written reads its own write even while replay is paused.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from configs.settings import Settings
from storage import open_database
from tests.conftest import Template, dsn_for
from tests.support import admin
from tests.support.browser import csrf_of, post_form, signed_in
from tests.support.catalog import insert_product
from tests.support.db import sql
from tests.support.orders import ADDRESS, stocked_product
from tests.support.pgcluster import PgCluster
from tests.support.waiting import eventually
from web.app import create_app
from web.keys import DB
from web.middlewares import LSN_COOKIE, LSN_HEADER

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


async def seen_and_not_yet_replayed(cluster: PgCluster, settings: Settings) -> None:
    """Product "seen" replayed on the replica, then "not-yet-replayed" written with replay
    paused (the fixture resumes it)."""
    await insert_product(settings.database_url.unicode_string(), "seen")
    await asyncio.to_thread(cluster.wait_for_replay)
    await asyncio.to_thread(cluster.pause_replay)
    await insert_product(settings.database_url.unicode_string(), "not-yet-replayed")


async def test_browsing_reads_are_served_by_the_replica(
    cluster, replica_settings, replica_client
) -> None:
    await seen_and_not_yet_replayed(cluster, replica_settings)
    slugs = await listed_slugs(replica_client)
    assert slugs == {"seen"}  # the replica answered: it has not replayed the second row
    await asyncio.to_thread(cluster.resume_replay)
    await asyncio.to_thread(cluster.wait_for_replay)
    assert await listed_slugs(replica_client) == {"seen", "not-yet-replayed"}


async def test_sitemaps_are_read_from_the_replica(
    cluster, replica_settings, replica_client
) -> None:
    await seen_and_not_yet_replayed(cluster, replica_settings)
    index = await (await replica_client.get("/sitemap.xml")).text()
    assert "/sitemaps/products-1.xml" in index
    chunk = await (await replica_client.get("/sitemaps/products-1.xml")).text()
    assert "/products/seen<" in chunk
    assert "not-yet-replayed" not in chunk  # the replica answered: it has not replayed it


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


# -- read-your-writes through redirects: the answer to every write carries its position --------


def carries_position(resp) -> bool:  # type: ignore[no-untyped-def]
    """The answer has the commit position as header and cookie (a redirect raised, too)."""
    cookies = resp.headers.getall("Set-Cookie", [])
    return LSN_HEADER in resp.headers and any(c.startswith(f"{LSN_COOKIE}=") for c in cookies)


async def test_staff_see_the_product_they_just_created_and_edited(
    cluster, replica_settings, replica_client
) -> None:
    """With replay paused, a save's redirect must carry the commit position, or the edit page
    after it reads the replica, which has not got the product: 'No such product'."""
    await admin.staff(replica_client, replica_settings.database_url.unicode_string())
    await asyncio.to_thread(cluster.pause_replay)
    token = await csrf_of(replica_client, "/admin/")
    resp = await replica_client.post(
        "/admin/products/new",
        data={**admin.product_form(admin.variant("MUG-1")), "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    edit = await replica_client.get(resp.headers["Location"])
    assert edit.status == 200, await edit.text()  # not 404 "No such product" from the replica
    page = await edit.text()
    assert "Blue mug" in page
    assert carries_position(resp)

    path = resp.headers["Location"].partition("?")[0]
    fields = admin.form_of(page, path)
    saved = await admin.post(replica_client, path, {**fields, "name": "Red mug"})
    assert saved.status == 303, await saved.text()
    assert carries_position(saved)
    again = await replica_client.get(saved.headers["Location"])
    assert again.status == 200 and "Red mug" in await again.text()


async def test_a_shopper_sees_the_address_and_name_just_saved(
    cluster, replica_settings, replica_client
) -> None:
    await signed_in(
        replica_client, role="customer", fresh_db=replica_settings.database_url.unicode_string()
    )
    await asyncio.to_thread(cluster.pause_replay)
    added = await post_form(replica_client, "/account/addresses", ADDRESS)
    assert added.status == 303, await added.text()
    assert carries_position(added)
    named = await post_form(replica_client, "/account/profile", {"name": "Countess Ada"})
    assert named.status == 303, await named.text()
    assert carries_position(named)
    account = await (await replica_client.get(named.headers["Location"])).text()
    assert "12 Analytical Row" in account and "Countess Ada" in account


async def test_checkout_then_thanks_then_the_order_page_while_replay_is_paused(
    cluster, replica_settings, replica_client
) -> None:
    dsn = replica_settings.database_url.unicode_string()
    await stocked_product(dsn, "tee", {"TEE-S": 5})
    await signed_in(replica_client, role="customer", fresh_db=dsn)
    await asyncio.to_thread(cluster.wait_for_replay)
    await asyncio.to_thread(cluster.pause_replay)
    added = await post_form(replica_client, "/cart/items", {"sku": "TEE-S", "quantity": "1"})
    assert added.status == 303 and carries_position(added)
    checkout = await (await replica_client.get("/checkout")).text()
    key = re.search(r'name="idempotency_key" value="([^"]+)"', checkout)
    assert key, checkout
    placed = await post_form(
        replica_client,
        "/checkout",
        {
            "address_id": "new",
            **ADDRESS,
            "shipping_method": "standard",
            "card_number": "4242 4242 4242 4242",
            "card_expiry": "12/39",
            "card_cvc": "123",
            "idempotency_key": key.group(1),
        },
    )
    assert placed.status == 303, await placed.text()
    assert carries_position(placed)
    number = placed.headers["Location"].split("/")[2]
    thanks = await replica_client.get(placed.headers["Location"])
    assert thanks.status == 200 and number in await thanks.text()
    order = await replica_client.get(f"/account/orders/{number}")
    assert order.status == 200 and number in await order.text()


# -- the monitor: never dies, never takes an unmeasured replica for a fresh one ----------------


def check_errors(error: str) -> float:
    return REGISTRY.get_sample_value("aioshop_replica_check_errors_total", {"error": error}) or 0.0


async def test_a_monitor_refused_by_the_replica_keeps_running_and_reads_go_to_the_primary(
    cluster, replica_settings, aiohttp_client
) -> None:
    """The replica refuses connections with 'too many connections for role' (a role limited to
    none, a real server condition): an error no list of 'unavailable' errors named. The monitor
    marks it down, counts it and goes on; browsing answers from the primary; when the replica
    takes connections again, the same monitor brings it back."""
    primary, name = (
        replica_settings.database_url.unicode_string(),
        replica_settings.database_url.path,
    )
    await sql(
        primary,
        "DO $$ BEGIN CREATE ROLE limited LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    await sql(primary, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO limited")
    await asyncio.to_thread(cluster.wait_for_replay)
    limited = cluster.replica_dsn().replace("postgres@", "limited@").rpartition("/")[0] + name
    settings = replica_settings.model_copy(update={"replica_database_url": limited})
    client = await aiohttp_client(create_app(settings))
    db = client.app[DB]
    try:
        assert await eventually(lambda: db.replica.source == "replica")
        before = check_errors("ServerFull")  # storage.errors: the server has no room for it
        await sql(primary, "ALTER ROLE limited CONNECTION LIMIT 0")
        await asyncio.to_thread(cluster.wait_for_replay)
        await asyncio.to_thread(
            cluster.psql,
            cluster.replica_dsn(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'limited'",
        )
        await insert_product(primary, "while-refused")
        assert await listed_slugs(client) == {"while-refused"}  # answered by the primary
        assert (await client.get("/")).status == 200
        assert await eventually(lambda: check_errors("ServerFull") > before)
        assert db.replica.source == "primary"
        assert await listed_slugs(client) == {"while-refused"}
        await sql(primary, "ALTER ROLE limited CONNECTION LIMIT -1")
        assert await eventually(lambda: db.replica.source == "replica", timeout=10)
    finally:
        await sql(primary, "ALTER ROLE limited CONNECTION LIMIT -1")
        await client.close()


async def test_a_replica_far_behind_is_not_used_right_after_the_start(
    cluster, replica_settings
) -> None:
    """One sample cannot measure a lag: a replica behind it is not fresh until measured."""
    primary = replica_settings.database_url.unicode_string()
    await asyncio.to_thread(cluster.pause_replay)
    for number in range(20):
        await insert_product(primary, f"unreplayed-{number}")
    async with open_database(replica_settings) as db:
        assert db.replica.source == "primary"
        assert db.replica.state.lag_seconds is None
        reader = await db.replica.fresh_for(None)
        assert await reader.fetchval("SELECT count(*) FROM products") == 20
        await asyncio.sleep(0.5)  # several checks: still unmeasured, still not used
        assert db.replica.source == "primary"
        await asyncio.to_thread(cluster.resume_replay)
        assert await eventually(lambda: db.replica.source == "replica")


async def test_a_unit_of_work_reads_where_it_decided_to(cluster, replica_settings) -> None:
    primary = replica_settings.database_url.unicode_string()
    async with open_database(replica_settings) as db:
        assert await eventually(lambda: db.replica.source == "replica")
        on_replica = await db.replica.fresh_for(None)
        assert on_replica.source == "replica"
        await asyncio.to_thread(cluster.pause_replay)
        await insert_product(primary, "written-later")
        lsn = int(await db.primary.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
        assert await eventually(lambda: db.replica.source == "primary")  # lagging now
        # Decided "replica": its reads stay there, even though new decisions say "primary".
        assert await on_replica.fetchval("SELECT pg_is_in_recovery()") is True
        assert await on_replica.fetchval("SELECT count(*) FROM products") == 0
        on_primary = await db.replica.fresh_for(lsn)
        assert on_primary.source == "primary"
        await asyncio.to_thread(cluster.resume_replay)
        assert await eventually(lambda: db.replica.source == "replica")
        # Decided "primary" for a write the replica lacked: its reads stay there too.
        assert await on_primary.fetchval("SELECT pg_is_in_recovery()") is False
        assert await on_primary.fetchval("SELECT count(*) FROM products") == 1


async def test_browsing_reads_are_counted_by_the_pool_that_answered(
    cluster, replica_settings
) -> None:
    from storage.replica import DB_READS, Reader

    def counted() -> tuple[float, float]:
        return tuple(DB_READS.labels(pool)._value.get() for pool in ("replica", "primary"))  # type: ignore[return-value]

    async with open_database(replica_settings) as db:
        assert await eventually(lambda: db.replica.source == "replica")
        replica, primary = counted()
        on_replica = await db.replica.fresh_for(None)
        await on_replica.fetchval("SELECT 1")
        await on_replica.fetch("SELECT 1")
        await Reader(db.replica, False).fetchval("SELECT 1")  # decided "primary"
        assert counted() == (replica + 2, primary + 1)
