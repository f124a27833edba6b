"""Elasticsearch request bodies for a SearchQuery, and the SearchResult read from the response.

Pure functions (no I/O), so tests can assert on exact bodies. The semantics follow
search.postgres: every word must match (in any text field), the last one also as a prefix, each
within AUTO edits (fuzziness), or the text is a SKU or a SKU prefix; websearch syntax ("phrase",
-word, or) goes through simple_query_string. Facets are disjunctive: the facet filters (category
with text, price, each attribute) go in `post_filter`, so the aggregations see the rows they
remove; each facet's aggregation is a `filter` aggregation over every other facet filter. Each
filterable attribute gets a terms aggregation of its own (`include: "slug=.*"`), so one attribute
with thousands of values (brands) cannot crowd another's values out of a shared one. As in
PostgreSQL, a category filter without text restricts the query itself, so a category page counts
only its categories. Pages are keysets: `search_after` on (sort key, id); `next_after` is
(sort, key, id) like PostgreSQL's, with the same keys for the field sorts (missing prices sort as
the same sentinels), so such cursors work on either backend. Relevance scores of the two backends
are not comparable: an Elasticsearch relevance key is the string 'es:<score>', which PostgreSQL
refuses (InvalidCursor) as this module refuses PostgreSQL's float keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from search.backend import (
    DID_YOU_MEAN_BELOW,
    FACET_VALUES_MAX,
    MISSING_PRICE_ASC,
    MISSING_PRICE_DESC,
    PRICE_BUCKETS,
    SKU_PREFIX_MIN,
    Facets,
    FacetValue,
    InvalidCursor,
    SearchHit,
    SearchQuery,
    SearchResult,
    Sort,
    Suggestion,
    check_after,
    price_bucket_label,
    sku_lookup,
)
from search.elastic_documents import format_time
from search.text import uses_operators

BACKEND = "elasticsearch"
SCORE_PREFIX = "es:"
CATEGORY_FACET_SIZE = 1000
SLUG = re.compile(r"[a-z0-9_]+")  # attribute slugs (migration 0005): safe in an `include` regex
OR_WORD = re.compile(r"(?i)(?<!\S)or(?!\S)")
TEXT_FIELDS = ["name^3", "tags^2", "description", "text_all"]
PREFIX_FIELDS = ["words", "name_prefix", "name_prefix._2gram", "name_prefix._3gram"]
SORT_CLAUSES: dict[Sort, list[dict[str, Any]]] = {
    "relevance": [{"_score": {"order": "desc"}}, {"id": {"order": "desc"}}],
    "price_asc": [
        {"price_min": {"order": "asc", "missing": MISSING_PRICE_ASC}},
        {"id": {"order": "asc"}},
    ],
    "price_desc": [
        {"price_min": {"order": "desc", "missing": MISSING_PRICE_DESC}},
        {"id": {"order": "desc"}},
    ],
    "newest": [
        {"created_at": {"order": "desc", "format": "strict_date_optional_time_nanos"}},
        {"id": {"order": "desc"}},
    ],
    "name": [{"name.lower": {"order": "asc"}}, {"id": {"order": "asc"}}],  # as lower(name)
}
HIT_SOURCE = ["id", "slug", "name", "price_min", "price_max", "currency", "in_stock"]


def search_after(sort: Sort, after: tuple[object, ...] | None) -> list[Any] | None:
    """`after` as Elasticsearch sort values; raises InvalidCursor (see the module docstring)."""
    if after is None:
        return None
    if sort != "relevance":
        key, last_id = check_after(sort, after)
        if sort == "newest":
            key = format_time(datetime.fromisoformat(key))
        return [key, last_id]
    if len(after) != 3 or after[0] != sort:
        raise InvalidCursor(sort)
    _, key, last_id = after
    if not isinstance(last_id, int) or isinstance(last_id, bool):
        raise InvalidCursor(sort)
    if not isinstance(key, str) or not key.startswith(SCORE_PREFIX):
        raise InvalidCursor(sort)
    try:
        score = float(key[len(SCORE_PREFIX) :])
    except ValueError:
        raise InvalidCursor(sort) from None
    if not math.isfinite(score):
        raise InvalidCursor(sort)
    return [score, last_id]


def text_query(text: str, *, fuzzy: bool) -> dict[str, Any]:
    """What the text must match: all words (fuzzy: within AUTO edits), the last also as a
    prefix, or a SKU; websearch syntax as simple_query_string."""
    if uses_operators(text):
        return {
            "simple_query_string": {
                "query": OR_WORD.sub("|", text),
                "fields": TEXT_FIELDS,
                "default_operator": "and",
            }
        }
    words: dict[str, Any] = {
        "query": text,
        "type": "best_fields",
        "fields": TEXT_FIELDS,
        "operator": "and",
    }
    if fuzzy:
        words["fuzziness"] = "AUTO"
    prefix: dict[str, Any] = {
        "query": text,
        "type": "bool_prefix",
        "fields": PREFIX_FIELDS,
        "operator": "and",
    }
    if fuzzy:
        prefix["fuzziness"] = "AUTO"
    should: list[dict[str, Any]] = [{"multi_match": words}, {"multi_match": prefix}]
    sku = sku_lookup(text)
    if sku is not None:
        # Constant scores above any text score: an exact SKU first, then a SKU prefix.
        should.append({"constant_score": {"filter": {"term": {"skus": sku}}, "boost": 100.0}})
        if len(sku) >= SKU_PREFIX_MIN:
            should.append({"constant_score": {"filter": {"prefix": {"skus": sku}}, "boost": 50.0}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def facet_filters(query: SearchQuery, *, has_text: bool) -> dict[str, dict[str, Any]]:
    """Filters that facets ignore in their own dimension, keyed ':category', ':price' or slug."""
    found: dict[str, dict[str, Any]] = {}
    if query.category_ids is not None and has_text:
        found[":category"] = {"terms": {"category_id": list(query.category_ids)}}
    bounds: dict[str, int] = {}
    if query.price_min is not None:
        bounds["gte"] = query.price_min
    if query.price_max is not None:
        bounds["lte"] = query.price_max
    if bounds:
        found[":price"] = {"range": {"price_min": bounds}}
    for slug, values in sorted(query.attributes.items()):
        if values:
            found[slug] = {"terms": {"facets": [f"{slug}={value}" for value in values]}}
    return found


def _filtered(filters: dict[str, dict[str, Any]], but: str | None, inner: dict[str, Any]) -> Any:
    others = [clause for key, clause in filters.items() if key != but]
    return {"filter": {"bool": {"filter": others}}, "aggs": {"values": inner}}


def attribute_values(slug: str) -> dict[str, Any]:
    """A terms aggregation of one attribute's values ('slug=value' keys), most products first."""
    return {
        "terms": {"field": "filterable_facets", "size": FACET_VALUES_MAX, "include": f"{slug}=.*"}
    }


