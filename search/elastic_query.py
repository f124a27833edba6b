"""Elasticsearch request bodies for a SearchQuery and for suggestions.

Pure functions (no I/O), so tests can assert on exact bodies; search.elastic_results reads the
answers. The semantics follow search.postgres: every word must match (in any text field), the last
one also as a prefix, each within AUTO edits (fuzziness), or the text is a SKU or a SKU prefix;
websearch syntax ("phrase", -word, or) goes through simple_query_string. Facets are disjunctive:
the facet filters (category with text, price, each attribute) go in `post_filter`, so the
aggregations see the rows they remove; each facet's aggregation is a `filter` aggregation over
every other facet filter. Each filterable attribute gets a terms aggregation of its own (`include:
"slug=.*"`), so one attribute with thousands of values (brands) cannot crowd another's values out
of a shared one. As in PostgreSQL, a category filter without text restricts the query itself, so a
category page counts only its categories. Pages are keysets: `search_after` on (sort key, id);
`next_after` is (sort, key, id) like PostgreSQL's, with the same keys for the field sorts (missing
prices sort as the same sentinels), so such cursors work on either backend. Relevance scores of the
two backends are not comparable: an Elasticsearch relevance key is the string 'es:<score>', which
PostgreSQL refuses (InvalidCursor) as this module refuses PostgreSQL's float keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from search.backend import (
    FACET_VALUES_MAX,
    MISSING_PRICE_ASC,
    MISSING_PRICE_DESC,
    PRICE_BUCKETS,
    SKU_PREFIX_MIN,
    InvalidCursor,
    SearchQuery,
    Sort,
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


def build_search(query: SearchQuery, filterable: Sequence[str] = ()) -> dict[str, Any]:
    """The keyword arguments of AsyncElasticsearch.search for one query; raises InvalidCursor.

    `filterable`: the slugs of the filterable attributes, each of which gets a facet.
    """
    after = search_after(query.sort, query.after)
    text = query.text.strip()
    facets = facet_filters(query, has_text=bool(text))
    body = page_request(query, text, facets, after)
    if not query.facets:
        body["track_total_hits"] = False  # a product list: the page only
        return body
    body["track_total_hits"] = True
    body["aggs"] = aggs = facet_aggregations(query, facets, filterable)
    if text and not uses_operators(text):
        # How many would the text find without typo tolerance: "did you mean" only when few.
        aggs["literal"] = literal_count(text, facets)
        body["suggest"] = term_suggestion(text)
    return body


def page_request(
    query: SearchQuery, text: str, facets: dict[str, dict[str, Any]], after: list[Any] | None
) -> dict[str, Any]:
    """The hits: the query, the facet filters after it, the sort and one more than the page."""
    body: dict[str, Any] = {
        "query": {"bool": base_query(query, text)},
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
    return body


def base_query(query: SearchQuery, text: str) -> dict[str, Any]:
    """The bool query that hits and every facet count share: stock, the categories of a query
    without text, and the text."""
    filters: list[dict[str, Any]] = []
    if query.in_stock is not None:
        filters.append({"term": {"in_stock": query.in_stock}})
    if query.category_ids is not None and not text:
        filters.append({"terms": {"category_id": list(query.category_ids)}})
    boolean: dict[str, Any] = {"filter": filters}
    if text:
        boolean["must"] = [text_query(text, fuzzy=True)]
    return boolean


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
    should = [
        all_words(text, "best_fields", TEXT_FIELDS, fuzzy=fuzzy),
        all_words(text, "bool_prefix", PREFIX_FIELDS, fuzzy=fuzzy),
        *sku_clauses(text),
    ]
    return {"bool": {"should": should, "minimum_should_match": 1}}


def all_words(text: str, kind: str, fields: list[str], *, fuzzy: bool) -> dict[str, Any]:
    """A multi_match of every word of the text in any of the fields."""
    words: dict[str, Any] = {"query": text, "type": kind, "fields": fields, "operator": "and"}
    if fuzzy:
        words["fuzziness"] = "AUTO"
    return {"multi_match": words}


def sku_clauses(text: str) -> list[dict[str, Any]]:
    """The text as an exact SKU and, long enough, as a SKU prefix; none for text no SKU has."""
    sku = sku_lookup(text)
    if sku is None:
        return []
    # Constant scores above any text score: an exact SKU first, then a SKU prefix.
    clauses = [{"constant_score": {"filter": {"term": {"skus": sku}}, "boost": 100.0}}]
    if len(sku) >= SKU_PREFIX_MIN:
        clauses.append({"constant_score": {"filter": {"prefix": {"skus": sku}}, "boost": 50.0}})
    return clauses


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


def facet_aggregations(
    query: SearchQuery, facets: dict[str, dict[str, Any]], filterable: Sequence[str]
) -> dict[str, Any]:
    """The categories, price ranges and attribute values, each under every other facet filter."""
    category_terms = {"terms": {"field": "category_id", "size": CATEGORY_FACET_SIZE}}
    return {
        "categories": _filtered(facets, ":category", category_terms),
        "price_ranges": _filtered(facets, ":price", price_ranges()),
        **attribute_aggregations(query, facets, filterable),
    }


def _filtered(filters: dict[str, dict[str, Any]], but: str | None, inner: dict[str, Any]) -> Any:
    others = [clause for key, clause in filters.items() if key != but]
    return {"filter": {"bool": {"filter": others}}, "aggs": {"values": inner}}


def price_ranges() -> dict[str, Any]:
    """A range aggregation of PRICE_BUCKETS, keyed by their labels."""
    ranges = [
        {"key": price_bucket_label(low, high), "from": low} | ({} if high is None else {"to": high})
        for low, high in PRICE_BUCKETS
    ]
    return {"range": {"field": "price_min", "keyed": True, "ranges": ranges}}


def attribute_aggregations(
    query: SearchQuery, facets: dict[str, dict[str, Any]], filterable: Sequence[str]
) -> dict[str, Any]:
    """'attributes': the unfiltered attributes under one filter (every facet filter); and
    'attribute:<slug>' for each filtered one, which ignores its own filter."""
    aggs: dict[str, Any] = {}
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
    return aggs


def attribute_values(slug: str) -> dict[str, Any]:
    """A terms aggregation of one attribute's values ('slug=value' keys), most products first."""
    return {
        "terms": {"field": "filterable_facets", "size": FACET_VALUES_MAX, "include": f"{slug}=.*"}
    }


def literal_count(text: str, facets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A filter aggregation: the hits of the text without fuzziness."""
    return {"filter": {"bool": {"filter": [text_query(text, fuzzy=False), *facets.values()]}}}


def term_suggestion(text: str) -> dict[str, Any]:
    """The term suggester's request: one correction for each word the vocabulary lacks."""
    return {
        "text": text,
        "did_you_mean": {"term": {"field": "vocabulary", "suggest_mode": "missing", "size": 1}},
    }


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
