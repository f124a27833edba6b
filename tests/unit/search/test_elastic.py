"""The Elasticsearch backend's writes, reindex and failures (search.elastic, with
search.elastic_documents, search.reindex and search.fallback), without a server: a fake cluster
(tests.support.fake_elastic) records the requests and answers canned responses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from search.backend import InvalidCursor, SearchQuery, SearchResult
from search.elastic import ElasticsearchSearch
from search.elastic_documents import ALIAS, MAPPINGS, document
from search.fallback import FALLBACKS, FallbackSearch
from search.reindex import Report, Timer, reindex_elastic
from storage.errors import ProductNotFound
from tests.support.fake_elastic import Answer, Attributes, Request

# --- writes -----------------------------------------------------------------------------------


def product_row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": 42,
        "slug": "wool-jumper",
        "name": "Wool jumper",
        "description": "Warm.",
        "is_published": True,
        "created_at": datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
        "category_id": 7,
        "price_min": 4900,
        "price_max": 5900,
        "currency": "EUR",
        "in_stock": True,
        "search_facets": ["care=hand-wash", "colour=navy-blue"],
        "category_path": [1, 7],
        "category_names": "Clothing Knitwear",
        "skus": ["JUMPER-M", "JUMPER-S"],
        "filterable_facets": ["colour=navy-blue"],
        "attribute_words": "hand wash navy blue Navy blue",
        "version": 1740823200123456,
    }
    row.update(changes)
    return row


class FakeConnection:
    """What index_product reads through: search_index_products' version, then the document."""

    def __init__(self, rows: list[dict[str, Any]], version: int | None = 3) -> None:
        self.rows, self.version = rows, version
        self.statements: list[str] = []

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return self.version

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self.statements.append(sql)
        return self.rows

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        self.statements.append(sql)
        return self.rows[0] if self.rows else None


def test_the_document_has_a_field_for_every_mapped_property() -> None:
    doc = document(product_row())
    assert set(doc) == set(MAPPINGS["properties"])
    assert doc["tags"] == "Clothing Knitwear hand wash navy blue Navy blue"
    assert doc["text_all"] == "Wool jumper " + doc["tags"] + " Warm."
    assert doc["vocabulary"] == "Wool jumper " + doc["tags"]
    assert doc["created_at"] == "2025-03-01T10:00:00.123456Z"
    assert (doc["facets"], doc["filterable_facets"]) == (
        ["care=hand-wash", "colour=navy-blue"],
        ["colour=navy-blue"],
    )


async def test_index_product_writes_an_external_version_through_the_alias(elastic, cluster) -> None:
    cluster.answers.append((201, {"_index": "x", "_id": "42", "_version": 1, "result": "created"}))
    conn = FakeConnection([product_row()])
    await elastic.index_product(42, conn)
    assert "search_index_products" in conn.statements[0]  # PostgreSQL's document first
    (request,) = cluster.requests
    assert (request.method, request.path) == ("PUT", f"/{ALIAS}/_doc/42")
    assert sorted(request.query.split("&")) == [
        "require_alias=true",
        "version=1740823200123456",
        "version_type=external",
    ]
    assert request.body == document(product_row())


async def test_a_late_write_loses_to_a_newer_one_quietly(elastic, cluster) -> None:
    conflict = {
        "error": {
            "root_cause": [{"type": "version_conflict_engine_exception", "reason": "conflict"}],
            "type": "version_conflict_engine_exception",
            "reason": "[42]: version conflict, current version [9] is higher or equal to the one"
            " provided [8]",
        },
        "status": 409,
    }
    cluster.answers.append((409, conflict))
    with capture_logs() as logs:
        await elastic.index_product(42, FakeConnection([product_row(version=8)]))
    assert [entry["event"] for entry in logs] == ["search.write_superseded"]


async def test_an_unpublished_product_is_deleted_with_its_version(elastic, cluster) -> None:
    cluster.answers.append((404, {"_index": "x", "_id": "42", "result": "not_found"}))
    await elastic.index_product(42, FakeConnection([product_row(is_published=False)]))
    (request,) = cluster.requests
    assert (request.method, request.path) == ("DELETE", f"/{ALIAS}/_doc/42")
    assert "version_type=external" in request.query


