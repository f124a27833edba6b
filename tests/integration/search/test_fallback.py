"""With Elasticsearch down, search answers from PostgreSQL, and says so in logs and metrics.

ELASTICSEARCH_URL points at a closed port (nothing listens on 127.0.0.1:9): every request to
the cluster fails to connect, as when it is down.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from elasticsearch import ConnectionError as ElasticConnectionError
from structlog.testing import capture_logs

from actors.resources import Resources
from actors.search import index_product as index_product_actor
from configs.settings import Settings
from search.backend import InvalidCursor, SearchQuery
from search.factory import open_search
from search.fallback import FALLBACKS, FallbackSearch
from storage.database import connect, open_database
from tests.support.search_backends import Catalog
from web.app import create_app

DEAD_ELASTICSEARCH = "http://127.0.0.1:9"


def fallbacks() -> float:
    return FALLBACKS.labels(backend="elasticsearch")._value.get()  # type: ignore[no-any-return]


@pytest.fixture
def dead_settings(fresh_db: str, settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(fresh_db, elasticsearch_url=DEAD_ELASTICSEARCH)


@pytest.fixture
async def search(dead_settings: Settings) -> AsyncIterator[FallbackSearch]:
    """The backend the factory builds for a dead cluster, counting the reads it sends there."""
    async with (
        open_database(dead_settings, monitor=False) as db,
        open_search(dead_settings, db) as backend,
    ):
        assert isinstance(backend, FallbackSearch)
        backend.elastic_reads = 0  # type: ignore[attr-defined]
        search, suggest = backend.primary.search, backend.primary.suggest

        async def counted_search(query: SearchQuery, reader: Any = None) -> Any:
            backend.elastic_reads += 1  # type: ignore[attr-defined]
            return await search(query, reader)

        async def counted_suggest(prefix: str, limit: int = 8) -> Any:
            backend.elastic_reads += 1  # type: ignore[attr-defined]
            return await suggest(prefix, limit)

        backend.primary.search = counted_search  # type: ignore[method-assign]
        backend.primary.suggest = counted_suggest  # type: ignore[method-assign]
        yield backend


@pytest.fixture
async def catalog(fresh_db: str, search: FallbackSearch) -> AsyncIterator[Catalog]:
    """Products indexed in PostgreSQL only (Elasticsearch cannot take them)."""
    conn = await connect(fresh_db)
    yield Catalog(conn, search.fallback)
    await conn.close()


async def test_search_answers_from_postgres_and_logs_and_counts_it(catalog, search) -> None:
    await catalog.product("Brass lamp")
    await catalog.product("Desk light")
    before = fallbacks()
    with capture_logs() as logs:
        result = await search.search(SearchQuery(text="lamp"))
    assert result.backend == "postgres"
    assert [hit.name for hit in result.hits] == ["Brass lamp"]
    assert result.total == 1
    assert fallbacks() == before + 1
    (entry,) = [entry for entry in logs if entry["event"] == "search.fallback"]
    assert entry["operation"] == "search"
    assert entry["error"] == "ConnectionError"
    assert entry["log_level"] == "warning"
    assert search.elastic_reads == 1


async def test_within_the_skip_window_elasticsearch_is_not_asked_again(catalog, search) -> None:
    await catalog.product("Brass lamp")
    with capture_logs() as logs:
        await search.search(SearchQuery(text="lamp"))
        before = fallbacks()
        second = await search.search(SearchQuery(text="brass"))
        suggestions = await search.suggest("bra")
    assert second.backend == "postgres" and [h.name for h in second.hits] == ["Brass lamp"]
    assert [s.text for s in suggestions] == ["Brass lamp"]
    assert search.elastic_reads == 1  # only the first read tried the cluster
    assert fallbacks() == before + 2  # the search and the suggestion, both answered by PostgreSQL
    assert [entry["event"] for entry in logs].count("search.fallback") == 1
    # Once the window is over, the next read tries Elasticsearch again (and falls back again).
    search.skip_until = search.clock() - 1
    assert (await search.search(SearchQuery(text="lamp"))).backend == "postgres"
    assert search.elastic_reads == 2


async def test_suggest_falls_back_too(catalog, search) -> None:
    await catalog.product("iPhone 15 case")
    before = fallbacks()
    assert [s.text for s in await search.suggest("iph")] == ["iPhone 15 case"]
    assert fallbacks() == before + 1


async def test_cursors_of_the_fallback_page_on_and_relevance_cursors_are_refused(
    catalog, search
) -> None:
    for number in range(5):
        await catalog.product(f"Lamp {number}", variants=[(f"L-{number}", 1000 + number, 1, {})])
    seen: list[str] = []
    query = SearchQuery(text="lamp", sort="price_asc", limit=2)
    while True:
        result = await search.search(query)
        seen += [hit.name for hit in result.hits]
        if result.next_after is None:
            break
        query = SearchQuery(text="lamp", sort="price_asc", limit=2, after=result.next_after)
    assert seen == [f"Lamp {number}" for number in range(5)]
    # A relevance cursor Elasticsearch made before it went down: refused, not a 500.
    with pytest.raises(InvalidCursor):
        await search.search(SearchQuery(text="lamp", after=("relevance", "es:1.5", 3)))


HAS_DOCUMENT = "SELECT search_vector IS NOT NULL FROM products WHERE id = $1"


async def test_index_product_commits_postgres_and_after_commit_raises_for_elastic(
    fresh_db, catalog, search
) -> None:
    product_id = await catalog.product("Velvet cushion", index=False)
    conn = await connect(fresh_db)
    try:
        await index_in_transaction(search, conn, product_id)  # Elasticsearch is not asked
        assert await conn.fetchval(HAS_DOCUMENT, product_id)
        with pytest.raises(ElasticConnectionError):
            await search.after_commit(product_id)
        # The copy failed after the commit: PostgreSQL's document stays, the fallback is current.
        assert await conn.fetchval(HAS_DOCUMENT, product_id)
    finally:
        await conn.close()


class FakeCatalogCache:
    def __init__(self) -> None:
        self.changes = 0

    async def changed(self, lsn: int) -> None:
        self.changes += 1


async def test_the_actor_keeps_postgres_current_and_copies_on_the_retry(
    dead_settings, fresh_db, catalog, search
) -> None:
    product_id = await catalog.product("Velvet cushion", index=False)
    copies: list[int] = []
    dead_copy = search.primary.copy_product

    async def failing_copy(product_id: int, conn: Any) -> None:
        copies.append(product_id)
        await dead_copy(product_id, conn)

    async def working_copy(product_id: int, conn: Any) -> None:
        copies.append(product_id)

    search.primary.copy_product = failing_copy  # type: ignore[method-assign]
    cache, event_id = FakeCatalogCache(), str(uuid.uuid4())
    async with open_database(dead_settings, monitor=False) as db:
        res = Resources(dead_settings, db, None, search, cache, None)  # type: ignore[arg-type]
        with pytest.raises(ElasticConnectionError):
            await index_product_actor(res, event_id, product_id)
        # The PostgreSQL document and the inbox row committed; the cache moved.
        assert await catalog.conn.fetchval(HAS_DOCUMENT, product_id)
        assert await catalog.conn.fetchval("SELECT count(*) FROM processed_events") == 1
        assert cache.changes == 1
        # The retry is a duplicate delivery: no second index, but the copy is made now.
        search.primary.copy_product = working_copy  # type: ignore[method-assign]
        with capture_logs() as logs:
            await index_product_actor(res, event_id, product_id)
    assert copies == [product_id, product_id]
    assert [entry["event"] for entry in logs] == ["event.skipped_duplicate"]


async def index_in_transaction(search: FallbackSearch, conn: Any, product_id: int) -> None:
    """What the search actor does: index inside the transaction that records the event."""
    async with conn.transaction():
        await search.index_product(product_id, conn)


async def test_the_search_api_answers_with_elasticsearch_down(
    aiohttp_client, dead_settings, fresh_db
) -> None:
    conn = await connect(fresh_db)
    try:
        await Catalog(conn, _PostgresOnly(fresh_db)).product("Brass lamp")  # type: ignore[arg-type]
    finally:
        await conn.close()
    client = await aiohttp_client(create_app(dead_settings))
    try:
        with capture_logs() as logs:
            response = await client.get("/api/v1/search", params={"q": "lamp"})
            assert response.status == 200, await response.text()
            body = await response.json()
            suggest = await client.get("/api/v1/search/suggest", params={"q": "bra"})
            assert suggest.status == 200, await suggest.text()
        assert [item["name"] for item in body["items"]] == ["Brass lamp"]
        assert body["total"] == 1
        assert "search.fallback" in [entry["event"] for entry in logs]
    finally:
        await client.close()


class _PostgresOnly:
    """Indexes a product in PostgreSQL through a connection of its own."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def index_product(self, product_id: int) -> None:
        from storage import products

        conn = await connect(self.dsn)
        try:
            await products.index(conn, product_id)
        finally:
            await conn.close()
