"""The Elasticsearch backend's requests (search.elastic_query), without a server: the bodies the
real client sends to a fake cluster (tests.support.fake_elastic), and the cursors it accepts."""

from __future__ import annotations

from typing import Any

import pytest

from search.backend import InvalidCursor, SearchQuery, check_after
from search.elastic_documents import ALIAS
from search.elastic_query import build_search, search_after
from tests.support.fake_elastic import facet_aggregations, hit, search_answer

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


def test_build_search_is_pure_and_repeatable() -> None:
    query = SearchQuery(text="tee", attributes={"colour": ("red",)})
    assert build_search(query) == build_search(query)
