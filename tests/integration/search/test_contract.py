"""What every search backend promises, run against each: PostgreSQL always, Elasticsearch when
ELASTICSEARCH_URL names a cluster (tests.support.search_backends).

Each test is written once. Where the backends may differ, the `backend` fixture says how (the
fields of Backend), so the tests ask the adapter instead of naming a backend. Tests of one
backend only are in test_search_postgres.py and test_search_elastic_live.py.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from search.backend import (
    PRICE_BUCKETS,
    InvalidCursor,
    SearchBackend,
    SearchQuery,
    SearchResult,
    Sort,
    Suggestion,
    price_bucket_label,
)
from storage.errors import CategoryNotFound, ProductNotFound
from tests.support.search_backends import (
    FIXED_TIME,
    NEEDS_ELASTICSEARCH,
    SORT_KEYS,
    Catalog,
    build_mixed_catalog,
    catalog_for,
    elastic_search,
    expected,
    postgres_search,
)


@dataclass(frozen=True)
class Backend:
    """A search backend under test, and where the contract lets it differ from the others."""

    search: SearchBackend
    name: str  # SearchResult.backend of its answers
    refresh: Callable[[], Awaitable[object]]  # makes the writes so far visible to searches
    # Fuzziness: a correctly typed word also finds its near neighbours ("shirt": "skirt"), below.
    finds_near_neighbours: bool
    # The tests know the order of the suggestions, not only which they are.
    exact_suggestion_order: bool
    # Relevance pages hold while products are added (not so where scores move with the corpus).
    relevance_pages_survive_writes: bool
    # A relevance cursor made by the other backend, which this one refuses.
    foreign_relevance_cursor: tuple[object, ...]

    async def find(self, query: SearchQuery) -> SearchResult:
        await self.refresh()
        return await self.search.search(query)

    async def names(self, text: str, **filters: Any) -> list[str]:
        result = await self.find(SearchQuery(text=text, **filters))
        return [hit.name for hit in result.hits]

    async def suggest(self, prefix: str, limit: int = 8) -> list[Suggestion]:
        await self.refresh()
        return await self.search.suggest(prefix, limit)


async def nothing_to_refresh() -> None:
    """PostgreSQL's documents are visible once their transaction commits."""


@pytest.fixture(params=["postgres", pytest.param("elasticsearch", marks=NEEDS_ELASTICSEARCH)])
async def backend(request: pytest.FixtureRequest, fresh_db: str) -> AsyncIterator[Backend]:
    if request.param == "postgres":
        async with postgres_search(fresh_db) as postgres:
            yield Backend(
                postgres,
                name=postgres.name,
                refresh=nothing_to_refresh,
                finds_near_neighbours=False,
                exact_suggestion_order=True,
                relevance_pages_survive_writes=True,
                foreign_relevance_cursor=("relevance", "es:0.5", 1),
            )
        return
    async with elastic_search(fresh_db) as elastic:
        yield Backend(
            elastic,
            name=elastic.name,
            # Elasticsearch is near-real-time: an explicit refresh before each search.
            refresh=lambda: elastic.client.indices.refresh(index=elastic.alias),
            finds_near_neighbours=True,
            exact_suggestion_order=False,
            # BM25 scores move as documents arrive: a relevance keyset holds only while the index
            # does (documented); the field sorts page on.
            relevance_pages_survive_writes=False,
            foreign_relevance_cursor=("relevance", 0.5, 1),
        )


@pytest.fixture
async def catalog(fresh_db: str, backend: Backend) -> AsyncIterator[Catalog]:
    async with catalog_for(fresh_db, backend.search) as catalog:
        yield catalog


# --- text -----------------------------------------------------------------------------------


async def test_a_match_in_the_name_ranks_above_one_in_the_description(catalog, backend) -> None:
    await catalog.product("Desk light", description="Brighter than any lamp. Lamp, lamp, lamp!")
    await catalog.product("Brass lamp", description="Warm light for a desk.")
    await catalog.product("Floor light", description="Like a lamp, only taller.")
    result = await backend.find(SearchQuery(text="lamp"))
    assert result.backend == backend.name
    assert result.hits[0].name == "Brass lamp"
    assert result.hits[0].score > result.hits[1].score
    assert result.total == 3