async def test_an_unknown_product_raises_product_not_found(elastic, cluster) -> None:
    with pytest.raises(ProductNotFound):
        await elastic.index_product(10**9, FakeConnection([], version=None))
    with pytest.raises(ProductNotFound):
        await elastic.copy_product(10**9, FakeConnection([]))
    assert cluster.requests == []


async def test_a_write_before_any_index_is_skipped_and_creates_none(elastic, cluster) -> None:
    missing = {
        "error": {
            "root_cause": [{"type": "index_not_found_exception", "reason": "no such index"}],
            "type": "index_not_found_exception",
            "reason": "no such index [aioshop-products]",
        },
        "status": 404,
    }
    cluster.answers.append((404, missing))  # the write
    with capture_logs() as logs:
        await elastic.copy_product(42, FakeConnection([product_row()]))
    # No index behind the alias: searches keep getting 404s, so PostgreSQL answers them.
    assert [(r.method, r.path) for r in cluster.requests] == [("PUT", f"/{ALIAS}/_doc/42")]
    assert [(e["event"], e["alias"], e["product_id"]) for e in logs] == [
        ("search.no_alias", ALIAS, 42)
    ]


async def test_remove_product_is_idempotent(elastic, cluster) -> None:
    cluster.answers.append((404, {"_index": "x", "_id": "42", "result": "not_found"}))
    await elastic.remove_product(42)
    assert [(r.method, r.path) for r in cluster.requests] == [("DELETE", f"/{ALIAS}/_doc/42")]


class FakePool:
    """Batches of rows for reindex's keyset reads."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    async def fetch(self, sql: str, last_id: Any, *args: Any) -> list[dict[str, Any]]:
        if isinstance(last_id, list):
            return [row for row in self.rows if row["id"] in last_id]
        batch = args[0]
        return [row for row in self.rows if row["id"] > last_id][:batch]


def bulk_ok(request: Request) -> Answer:
    items = [
        {next(iter(line)): {"_id": line[next(iter(line))]["_id"], "status": 201}}
        for line in request.body
        if next(iter(line)) in ("index", "delete")
    ]
    return 200, {"took": 3, "errors": False, "items": items}


async def test_bulk_load_sends_batches_with_external_versions(elastic, cluster) -> None:
    rows = [product_row(id=n, version=100 + n) for n in range(1, 6)]
    cluster.answers += [bulk_ok, bulk_ok, bulk_ok]
    loaded = await elastic.load("aioshop-products-new", FakePool(rows), batch=2)  # type: ignore[arg-type]
    assert loaded == 5
    bulks = [r for r in cluster.requests if r.path.endswith("/_bulk")]
    assert [len(r.body) // 2 for r in bulks] == [2, 2, 1]
    assert bulks[0].body[0] == {
        "index": {
            "_index": "aioshop-products-new",
            "_id": "1",
            "version": 101,
            "version_type": "external",
        }
    }
    assert bulks[0].body[1] == document(rows[0])


async def test_the_alias_moves_in_one_atomic_call(elastic, cluster) -> None:
    cluster.answers.append((200, {"acknowledged": True}))
    await elastic.swap_alias("aioshop-products-new", ["aioshop-products-old"])
    (request,) = cluster.requests
    assert (request.method, request.path) == ("POST", "/_aliases")
    assert request.body == {
        "actions": [
            {"remove": {"index": "aioshop-products-old", "alias": ALIAS}},
            {"add": {"index": "aioshop-products-new", "alias": ALIAS}},
        ]
    }


class FailingCatchUpPool(FakePool):
    """Loads `rows`, then fails the catch-up's read of the products indexed meanwhile."""

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return datetime(2025, 3, 1, tzinfo=UTC)  # when the load started

    async def fetch(self, sql: str, last_id: Any, *args: Any) -> list[dict[str, Any]]:
        if isinstance(last_id, datetime):
            raise ConnectionResetError("the database went away during the catch-up")
        return await super().fetch(sql, last_id, *args)