def build_search(query: SearchQuery, filterable: Sequence[str] = ()) -> dict[str, Any]:
    """The keyword arguments of AsyncElasticsearch.search for one query; raises InvalidCursor.

    `filterable`: the slugs of the filterable attributes, each of which gets a facet.
    """
    after = search_after(query.sort, query.after)
    text = query.text.strip()
    filters: list[dict[str, Any]] = []
    if query.in_stock is not None:
        filters.append({"term": {"in_stock": query.in_stock}})
    if query.category_ids is not None and not text:
        filters.append({"terms": {"category_id": list(query.category_ids)}})
    boolean: dict[str, Any] = {"filter": filters}
    if text:
        boolean["must"] = [text_query(text, fuzzy=True)]
    facets = facet_filters(query, has_text=bool(text))
    body: dict[str, Any] = {
        "query": {"bool": boolean},
        "sort": SORT_CLAUSES[query.sort],
        "size": max(query.limit, 1) + 1,
        "source": HIT_SOURCE,
    }
    if text and query.sort != "relevance":
        body["track_scores"] = True
    if facets:
        body["post_filter"] = {"bool": {"filter": list(facets.values())}}
    if after is not None:
        body["search_after"] = after
    if not query.facets:
        body["track_total_hits"] = False  # a product list: the page only
        return body
    body["track_total_hits"] = True
    body["aggs"] = aggs = {
        "categories": _filtered(
            facets, ":category", {"terms": {"field": "category_id", "size": CATEGORY_FACET_SIZE}}
        ),
        "price_ranges": _filtered(
            facets,
            ":price",
            {
                "range": {
                    "field": "price_min",
                    "keyed": True,
                    "ranges": [
                        {"key": price_bucket_label(low, high), "from": low}
                        | ({} if high is None else {"to": high})
                        for low, high in PRICE_BUCKETS
                    ],
                }
            },
        ),
    }
    # Unfiltered attributes share one filter (every facet filter); a filtered one ignores its own.
    unfiltered = {
        slug: attribute_values(slug)
        for slug in filterable
        if slug not in facets and SLUG.fullmatch(slug)
    }
    if unfiltered:
        aggs["attributes"] = {
            "filter": {"bool": {"filter": list(facets.values())}},
            "aggs": unfiltered,
        }
    for slug in query.attributes:
        if slug in facets and SLUG.fullmatch(slug):
            aggs[f"attribute:{slug}"] = _filtered(facets, slug, attribute_values(slug))
    if text and not uses_operators(text):
        # How many would the text find without typo tolerance: "did you mean" only when few.
        aggs["literal"] = {
            "filter": {"bool": {"filter": [text_query(text, fuzzy=False), *facets.values()]}}
        }
        body["suggest"] = {
            "text": text,
            "did_you_mean": {"term": {"field": "vocabulary", "suggest_mode": "missing", "size": 1}},
        }
    return body


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