async def test_stemming_finds_other_forms_of_a_word(catalog, backend) -> None:
    await catalog.product("Run Shoe")
    await catalog.product("Ceramic mug")
    assert await backend.names("running shoes") == ["Run Shoe"]
    assert await backend.names("shoe runs") == ["Run Shoe"]


async def test_category_names_and_attribute_values_are_searchable(catalog, backend) -> None:
    footwear = await catalog.category("footwear")
    await catalog.attribute("colour")
    await catalog.product("Trail runner", category=footwear, attributes={"colour": "navy-blue"})
    await catalog.product("Desk lamp")
    assert await backend.names("footwear") == ["Trail runner"]
    assert await backend.names("navy") == ["Trail runner"]


async def test_a_partial_last_word_matches_as_you_type(catalog, backend) -> None:
    await catalog.product("iPhone 15 case")
    await catalog.product("Running socks")
    await catalog.product("Ceramic mug")
    assert await backend.names("iph") == ["iPhone 15 case"]
    assert await backend.names("iphone ca") == ["iPhone 15 case"]
    # The stem of "running" is "run": the typed prefix reaches it through the known word.
    assert await backend.names("runni") == ["Running socks"]


async def test_typos_still_find_the_product_and_say_did_you_mean(catalog, backend) -> None:
    await catalog.product("iPhone 15")
    await catalog.product("Headphones")
    result = await backend.find(SearchQuery(text="iphnoe"))
    assert [hit.name for hit in result.hits] == ["iPhone 15"]
    assert result.did_you_mean == "iphone"
    result = await backend.find(SearchQuery(text="headphnes"))
    assert [hit.name for hit in result.hits] == ["Headphones"]
    assert result.did_you_mean == "headphones"


async def test_did_you_mean_corrects_only_the_unknown_word(catalog, backend) -> None:
    await catalog.product("Linen shirt")
    await catalog.product("Linen skirt")
    result = await backend.find(SearchQuery(text="linen shrit"))
    assert result.did_you_mean == "linen shirt"
    assert result.hits[0].name == "Linen shirt"
    if not backend.finds_near_neighbours:
        assert [hit.name for hit in result.hits] == ["Linen shirt"]
    # A correct query is left alone: a known word is never "corrected" into a neighbour, and
    # ranks above one.
    result = await backend.find(SearchQuery(text="linen shirt"))
    assert result.did_you_mean is None
    assert result.hits[0].name == "Linen shirt"
    if not backend.finds_near_neighbours:
        assert [hit.name for hit in result.hits] == ["Linen shirt"]


async def test_an_exact_sku_or_a_sku_prefix_finds_the_product(catalog, backend) -> None:
    mug = await catalog.product("Mug", variants=[("MUG-RED-350", 1500, 3, {})])
    await catalog.product("Mug rack", variants=[("RACK-1", 1500, 3, {})])
    for text in ("MUG-RED-350", "mug-red-350", "  Mug-Red-350 ", "MUG-RE"):
        result = await backend.find(SearchQuery(text=text))
        assert result.hits[0].product_id == mug, text


async def test_an_exact_sku_ranks_above_a_sku_prefix(catalog, backend) -> None:
    longer = await catalog.product("Cable", variants=[("AB-10", 900, 1, {})])
    exact = await catalog.product("Charger", variants=[("AB-1", 900, 1, {})])
    result = await backend.find(SearchQuery(text="ab-1"))
    assert [hit.product_id for hit in result.hits] == [exact, longer]


async def test_websearch_syntax_is_honoured(catalog, backend) -> None:
    await catalog.product("Red run shoe")
    await catalog.product("Blue run shoe")
    await catalog.product("Shoe for a run")
    assert await backend.names('"run shoe" -red') == ["Blue run shoe"]
    assert sorted(await backend.names("red or blue")) == ["Blue run shoe", "Red run shoe"]


