"""The SearchResult and suggestions read from Elasticsearch's answers to search.elastic_query.

Pure functions (no I/O), like the request bodies. `next_after` is (sort, key, id) as
PostgreSQL's, except a relevance key: the string 'es:<score>' (see search.elastic_query).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from search.backend import (
    DID_YOU_MEAN_BELOW,
    FACET_VALUES_MAX,
    PRICE_BUCKETS,
    Facets,
    FacetValue,
    SearchHit,
    SearchQuery,
    SearchResult,
    Sort,
    Suggestion,
    price_bucket_label,
)
from search.elastic_query import BACKEND, SCORE_PREFIX


def parse_search(query: SearchQuery, response: dict[str, Any]) -> SearchResult:
    """The SearchResult of a response to build_search(query)."""
    has_text = bool(query.text.strip())
    limit = max(query.limit, 1)
    raw_hits = response["hits"]["hits"]
    hits = [_hit(hit, has_text) for hit in raw_hits[:limit]]
    next_after: tuple[object, ...] | None = None
    if len(raw_hits) > limit:
        key, last_id = raw_hits[limit - 1]["sort"]
        next_after = (query.sort, _key(query.sort, key), int(last_id))
    if not query.facets:
        return SearchResult(hits, None, None, next_after, None, BACKEND)
    aggs = response.get("aggregations") or {}
    total = int(response["hits"]["total"]["value"])
    correction = None
    if "literal" in aggs:
        literal_total = int(aggs["literal"]["doc_count"])
        if literal_total < DID_YOU_MEAN_BELOW and total > literal_total:
            correction = did_you_mean(response.get("suggest"))
    return SearchResult(
        hits=hits,
        facets=_facets(aggs),
        total=total,
        next_after=next_after,
        did_you_mean=correction,
        backend=BACKEND,
    )


def _hit(hit: dict[str, Any], has_text: bool) -> SearchHit:
    source = hit["_source"]
    score = hit.get("_score")
    return SearchHit(
        product_id=int(source["id"]),
        slug=source["slug"],
        name=source["name"],
        price_min=source.get("price_min"),
        price_max=source.get("price_max"),
        currency=source.get("currency"),
        in_stock=bool(source.get("in_stock")),
        score=float(score) if has_text and score is not None else 0.0,
    )


def _key(sort: Sort, value: Any) -> object:
    if sort == "relevance":
        return f"{SCORE_PREFIX}{float(value)!r}"
    if sort == "newest":
        return datetime.fromisoformat(value).isoformat()
    return value


def did_you_mean(suggest: dict[str, Any] | None) -> str | None:
    """The text with each unknown word replaced by the term suggester's first option.

    An option that merely completes the last word ("runni" -> "running") is no correction: the
    prefix already found it.
    """
    entries = (suggest or {}).get("did_you_mean") or []
    words, corrected = [], False
    for position, entry in enumerate(entries):
        options = entry.get("options") or []
        option = options[0]["text"] if options else None
        last = position == len(entries) - 1
        if option is not None and not (last and option.startswith(entry["text"])):
            words.append(option)
            corrected = True
        else:
            words.append(entry["text"])
    return " ".join(words) if corrected else None


def _facets(aggs: dict[str, Any]) -> Facets:
    categories = [
        FacetValue(int(bucket["key"]), int(bucket["doc_count"]))
        for bucket in aggs["categories"]["values"]["buckets"]
    ]
    categories.sort(key=lambda f: (-f.count, f.value))
    prices = aggs["price_ranges"]["values"]["buckets"]
    return Facets(
        categories=categories,
        attributes=_attribute_facets(aggs),
        price_ranges=[
            FacetValue(label, int(prices.get(label, {}).get("doc_count", 0)))
            for label in (price_bucket_label(low, high) for low, high in PRICE_BUCKETS)
        ],
    )


def _attribute_facets(aggs: dict[str, Any]) -> dict[str, list[FacetValue]]:
    """Each attribute's values, most products first, from the shared 'attributes' aggregation
    and the 'attribute:<slug>' ones."""
    terms: dict[str, Any] = {  # slug -> its terms aggregation's answer
        slug: agg for slug, agg in aggs.get("attributes", {}).items() if isinstance(agg, dict)
    }
    for name, agg in aggs.items():
        if name.startswith("attribute:"):
            terms[name.removeprefix("attribute:")] = agg["values"]
    counted: dict[str, list[tuple[int, str]]] = {}
    for slug, agg in terms.items():
        for bucket in agg["buckets"]:
            value = str(bucket["key"]).partition("=")[2]
            counted.setdefault(slug, []).append((int(bucket["doc_count"]), value))
    return {
        slug: [
            FacetValue(value, count)
            for count, value in sorted(values, key=lambda pair: (-pair[0], pair[1]))[
                :FACET_VALUES_MAX
            ]
        ]
        for slug, values in sorted(counted.items())
    }


def parse_suggest(response: dict[str, Any]) -> list[Suggestion]:
    """The suggestions of a response to build_suggest."""
    return [
        Suggestion(
            text=hit["_source"]["name"],
            slug=hit["_source"]["slug"],
            product_id=int(hit["_source"]["id"]),
        )
        for hit in response["hits"]["hits"]
    ]