async def test_reindex_drops_the_old_index_before_the_catch_up(client, cluster) -> None:
    cluster.answers += [
        (200, {"acknowledged": True, "shards_acknowledged": True, "index": "new"}),  # create
        bulk_ok,
        (200, {"aioshop-products-old": {"aliases": {ALIAS: {}}}}),  # GET /_alias
        (200, {"acknowledged": True}),  # POST /_aliases
        (200, {"acknowledged": True}),  # DELETE the old index
    ]
    report = Report()
    with pytest.raises(ConnectionResetError):
        await reindex_elastic(client, FailingCatchUpPool([product_row()]), Timer(report, None))  # type: ignore[arg-type]
    # The failed catch-up left no index behind: the old one went with the swap.
    assert [(r.method, r.path) for r in cluster.requests][-2:] == [
        ("POST", "/_aliases"),
        ("DELETE", "/aioshop-products-old"),
    ]
    assert [step.name for step in report.steps] == ["elastic", "alias"]


# --- fallback ---------------------------------------------------------------------------------


class FakePostgres:
    """Stands in for PostgresSearch: answers every search."""

    def __init__(self) -> None:
        self.searches = 0

    async def search(self, query: SearchQuery, reader: object = None) -> SearchResult:
        self.searches += 1
        return SearchResult([], None, 0, None, None, "postgres")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fallback_count() -> float:
    return FALLBACKS.labels(backend="elasticsearch")._value.get()  # type: ignore[no-any-return]


async def test_an_error_answer_falls_back_then_skips_elastic_for_a_while(elastic, cluster) -> None:
    unavailable = {
        "error": {
            "root_cause": [{"type": "no_shard_available_action_exception", "reason": "down"}],
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
        },
        "status": 503,
    }
    cluster.answers.append((503, unavailable))
    clock, postgres = Clock(), FakePostgres()
    search = FallbackSearch(elastic, postgres, skip_seconds=5.0, clock=clock)  # type: ignore[arg-type]
    before = fallback_count()
    with capture_logs() as logs:
        assert (await search.search(SearchQuery(text="lamp"))).backend == "postgres"
        clock.now += 4.9
        assert (await search.search(SearchQuery(text="lamp"))).backend == "postgres"
    assert len(cluster.requests) == 1  # the second read skipped Elasticsearch
    assert [(e["event"], e["operation"], e["error"]) for e in logs] == [
        ("search.fallback", "search", "ApiError")
    ]
    assert fallback_count() == before + 2
    clock.now += 0.2  # the window is over: Elasticsearch answers again
    assert (await search.search(SearchQuery(text="lamp"))).backend == "elasticsearch"
    assert postgres.searches == 2


async def test_a_slow_cluster_times_out_into_the_fallback(elastic, cluster) -> None:
    cluster.delay = 1.0
    search = FallbackSearch(elastic, FakePostgres(), timeout=0.05)  # type: ignore[arg-type]
    with capture_logs() as logs:
        result = await search.search(SearchQuery())
    assert result.backend == "postgres"
    assert logs[0]["error"] == "TimeoutError"


async def test_a_bad_cursor_is_the_callers_error_not_a_fallback(elastic, cluster) -> None:
    postgres = FakePostgres()
    search = FallbackSearch(elastic, postgres)  # type: ignore[arg-type]
    with pytest.raises(InvalidCursor):
        await search.search(SearchQuery(text="x", after=("relevance", 1.5, 3)))
    assert postgres.searches == 0 and not search.skipping


async def test_filterable_attributes_are_read_once_per_ttl(
    elastic, client, cluster, attributes
) -> None:
    await elastic.search(SearchQuery(text="tee"))
    await elastic.search(SearchQuery(text="tee"))
    await elastic.search(SearchQuery(sort="name", facets=False))  # a list needs none
    assert attributes.reads == 1
    assert set(cluster.requests[0].body["aggs"]["attributes"]["aggs"]) == {
        "colour",
        "material",
        "size",
    }
    # Once attributes_ttl has passed, the next search reads them again.
    fresh = Attributes()
    uncached = ElasticsearchSearch(client, primary=None, reader=fresh, attributes_ttl=0.0)  # type: ignore[arg-type]
    await uncached.search(SearchQuery(text="tee"))
    fresh.slugs = ("brand",)  # staff made brand filterable, the others not
    await uncached.search(SearchQuery(text="tee"))
    assert fresh.reads == 2
    assert list(cluster.requests[-1].body["aggs"]["attributes"]["aggs"]) == ["brand"]