# --- documents ------------------------------------------------------------------------------


async def test_unpublished_and_removed_products_never_appear(catalog, backend) -> None:
    shown = await catalog.product("Velvet cushion")
    await catalog.product("Secret zephyrion", published=False)
    removed = await catalog.product("Linen cushion")
    await backend.search.remove_product(removed)
    await backend.search.remove_product(removed)  # idempotent
    await backend.search.remove_product(10**9)
    assert await backend.names("cushion") == ["Velvet cushion"]
    assert await backend.names("zephyrion") == []
    await catalog.conn.execute("UPDATE products SET is_published = false WHERE id = $1", shown)
    await backend.search.index_product(shown)
    assert await backend.names("cushion") == []


async def test_index_product_raises_for_an_unknown_product(backend) -> None:
    with pytest.raises(ProductNotFound):
        await backend.search.index_product(10**9)


async def test_suggest_completes_names_published_only(catalog, backend) -> None:
    await catalog.product("iPhone 15 case")
    await catalog.product("iPhone 15")
    await catalog.product("Case for iPhone")
    await catalog.product("iPhone 16", published=False)
    await catalog.product("Desk lamp", description="Charges an iPhone")
    suggestions = await backend.suggest("iph")
    shortest = await backend.suggest("iph", limit=1)
    if backend.exact_suggestion_order:
        assert [s.text for s in suggestions] == ["iPhone 15", "iPhone 15 case", "Case for iPhone"]
        assert [s.text for s in shortest] == ["iPhone 15"]
    else:
        assert {s.text for s in suggestions} == {"iPhone 15", "iPhone 15 case", "Case for iPhone"}
        assert len(shortest) == 1
    assert {s.text for s in await backend.suggest("iphone ca")} == {
        "iPhone 15 case",
        "Case for iPhone",
    }
    assert await backend.suggest("i") == []
    if backend.exact_suggestion_order:
        assert [s.text for s in await backend.suggest("iphnoe")][:1] == ["iPhone 15"]
    first = suggestions[0]
    assert first.slug and isinstance(first.product_id, int)


# --- filters and facets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"text": "tee"},
        {"category_ids": ("tops", "shirts", "knitwear")},
        {"text": "jumper", "category_ids": ("knitwear",)},
        {"attributes": {"colour": ("red", "blue")}},
        {"attributes": {"colour": ("red",), "size": ("m", "l")}, "in_stock": True},
        {"attributes": {"material": ("linen",)}},
        {"price_min": 1000, "price_max": 4999},
        {"text": "mug", "price_min": 2500, "attributes": {"size": ("s",)}, "in_stock": False},
        {
            "category_ids": ("shirts", "knitwear"),
            "price_max": 2499,
            "attributes": {"colour": ("green", "black"), "size": ("l",)},
        },
    ],
)
async def test_filters_and_facets_match_counts_computed_independently(
    catalog, backend, shape: dict[str, Any]
) -> None:
    categories = await build_mixed_catalog(catalog)
    if "category_ids" in shape:
        shape = {**shape, "category_ids": tuple(categories[c] for c in shape["category_ids"])}
    query = SearchQuery(limit=100, **shape)
    hits, category_counts, price_counts, attribute_counts = expected(
        list(catalog.items.values()), query
    )
    result = await backend.find(query)
    assert sorted(hit.product_id for hit in result.hits) == sorted(hits)
    assert result.total == len(hits)
    assert result.facets is not None
    assert {f.value: f.count for f in result.facets.categories} == dict(category_counts)
    assert [f.value for f in result.facets.price_ranges] == [
        price_bucket_label(low, high) for low, high in PRICE_BUCKETS
    ]
    assert {f.value: f.count for f in result.facets.price_ranges if f.count} == dict(price_counts)
    assert {
        slug: {f.value: f.count for f in values}
        for slug, values in result.facets.attributes.items()
    } == {slug: dict(counts) for slug, counts in attribute_counts.items()}
    assert "care" not in result.facets.attributes  # not filterable
    for values in result.facets.attributes.values():
        assert [f.count for f in values] == sorted((f.count for f in values), reverse=True)


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"text": "tee"},
        {"facets": False, "sort": "name"},
        {"facets": False},
        {"sort": "price_asc"},
    ],
)
async def test_a_category_slug_means_the_category_and_its_descendants(
    catalog, backend, shape: dict[str, Any]
) -> None:
    categories = await build_mixed_catalog(catalog)
    by_ids = SearchQuery(
        limit=100,
        category_ids=tuple(categories[c] for c in ("tops", "shirts", "knitwear")),
        **shape,
    )
    by_slug = replace(by_ids, category_ids=None, category="tops")
    expanded, resolved = await backend.find(by_ids), await backend.find(by_slug)
    assert resolved.hits and [h.product_id for h in resolved.hits] == [
        h.product_id for h in expanded.hits
    ]
    assert resolved.hits == expanded.hits
    assert (resolved.facets, resolved.total) == (expanded.facets, expanded.total)
    with pytest.raises(CategoryNotFound):
        await backend.find(replace(by_slug, category="nowhere"))
    with pytest.raises(ValueError, match="not both"):
        replace(by_ids, category="tops")


