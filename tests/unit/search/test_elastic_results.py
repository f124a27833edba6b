"""How the Elasticsearch backend reads the answers (search.elastic_results), without a server:
canned answers in the shapes Elastic documents (tests.support.fake_elastic)."""

from __future__ import annotations

from typing import Any

import pytest

from search.backend import SearchQuery
from tests.support.fake_elastic import facet_aggregations, hit, search_answer

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
