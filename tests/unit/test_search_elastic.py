"""The Elasticsearch backend's requests and how it reads the answers, without a server.

An AsyncElasticsearch gets a `node_class` (elastic_transport's BaseAsyncNode) that records every
request and answers canned responses, so the real client serialises the bodies and parses the
answers. The canned answers follow the shapes Elastic documents:

- search hits, hits.total {value, relation}, per-hit `sort`:
  https://elastic.co/docs/reference/elasticsearch/rest-apis/paginate-search-results (search_after)
- range aggregation with `keyed: true` and custom keys (buckets as an object by key):
  https://elastic.co/docs/reference/aggregations/search-aggregations-bucket-range-aggregation
- filter aggregation ({doc_count, <sub-aggregation>}) and terms buckets {key, doc_count}:
  https://elastic.co/docs/reference/aggregations/search-aggregations-bucket-filter-aggregation
  https://elastic.co/docs/reference/aggregations/search-aggregations-bucket-terms-aggregation
- term suggester entries {text, offset, length, options: [{text, score, freq}]}:
  https://elastic.co/docs/reference/elasticsearch/rest-apis/search-suggesters
- post_filter for faceted navigation:
  https://www.elastic.co/guide/en/elasticsearch/reference/current/filter-search-results.html
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, BaseAsyncNode, HttpHeaders
from elastic_transport._node import NodeApiResponse
from elasticsearch import AsyncElasticsearch
from structlog.testing import capture_logs

from search.backend import InvalidCursor, SearchQuery, SearchResult, check_after
from search.elastic import ElasticsearchSearch
from search.elastic_documents import ALIAS, MAPPINGS, document
from search.elastic_query import build_search, search_after
from search.fallback import FALLBACKS, FallbackSearch
from search.reindex import Report, Timer, reindex_elastic
from storage.errors import ProductNotFound

Answer = tuple[int, Any]


@dataclass
class Request:
    method: str
    path: str
    query: str
    body: Any


@dataclass
class FakeCluster:
    """Answers requests in order from `answers` (a default for searches: an empty result)."""

    answers: list[Answer | Callable[[Request], Answer]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    delay: float = 0.0

    def node_class(self) -> type[BaseAsyncNode]:
        cluster = self

        class FakeNode(BaseAsyncNode):
            async def perform_request(  # type: ignore[override]
                self,
                method: str,
                target: str,
                body: bytes | None = None,
                headers: HttpHeaders | None = None,
                request_timeout: Any = None,
            ) -> NodeApiResponse:
                if cluster.delay:
                    await asyncio.sleep(cluster.delay)
                path, _, query = target.partition("?")
                text = body.decode() if body else ""
                parsed: Any = None
                if text and path.endswith("/_bulk"):
                    parsed = [json.loads(line) for line in text.splitlines() if line]
                elif text:
                    parsed = json.loads(text)
                request = Request(method, path, query, parsed)
                cluster.requests.append(request)
                answer = cluster.answers.pop(0) if cluster.answers else empty_search
                status, payload = answer(request) if callable(answer) else answer
                meta = ApiResponseMeta(
                    status=status,
                    http_version="1.1",
                    headers=HttpHeaders(
                        {"content-type": "application/json", "x-elastic-product": "Elasticsearch"}
                    ),
                    duration=0.0,
                    node=self.config,
                )
                return NodeApiResponse(meta, json.dumps(payload).encode())

            async def close(self) -> None:  # type: ignore[override]
                return None

        return FakeNode


EMPTY_SEARCH: dict[str, Any] = {
    "took": 1,
    "timed_out": False,
    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
    "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []},
}


def search_answer(
    hits: list[dict[str, Any]],
    total: int,
    *,
    relation: str = "eq",
    max_score: float | None = None,
    aggregations: dict[str, Any] | None = None,
    **parts: Any,
) -> Answer:
    """A 200 search answer: `hits` (see hit()), hits.total {value, relation}, the aggregations
    and any other top-level parts (suggest)."""
    body: dict[str, Any] = {
        **EMPTY_SEARCH,
        "hits": {
            "total": {"value": total, "relation": relation},
            "max_score": max_score,
            "hits": hits,
        },
    }
    if aggregations is not None:
        body["aggregations"] = aggregations
    return 200, {**body, **parts}


def empty_search(request: Request) -> Answer:
    """What a search that matches nothing answers: every aggregation asked for, empty."""
    aggregations: dict[str, Any] = {}
    for name, agg in ((request.body or {}).get("aggs") or {}).items():
        inner = agg.get("aggs", {})
        aggregations[name] = {"doc_count": 0} | {
            sub: {"buckets": {} if "range" in body else []} for sub, body in inner.items()
        }
    answer = dict(EMPTY_SEARCH)
    if aggregations:
        answer["aggregations"] = aggregations
    return 200, answer


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
async def client(cluster: FakeCluster) -> AsyncIterator[AsyncElasticsearch]:
    # No retries: each request takes exactly one canned answer.
    es = AsyncElasticsearch(
        "http://elastic.test:9200", node_class=cluster.node_class(), max_retries=0
    )
    yield es
    await es.close()


@dataclass
class Attributes:
    """Stands in for PostgreSQL where the backend reads which attributes are filterable."""

    slugs: tuple[str, ...] = ("colour", "material", "size")
    reads: int = 0

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        assert "is_filterable" in sql
        self.reads += 1
        return [
            {"id": n, "slug": slug, "name": slug.title(), "kind": "choice", "unit": "",
             "is_filterable": True, "choices": []}
            for n, slug in enumerate(self.slugs, start=1)
        ]  # fmt: skip


@pytest.fixture
def attributes() -> Attributes:
    return Attributes()


@pytest.fixture
def elastic(client: AsyncElasticsearch, attributes: Attributes) -> ElasticsearchSearch:
    return ElasticsearchSearch(client, primary=None, reader=attributes)  # type: ignore[arg-type]


def hit(product_id: int, name: str, price: int | None, sort: list[Any], score: Any = None) -> Any:
    return {
        "_index": "aioshop-products-20250301000000000000",
        "_id": str(product_id),
        "_score": score,
        "_source": {
            "id": product_id,
            "slug": f"p-{product_id}",
            "name": name,
            "price_min": price,
            "price_max": price,
            "currency": None if price is None else "EUR",
            "in_stock": price is not None,
        },
        "sort": sort,
    }


def facet_aggregations(literal: int | None = None) -> dict[str, Any]:
    def filtered(count: int, values: Any) -> dict[str, Any]:
        return {"doc_count": count, "values": values}

    def terms(*buckets: tuple[Any, int]) -> dict[str, Any]:
        return {
            "doc_count_error_upper_bound": 0,
            "sum_other_doc_count": 0,
            "buckets": [{"key": key, "doc_count": count} for key, count in buckets],
        }

    aggregations: dict[str, Any] = {
        "categories": filtered(5, terms((7, 2), (3, 2), (9, 1))),
        "price_ranges": filtered(
            4,
            {
                "buckets": {
                    "0-1000": {"from": 0.0, "to": 1000.0, "doc_count": 1},
                    "1000-2500": {"from": 1000.0, "to": 2500.0, "doc_count": 3},
                    "2500-5000": {"from": 2500.0, "to": 5000.0, "doc_count": 0},
                    "5000-10000": {"from": 5000.0, "to": 10000.0, "doc_count": 0},
                    "10000-": {"from": 10000.0, "doc_count": 0},
                }
            },
        ),
        # colour is filtered: its counts come from its own aggregation, the others' from these
        "attributes": {
            "doc_count": 3,
            "material": terms(("material=wool", 1)),
            "size": terms(("size=m", 2), ("size=l", 2)),
        },
        "attribute:colour": filtered(
            4, terms(("colour=red", 3), ("colour=blue", 2), ("colour=green", 2))
        ),
    }
    if literal is not None:
        aggregations["literal"] = {"doc_count": literal}
    return aggregations


# --- request bodies ---------------------------------------------------------------------------


async def test_a_filtered_text_search_sends_disjunctive_facets(elastic, cluster) -> None:
    query = SearchQuery(
        text="wool jumper",
        category_ids=(3, 7),
        attributes={"colour": ("red", "blue"), "size": ()},
        price_min=1000,
        price_max=4999,
        in_stock=True,
        sort="price_asc",
        limit=2,
        after=("price_asc", 1500, 41),
    )
    await elastic.search(query)
    (request,) = cluster.requests
    assert (request.method, request.path) == ("POST", f"/{ALIAS}/_search")
    body = request.body
    category = {"terms": {"category_id": [3, 7]}}
    price = {"range": {"price_min": {"gte": 1000, "lte": 4999}}}
    colour = {"terms": {"facets": ["colour=red", "colour=blue"]}}
    words = {
        "bool": {
            "should": [
                {
                    "multi_match": {
                        "query": "wool jumper",
                        "type": "best_fields",
                        "fields": ["name^3", "tags^2", "description", "text_all"],
                        "operator": "and",
                        "fuzziness": "AUTO",
                    }
                },
                {
                    "multi_match": {
                        "query": "wool jumper",
                        "type": "bool_prefix",
                        "fields": [
                            "words",
                            "name_prefix",
                            "name_prefix._2gram",
                            "name_prefix._3gram",
                        ],
                        "operator": "and",
                        "fuzziness": "AUTO",
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }
    # in_stock narrows everything (also the facets); the facet filters only the hits
    assert body["query"] == {"bool": {"filter": [{"term": {"in_stock": True}}], "must": [words]}}
    assert body["post_filter"] == {"bool": {"filter": [category, price, colour]}}
    assert body["sort"] == [
        {"price_min": {"order": "asc", "missing": 9223372036854775807}},
        {"id": {"order": "asc"}},
    ]
    assert body["search_after"] == [1500, 41]
    assert body["size"] == 3  # one more than the page says whether another follows
    assert body["track_total_hits"] is True
    assert body["track_scores"] is True  # sorted by price, yet hits carry their score
    assert body["_source"] == [
        "id",
        "slug",
        "name",
        "price_min",
        "price_max",
        "currency",
        "in_stock",
    ]
    aggs = body["aggs"]
    # Each facet is counted under every filter but its own.
    assert aggs["categories"] == {
        "filter": {"bool": {"filter": [price, colour]}},
        "aggs": {"values": {"terms": {"field": "category_id", "size": 1000}}},
    }
    assert aggs["price_ranges"] == {
        "filter": {"bool": {"filter": [category, colour]}},
        "aggs": {
            "values": {
                "range": {
                    "field": "price_min",
                    "keyed": True,
                    "ranges": [
                        {"key": "0-1000", "from": 0, "to": 1000},
                        {"key": "1000-2500", "from": 1000, "to": 2500},
                        {"key": "2500-5000", "from": 2500, "to": 5000},
                        {"key": "5000-10000", "from": 5000, "to": 10000},
                        {"key": "10000-", "from": 10000},
                    ],
                }
            }
        },
    }

    def values_of(slug: str) -> dict[str, Any]:
        return {"terms": {"field": "filterable_facets", "size": 50, "include": f"{slug}=.*"}}

    # Each unfiltered attribute has its own terms (a brand with thousands of values cannot push
    # the sizes out), under one filter; size has no values: no filter, counted with the others.
    assert aggs["attributes"] == {
        "filter": {"bool": {"filter": [category, price, colour]}},
        "aggs": {"material": values_of("material"), "size": values_of("size")},
    }
    assert aggs["attribute:colour"] == {
        "filter": {"bool": {"filter": [category, price]}},
        "aggs": {"values": values_of("colour")},
    }
    assert "attribute:size" not in aggs
    literal = words["bool"]["should"]
    assert aggs["literal"]["filter"]["bool"]["filter"][1:] == [category, price, colour]
    strict = aggs["literal"]["filter"]["bool"]["filter"][0]["bool"]["should"]
    assert [clause["multi_match"].get("fuzziness") for clause in strict] == [None, None]
    assert [clause["multi_match"]["type"] for clause in strict] == [
        clause["multi_match"]["type"] for clause in literal
    ]
    assert body["suggest"] == {
        "text": "wool jumper",
        "did_you_mean": {"term": {"field": "vocabulary", "suggest_mode": "missing", "size": 1}},
    }


async def test_without_text_a_category_filter_narrows_the_query_itself(elastic, cluster) -> None:
    await elastic.search(SearchQuery(category_ids=(4,), sort="newest"))
    body = cluster.requests[0].body
    assert body["query"] == {"bool": {"filter": [{"terms": {"category_id": [4]}}]}}
    assert "post_filter" not in body and "suggest" not in body and "track_scores" not in body
    assert body["aggs"]["categories"]["filter"] == {"bool": {"filter": []}}
    assert body["sort"] == [
        {"created_at": {"order": "desc", "format": "strict_date_optional_time_nanos"}},
        {"id": {"order": "desc"}},
    ]


async def test_a_sku_adds_exact_and_prefix_clauses_above_any_text_score(elastic, cluster) -> None:
    await elastic.search(SearchQuery(text=" mug-red-3 "))
    should = cluster.requests[0].body["query"]["bool"]["must"][0]["bool"]["should"]
    assert should[2:] == [
        {"constant_score": {"filter": {"term": {"skus": "MUG-RED-3"}}, "boost": 100.0}},
        {"constant_score": {"filter": {"prefix": {"skus": "MUG-RED-3"}}, "boost": 50.0}},
    ]
    await elastic.search(SearchQuery(text="mug"))  # a plain word is no SKU
    assert len(cluster.requests[1].body["query"]["bool"]["must"][0]["bool"]["should"]) == 2


async def test_websearch_syntax_becomes_simple_query_string(elastic, cluster) -> None:
    await elastic.search(SearchQuery(text='"run shoe" -red or blue'))
    body = cluster.requests[0].body
    assert body["query"]["bool"]["must"] == [
        {
            "simple_query_string": {
                "query": '"run shoe" -red | blue',
                "fields": ["name^3", "tags^2", "description", "text_all"],
                "default_operator": "and",
            }
        }
    ]
    assert "suggest" not in body and "literal" not in body["aggs"]


async def test_a_list_without_facets_asks_for_the_page_only(elastic, cluster) -> None:
    cluster.answers.append(
        search_answer(
            [hit(5, "Mug", 900, ["mug", 5]), hit(6, "Nib", 900, ["nib", 6])], 0, relation="gte"
        )
    )
    result = await elastic.search(SearchQuery(sort="name", limit=1, facets=False))
    body = cluster.requests[0].body
    assert "aggs" not in body and body["track_total_hits"] is False
    assert (result.facets, result.total, result.did_you_mean) == (None, None, None)
    assert result.next_after == ("name", "mug", 5)


# --- reading answers --------------------------------------------------------------------------


async def test_hits_facets_total_and_next_page_are_read(elastic, cluster) -> None:
    cluster.answers.append(
        search_answer(
            [
                hit(12, "Red tee", 900, [900, 12], score=2.5),
                hit(4, "Blue tee", 1500, [1500, 4], score=1.25),
                hit(9, "Draft tee", None, [9223372036854775807, 9], score=1.0),
            ],
            4,
            aggregations=facet_aggregations(),
        )
    )
    query = SearchQuery(text="tee", attributes={"colour": ("red",)}, sort="price_asc", limit=2)
    result = await elastic.search(query)
    assert result.backend == "elasticsearch"
    assert result.total == 4
    assert [(h.product_id, h.name, h.price_min, h.currency, h.score) for h in result.hits] == [
        (12, "Red tee", 900, "EUR", 2.5),
        (4, "Blue tee", 1500, "EUR", 1.25),
    ]
    # Same shape and key as PostgreSQL's: (sort, price, id).
    assert result.next_after == ("price_asc", 1500, 4)
    assert result.facets is not None
    assert [(f.value, f.count) for f in result.facets.categories] == [(3, 2), (7, 2), (9, 1)]
    assert [(f.value, f.count) for f in result.facets.price_ranges] == [
        ("0-1000", 1),
        ("1000-2500", 3),
        ("2500-5000", 0),
        ("5000-10000", 0),
        ("10000-", 0),
    ]
    assert {
        slug: [(f.value, f.count) for f in values]
        for slug, values in result.facets.attributes.items()
    } == {
        "colour": [("red", 3), ("blue", 2), ("green", 2)],
        "material": [("wool", 1)],
        "size": [("l", 2), ("m", 2)],
    }
    assert result.did_you_mean is None


async def test_the_last_page_has_no_next_cursor_and_no_text_scores_zero(elastic, cluster) -> None:
    cluster.answers.append(
        search_answer(
            [hit(3, "Mug", 900, [0.0, 3], score=0.0)],
            1,
            max_score=0.0,
            aggregations=facet_aggregations(),
        )
    )
    result = await elastic.search(SearchQuery(limit=5))
    assert result.next_after is None
    assert [h.score for h in result.hits] == [0.0]


@pytest.mark.parametrize(
    ("literal", "options", "expected"),
    [
        (0, [[], [{"text": "shirt", "score": 0.8, "freq": 2}]], "linen shirt"),
        (5, [[], [{"text": "shirt", "score": 0.8, "freq": 2}]], None),  # the typed text finds
        (0, [[], []], None),  # nothing to correct
        (0, [[], [{"text": "shrimp", "score": 0.8, "freq": 2}]], None),  # completes "shr"
    ],
)
async def test_did_you_mean_comes_from_the_term_suggester(
    elastic, cluster, literal: int, options: list[Any], expected: str | None
) -> None:
    last = "shrit" if expected or literal else "shr"
    if options[1] and options[1][0]["text"] == "shrimp":
        last = "shr"
    cluster.answers.append(
        search_answer(
            [],
            6,
            max_score=1.0,
            aggregations=facet_aggregations(literal=literal),
            suggest={
                "did_you_mean": [
                    {"text": "linen", "offset": 0, "length": 5, "options": options[0]},
                    {"text": last, "offset": 6, "length": len(last), "options": options[1]},
                ]
            },
        )
    )
    result = await elastic.search(SearchQuery(text=f"linen {last}"))
    assert result.did_you_mean == expected


# --- cursors ----------------------------------------------------------------------------------


async def test_relevance_cursors_are_tagged_and_not_shared_with_postgres(elastic, cluster) -> None:
    cluster.answers.append(
        search_answer(
            [hit(8, "Lamp", 900, [3.5, 8], 3.5), hit(2, "Lamp", 900, [1.75, 2], 1.75)],
            3,
            max_score=3.5,
            aggregations=facet_aggregations(),
        )
    )
    result = await elastic.search(SearchQuery(text="lamp", limit=1))
    assert result.next_after == ("relevance", "es:3.5", 8)
    await elastic.search(SearchQuery(text="lamp", limit=1, after=result.next_after))
    assert cluster.requests[1].body["search_after"] == [3.5, 8]
    with pytest.raises(InvalidCursor):
        check_after("relevance", result.next_after)  # PostgreSQL refuses it...
    with pytest.raises(InvalidCursor):
        await elastic.search(SearchQuery(text="lamp", after=("relevance", 0.25, 8)))  # ...and us
    assert len(cluster.requests) == 2  # a bad cursor never reaches the cluster


@pytest.mark.parametrize(
    "after",
    [
        ("newest", "yesterday", 1),
        ("name", 5, 1),
        ("price_asc", "5", 1),
        ("price_asc", 5, "1"),
        ("relevance", "es:nan", 1),
        ("relevance", "es:x", 1),
        ("name", "a"),
    ],
)
def test_malformed_cursors_are_invalid(after: tuple[object, ...]) -> None:
    with pytest.raises(InvalidCursor):
        search_after(after[0], after)  # type: ignore[arg-type]


async def test_newest_cursors_carry_postgres_iso_times_both_ways(elastic, cluster) -> None:
    cluster.answers.append(
        search_answer(
            [
                hit(8, "Lamp", 900, ["2025-03-01T10:00:00.123456000Z", 8]),
                hit(2, "Lamp", 900, ["2025-03-01T09:00:00.000000000Z", 2]),
            ],
            3,
            aggregations=facet_aggregations(),
        )
    )
    result = await elastic.search(SearchQuery(sort="newest", limit=1))
    # What PostgreSQL's cursor holds: datetime.isoformat() of the timestamptz.
    assert result.next_after == ("newest", "2025-03-01T10:00:00.123456+00:00", 8)
    check_after("newest", result.next_after)
    postgres_cursor = ("newest", "2025-03-01T11:00:00.5+01:00", 8)
    await elastic.search(SearchQuery(sort="newest", after=postgres_cursor))
    assert cluster.requests[1].body["search_after"] == ["2025-03-01T10:00:00.500000Z", 8]


# --- suggest ----------------------------------------------------------------------------------


async def test_suggest_asks_for_name_prefixes_one_per_name(elastic, cluster) -> None:
    cluster.answers.append(
        search_answer(
            [
                hit(1, "iPhone 15", 900, [7.0, "iPhone 15"], 7.0),
                hit(2, "iPhone 15 case", 900, [6.0, "iPhone 15 case"], 6.0),
            ],
            2,
            max_score=7.0,
        )
    )
    suggestions = await elastic.suggest(" iph ", limit=2)
    assert [(s.text, s.slug, s.product_id) for s in suggestions] == [
        ("iPhone 15", "p-1", 1),
        ("iPhone 15 case", "p-2", 2),
    ]
    body = cluster.requests[0].body
    assert body["size"] == 2
    assert body["collapse"] == {"field": "name.lower"}
    assert body["query"]["bool"]["should"][0]["multi_match"] == {
        "query": "iph",
        "type": "bool_prefix",
        "fields": ["name_prefix", "name_prefix._2gram", "name_prefix._3gram"],
        "operator": "and",
    }
    assert body["query"]["bool"]["should"][2] == {
        "prefix": {"name.lower": {"value": "iph", "boost": 5.0}}
    }
    assert await elastic.suggest("i") == []
    assert await elastic.suggest('"iphone"') == []
    assert len(cluster.requests) == 1


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

    async def search(self, query: SearchQuery) -> SearchResult:
        self.searches += 1
        return SearchResult([], None, 0, None, None, "postgres")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fallback_count(operation: str) -> float:
    return FALLBACKS.labels(operation=operation)._value.get()  # type: ignore[no-any-return]


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
    before = fallback_count("search")
    with capture_logs() as logs:
        assert (await search.search(SearchQuery(text="lamp"))).backend == "postgres"
        clock.now += 4.9
        assert (await search.search(SearchQuery(text="lamp"))).backend == "postgres"
    assert len(cluster.requests) == 1  # the second read skipped Elasticsearch
    assert [(e["event"], e["operation"], e["error"]) for e in logs] == [
        ("search.fallback", "search", "ApiError")
    ]
    assert fallback_count("search") == before + 2
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


def test_build_search_is_pure_and_repeatable() -> None:
    query = SearchQuery(text="tee", attributes={"colour": ("red",)})
    assert build_search(query) == build_search(query)