# --- pagination -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "text", "facets"),
    [
        ("relevance", "lamp", True),
        ("price_asc", "lamp", True),
        ("price_desc", "lamp", True),
        ("newest", "lamp", True),
        ("name", "lamp", True),
        # Lists without text or facets read only their page (PostgreSQL: another statement).
        ("price_asc", "", False),
        ("price_desc", "", False),
        ("newest", "", False),
        ("name", "", False),
    ],
)
async def test_paging_never_repeats_or_skips_while_products_are_added(
    catalog, backend, sort: Sort, text: str, facets: bool
) -> None:
    rng = random.Random(sort)
    for number in range(23):
        price = rng.choice([900, 1500, 1500, 2000])
        await catalog.product(
            f"Lamp {rng.choice('ABC')}",
            description=rng.choice(["", "a lamp", "lamp lamp"]),
            variants=[(f"L-{number}", price, 1, {})] if number % 7 else [],
            created_at=FIXED_TIME,  # ties everywhere: only the id tiebreak orders them
        )
    original = set(catalog.items)
    seen: list[int] = []
    query = SearchQuery(text=text, sort=sort, limit=4, facets=facets)
    adding = sort != "relevance" or backend.relevance_pages_survive_writes
    added = 0
    while True:
        result = await backend.find(query)
        seen += [hit.product_id for hit in result.hits]
        if result.next_after is None:
            break
        assert result.next_after[0] == sort and len(result.next_after) == 3
        for _ in range(2 if adding else 0):  # new products before, among and after the rest
            added += 1
            await catalog.product(
                f"Lamp {rng.choice('ABC')}",
                description=rng.choice(["", "lamp lamp"]),
                variants=[(f"NEW-{added}", rng.choice([900, 1500, 2000]), 1, {})],
                created_at=rng.choice([FIXED_TIME, None]),
            )
        query = replace(query, after=result.next_after)
    assert len(seen) == len(set(seen)), "an item came twice"
    assert original <= set(seen), "an item was skipped"
    if sort in SORT_KEYS and SORT_KEYS[sort] is not None:
        in_order = [catalog.items[i] for i in seen if i in original]
        assert in_order == sorted(in_order, key=SORT_KEYS[sort])


async def test_a_cursor_from_another_sort_is_rejected(catalog, backend) -> None:
    for number in range(3):
        await catalog.product(f"Lamp {number}")
    result = await backend.find(SearchQuery(text="lamp", sort="name", limit=1))
    assert result.next_after is not None
    with pytest.raises(InvalidCursor):
        await backend.find(SearchQuery(text="lamp", sort="newest", after=result.next_after))
    with pytest.raises(InvalidCursor):
        await backend.find(SearchQuery(sort="price_asc", after=("price_asc", "x", 1)))
    with pytest.raises(InvalidCursor):
        await backend.find(SearchQuery(text="lamp", after=backend.foreign_relevance_cursor))
