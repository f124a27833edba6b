"""PostgreSQL search against real PostgreSQL: what is asserted of this backend only (its ranking
tiers, the search_terms vocabulary, LIST against SEARCH, and a few rules not yet run against
Elasticsearch). The contract every backend meets is test_search_contract.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from search.backend import SearchQuery, Sort
from search.postgres import PostgresSearch
from tests.support.search_backends import (
    Catalog,
    build_mixed_catalog,
    catalog_for,
    expected,
    postgres_search,
)


@pytest.fixture
async def search(fresh_db: str) -> AsyncIterator[PostgresSearch]:
    async with postgres_search(fresh_db) as backend:
        yield backend


@pytest.fixture
async def catalog(fresh_db: str, search: PostgresSearch) -> AsyncIterator[Catalog]:
    async with catalog_for(fresh_db, search) as catalog:
        yield catalog


async def names(search: PostgresSearch, text: str, **filters: Any) -> list[str]:
    result = await search.search(SearchQuery(text=text, **filters))
    return [hit.name for hit in result.hits]


# --- text and documents ---------------------------------------------------------------------


async def test_the_whole_query_in_the_name_ranks_above_parts_of_it(catalog, search) -> None:
    await catalog.product("Wool socks", description="Warm and soft, not a jumper.")
    await catalog.product("Wool jumper")
    assert (await names(search, "wool jumper"))[0] == "Wool jumper"


async def test_nothing_close_gives_no_did_you_mean(catalog, search) -> None:
    await catalog.product("Linen shirt")
    result = await search.search(SearchQuery(text="xylophone"))
    assert result.hits == [] and result.total == 0
    assert result.did_you_mean is None


async def test_unpublished_products_never_appear(catalog, search) -> None:
    shoes = await catalog.category("shoes")
    await catalog.attribute("colour")
    await catalog.product("Secret sneaker", category=shoes, attributes={"colour": "red"})
    await catalog.product(
        "Secret zephyrion", category=shoes, attributes={"colour": "gold"}, published=False
    )
    for query in (SearchQuery(text="secret"), SearchQuery(), SearchQuery(text="SECRET-")):
        result = await search.search(query)
        assert all(hit.name == "Secret sneaker" for hit in result.hits)
        assert {f.value for f in result.facets.attributes.get("colour", [])} <= {"red"}
        assert sum(f.count for f in result.facets.categories) <= 1
    # Its words are unknown to completion, correction and suggestions.
    assert await names(search, "zephyr") == []
    assert (await search.search(SearchQuery(text="zephyrio"))).did_you_mean is None
    assert [s.text for s in await search.suggest("secret")] == ["Secret sneaker"]


async def test_unpublishing_removes_the_product_after_reindexing(catalog, search) -> None:
    search.terms_ttl = 0  # every resolve reads search_terms
    product_id = await catalog.product("Velvet cushion")
    await catalog.product("Linen cushion")
    await catalog.conn.execute("UPDATE products SET is_published = false WHERE id = $1", product_id)
    await search.index_product(product_id)
    assert await names(search, "velvet") == []
    # Its words linger in search_terms, but a correction that finds nothing is not offered...
    assert (await search.search(SearchQuery(text="velvett"))).did_you_mean is None
    # ...and rebuilding the vocabulary forgets them.
    assert [w.correction for w in await search.resolve(["velvett"])] == ["velvet"]
    assert await search.rebuild_terms() == 2  # linen, cushion
    assert [w.correction for w in await search.resolve(["velvett"])] == [None]
    assert [w.correction for w in await search.resolve(["cushon"])] == ["cushion"]


# --- lists and pages ------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["newest", "price_asc", "price_desc", "name"])
@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"category_ids": ("tops", "shirts", "knitwear")},
        {"attributes": {"colour": ("red",), "size": ("m", "l")}, "in_stock": True},
        {"category_ids": ("shirts", "knitwear"), "price_min": 900, "price_max": 4999},
    ],
)
async def test_a_list_without_facets_has_the_hits_of_the_search_in_its_order(
    catalog, search, shape: dict[str, Any], sort: Sort
) -> None:
    categories = await build_mixed_catalog(catalog)
    if "category_ids" in shape:
        shape = {**shape, "category_ids": tuple(categories[c] for c in shape["category_ids"])}
    query = SearchQuery(limit=100, sort=sort, **shape)
    full = await search.search(query)
    listed = await search.search(replace(query, facets=False))
    assert [h.product_id for h in listed.hits] == [h.product_id for h in full.hits]
    assert listed.hits == full.hits
    assert (listed.facets, listed.total) == (None, None)
    hits, *_ = expected(list(catalog.items.values()), query)
    assert sorted(h.product_id for h in listed.hits) == sorted(hits)


async def test_hits_carry_prices_and_stock(catalog, search) -> None:
    await catalog.product("Mug", variants=[("MUG-S", 1500, 0, {}), ("MUG-L", 1900, 2, {})])
    await catalog.product("Draft mug", variants=[])
    result = await search.search(SearchQuery(text="mug", sort="price_asc"))
    first, second = result.hits
    assert (first.price_min, first.price_max, first.currency, first.in_stock) == (
        1500,
        1900,
        "EUR",
        True,
    )
    assert (second.name, second.price_min, second.in_stock) == ("Draft mug", None, False)
    assert (await search.search(SearchQuery(text="mug", in_stock=True))).total == 1
    assert (await search.search(SearchQuery(text="mug", in_stock=False))).total == 1


async def test_pages_follow_the_relevance_order(catalog, search) -> None:
    for number in range(9):
        await catalog.product(
            "Desk light" if number % 3 else "Lamp", description="lamp " * (number % 4)
        )
    everything = await search.search(SearchQuery(text="lamp", limit=100))
    paged: list[int] = []
    query = SearchQuery(text="lamp", limit=2)
    while True:
        result = await search.search(query)
        paged += [hit.product_id for hit in result.hits]
        if result.next_after is None:
            break
        query = SearchQuery(text="lamp", limit=2, after=result.next_after)
    assert paged == [hit.product_id for hit in everything.hits]
    scores = [hit.score for hit in everything.hits]
    assert scores == sorted(scores, reverse=True)
