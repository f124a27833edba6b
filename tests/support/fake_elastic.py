"""A fake Elasticsearch cluster for unit tests of the Elasticsearch backend, and canned answers.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elastic_transport import ApiResponseMeta, BaseAsyncNode, HttpHeaders
from elastic_transport._node import NodeApiResponse

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