def _facets(aggs: dict[str, Any], query: SearchQuery) -> Facets:
    categories = [
        FacetValue(int(bucket["key"]), int(bucket["doc_count"]))
        for bucket in aggs["categories"]["values"]["buckets"]
    ]
    categories.sort(key=lambda f: (-f.count, f.value))
    prices = aggs["price_ranges"]["values"]["buckets"]
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
    attributes = {
        slug: [
            FacetValue(value, count)
            for count, value in sorted(values, key=lambda pair: (-pair[0], pair[1]))[
                :FACET_VALUES_MAX
            ]
        ]
        for slug, values in sorted(counted.items())
    }
    return Facets(
        categories=categories,
        attributes=attributes,
        price_ranges=[
            FacetValue(label, int(prices.get(label, {}).get("doc_count", 0)))
            for label in (price_bucket_label(low, high) for low, high in PRICE_BUCKETS)
        ],
    )


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
        facets=_facets(aggs, query),
        total=total,
        next_after=next_after,
        did_you_mean=correction,
        backend=BACKEND,
    )


def build_suggest(prefix: str, limit: int) -> dict[str, Any]:
    """The keyword arguments of AsyncElasticsearch.search for autocomplete: names starting with
    the text first, then names whose words complete it (or are within AUTO edits of it)."""
    return {
        "query": {
            "bool": {
                "should": [
                    {
                        "multi_match": {
                            "query": prefix,
                            "type": "bool_prefix",
                            "fields": PREFIX_FIELDS[1:],
                            "operator": "and",
                        }
                    },
                    {"match": {"name": {"query": prefix, "operator": "and", "fuzziness": "AUTO"}}},
                    {"prefix": {"name.lower": {"value": prefix.lower(), "boost": 5.0}}},
                ],
                "minimum_should_match": 1,
            }
        },
        "collapse": {"field": "name.lower"},  # one product per name, as PostgreSQL's DISTINCT ON
        "sort": [{"_score": {"order": "desc"}}, {"name.raw": {"order": "asc"}}],
        "size": limit,
        "source": ["id", "slug", "name"],
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
