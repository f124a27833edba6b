"""The Elasticsearch backend against a real cluster: what PostgreSQL's tests ask of search.

Runs only when ELASTICSEARCH_URL names a cluster (e.g. `docker run -p 9200:9200 -e
discovery.type=single-node -e xpack.security.enabled=false elasticsearch:9.1.0`). Each test gets
its own alias (`aioshop-test-<random>`), whose indices are deleted afterwards. Writes are made
visible with an explicit refresh before each search (Elasticsearch is near-real-time).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from search.backend import PRICE_BUCKETS, InvalidCursor, SearchQuery, Sort, price_bucket_label
from search.elastic import ElasticsearchSearch
from search.reindex import Report, Timer, reindex_elastic
from storage.database import connect, create_pool
from storage.errors import CategoryNotFound, ProductNotFound
from tests.integration.test_search_postgres import (
    FIXED_TIME,
    SORT_KEYS,
    Catalog,
    build_mixed_catalog,
    expected,
)

ELASTICSEARCH_URL = os.environ.get("ELASTICSEARCH_URL")
RENAME = "UPDATE products SET name = $2 WHERE id = $1"
pytestmark = pytest.mark.skipif(
    not ELASTICSEARCH_URL,
    reason="ELASTICSEARCH_URL is not set: these tests need a real Elasticsearch cluster",
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncElasticsearch]:
    es = AsyncElasticsearch(str(ELASTICSEARCH_URL), request_timeout=30)
    yield es
    await es.close()


@pytest.fixture
async def primary(fresh_db: str) -> AsyncIterator[Any]:
    pool = await create_pool(fresh_db, 3)
    yield pool
    await pool.close()


@pytest.fixture
async def search(client: AsyncElasticsearch, primary: Any) -> AsyncIterator[ElasticsearchSearch]:
    alias = f"aioshop-test-{uuid.uuid4().hex[:10]}"
    backend = ElasticsearchSearch(client, primary, alias=alias)
    await backend.ensure_alias()
    yield backend
    # By name: clusters refuse wildcard deletes (action.destructive_requires_name).
    found = await client.indices.get(index=f"{alias}-*", allow_no_indices=True)
    if found.body:
        await client.indices.delete(index=list(found.body))


@pytest.fixture
async def catalog(fresh_db: str, search: ElasticsearchSearch) -> AsyncIterator[Catalog]:
    conn = await connect(fresh_db)
    yield Catalog(conn, search)  # type: ignore[arg-type]
    await conn.close()


async def find(search: ElasticsearchSearch, query: SearchQuery) -> Any:
    await search.client.indices.refresh(index=search.alias)
    return await search.search(query)


async def names(search: ElasticsearchSearch, text: str, **filters: Any) -> list[str]:
    result = await find(search, SearchQuery(text=text, **filters))
    return [hit.name for hit in result.hits]


async def test_a_match_in_the_name_ranks_above_one_in_the_description(catalog, search) -> None:
    await catalog.product("Desk light", description="Brighter than any lamp. Lamp, lamp, lamp!")
    await catalog.product("Brass lamp", description="Warm light for a desk.")
    await catalog.product("Floor light", description="Like a lamp, only taller.")
    result = await find(search, SearchQuery(text="lamp"))
    assert result.backend == "elasticsearch"
    assert result.hits[0].name == "Brass lamp"
    assert result.total == 3


async def test_stemming_finds_other_forms_of_a_word(catalog, search) -> None:
    await catalog.product("Run Shoe")
    await catalog.product("Ceramic mug")
    assert await names(search, "running shoes") == ["Run Shoe"]
    assert await names(search, "shoe runs") == ["Run Shoe"]


async def test_category_names_and_attribute_values_are_searchable(catalog, search) -> None:
    footwear = await catalog.category("footwear")
    await catalog.attribute("colour")
    await catalog.product("Trail runner", category=footwear, attributes={"colour": "navy-blue"})
    await catalog.product("Desk lamp")
    assert await names(search, "footwear") == ["Trail runner"]
    assert await names(search, "navy") == ["Trail runner"]


async def test_a_partial_last_word_matches_as_you_type(catalog, search) -> None:
    await catalog.product("iPhone 15 case")
    await catalog.product("Running socks")
    await catalog.product("Ceramic mug")
    assert await names(search, "iph") == ["iPhone 15 case"]
    assert await names(search, "iphone ca") == ["iPhone 15 case"]
    assert await names(search, "runni") == ["Running socks"]


async def test_typos_still_find_the_product_and_say_did_you_mean(catalog, search) -> None:
    await catalog.product("iPhone 15")
    await catalog.product("Headphones")
    result = await find(search, SearchQuery(text="iphnoe"))
    assert [hit.name for hit in result.hits] == ["iPhone 15"]
    assert result.did_you_mean == "iphone"
    result = await find(search, SearchQuery(text="headphnes"))
    assert [hit.name for hit in result.hits] == ["Headphones"]
    assert result.did_you_mean == "headphones"


async def test_a_known_word_ranks_above_its_neighbours_and_is_not_corrected(
    catalog, search
) -> None:
    await catalog.product("Linen shirt")
    await catalog.product("Linen skirt")
    result = await find(search, SearchQuery(text="linen shirt"))
    assert result.hits[0].name == "Linen shirt"  # fuzziness may add "skirt", never above
    assert result.did_you_mean is None
    result = await find(search, SearchQuery(text="linen shrit"))
    assert result.hits[0].name == "Linen shirt"
    assert result.did_you_mean == "linen shirt"


async def test_an_exact_sku_or_a_sku_prefix_finds_the_product(catalog, search) -> None:
    mug = await catalog.product("Mug", variants=[("MUG-RED-350", 1500, 3, {})])
    await catalog.product("Mug rack", variants=[("RACK-1", 1500, 3, {})])
    for text in ("MUG-RED-350", "mug-red-350", "  Mug-Red-350 ", "MUG-RE"):
        result = await find(search, SearchQuery(text=text))
        assert result.hits[0].product_id == mug, text


async def test_an_exact_sku_ranks_above_a_sku_prefix(catalog, search) -> None:
    longer = await catalog.product("Cable", variants=[("AB-10", 900, 1, {})])
    exact = await catalog.product("Charger", variants=[("AB-1", 900, 1, {})])
    result = await find(search, SearchQuery(text="ab-1"))
    assert [hit.product_id for hit in result.hits][:2] == [exact, longer]


async def test_websearch_syntax_is_honoured(catalog, search) -> None:
    await catalog.product("Red run shoe")
    await catalog.product("Blue run shoe")
    await catalog.product("Shoe for a run")
    assert await names(search, '"run shoe" -red') == ["Blue run shoe"]
    assert sorted(await names(search, "red or blue")) == ["Blue run shoe", "Red run shoe"]


async def test_unpublished_and_removed_products_never_appear(catalog, search) -> None:
    shown = await catalog.product("Velvet cushion")
    await catalog.product("Secret zephyrion", published=False)
    removed = await catalog.product("Linen cushion")
    await search.remove_product(removed)
    await search.remove_product(removed)  # idempotent
    await search.remove_product(10**9)
    assert await names(search, "cushion") == ["Velvet cushion"]
    assert await names(search, "zephyrion") == []
    await catalog.conn.execute("UPDATE products SET is_published = false WHERE id = $1", shown)
    await search.index_product(shown)
    assert await names(search, "cushion") == []


async def test_index_product_raises_for_an_unknown_product(search) -> None:
    with pytest.raises(ProductNotFound):
        await search.index_product(10**9)


async def test_an_older_write_never_replaces_a_newer_document(catalog, search) -> None:
    product_id = await catalog.product("Velvet cushion")
    await catalog.conn.execute(RENAME, product_id, "Velvet pillow")
    stale = await search.client.get(index=search.alias, id=str(product_id))
    await search.index_product(product_id)
    # The first write arrives late, with its older version: refused (409) and dropped.
    await search.client.options(ignore_status=409).index(
        index=search.alias,
        id=str(product_id),
        document=stale["_source"],
        version=stale["_version"],
        version_type="external",
    )
    assert await names(search, "pillow") == ["Velvet pillow"]


async def test_suggest_completes_names_published_only(catalog, search) -> None:
    await catalog.product("iPhone 15 case")
    await catalog.product("iPhone 15")
    await catalog.product("iPhone 16", published=False)
    await catalog.product("Desk lamp", description="Charges an iPhone")
    await search.client.indices.refresh(index=search.alias)
    assert {s.text for s in await search.suggest("iph")} == {"iPhone 15", "iPhone 15 case"}
    assert len(await search.suggest("iph", limit=1)) == 1
    assert await search.suggest("i") == []


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"text": "tee"},
        {"category_ids": ("tops", "shirts", "knitwear")},
        {"text": "jumper", "category_ids": ("knitwear",)},
        {"attributes": {"colour": ("red", "blue")}},
        {"attributes": {"colour": ("red",), "size": ("m", "l")}, "in_stock": True},
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
    catalog, search, shape: dict[str, Any]
) -> None:
    categories = await build_mixed_catalog(catalog)
    if "category_ids" in shape:
        shape = {**shape, "category_ids": tuple(categories[c] for c in shape["category_ids"])}
    query = SearchQuery(limit=100, **shape)
    hits, category_counts, price_counts, attribute_counts = expected(
        list(catalog.items.values()), query
    )
    result = await find(search, query)
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


@pytest.mark.parametrize("sort", ["relevance", "price_asc", "price_desc", "newest", "name"])
async def test_paging_never_repeats_or_skips_while_products_are_added(
    catalog, search, sort: Sort
) -> None:
    rng = random.Random(sort)
    for number in range(23):
        await catalog.product(
            f"Lamp {rng.choice('ABC')}",
            description=rng.choice(["", "a lamp", "lamp lamp"]),
            variants=[(f"L-{number}", rng.choice([900, 1500, 2000]), 1, {})] if number % 7 else [],
            created_at=FIXED_TIME,
        )
    original = set(catalog.items)
    seen: list[int] = []
    query = SearchQuery(text="lamp", sort=sort, limit=4)
    added = 0
    while True:
        result = await find(search, query)
        seen += [hit.product_id for hit in result.hits]
        if result.next_after is None:
            break
        assert result.next_after[0] == sort and len(result.next_after) == 3
        # BM25 scores move with the corpus statistics as documents arrive, so a relevance
        # keyset is stable only while the index is (documented); the field sorts page on.
        for _ in range(2 if sort != "relevance" else 0):
            added += 1
            await catalog.product(
                f"Lamp {rng.choice('ABC')}",
                variants=[(f"NEW-{added}", rng.choice([900, 1500, 2000]), 1, {})],
                created_at=rng.choice([FIXED_TIME, None]),
            )
        query = SearchQuery(text="lamp", sort=sort, limit=4, after=result.next_after)
    assert len(seen) == len(set(seen)), "an item came twice"
    assert original <= set(seen), "an item was skipped"
    if sort in SORT_KEYS and SORT_KEYS[sort] is not None:
        in_order = [catalog.items[i] for i in seen if i in original]
        assert in_order == sorted(in_order, key=SORT_KEYS[sort])


async def test_a_cursor_from_another_sort_is_rejected(catalog, search) -> None:
    for number in range(3):
        await catalog.product(f"Lamp {number}")
    result = await find(search, SearchQuery(text="lamp", sort="name", limit=1))
    assert result.next_after is not None
    with pytest.raises(InvalidCursor):
        await search.search(SearchQuery(text="lamp", sort="newest", after=result.next_after))
    with pytest.raises(InvalidCursor):
        await search.search(SearchQuery(text="lamp", after=("relevance", 0.5, 1)))


async def test_reindex_swaps_the_alias_to_a_new_index(catalog, search, primary) -> None:
    for number in range(7):
        await catalog.product(f"Lamp {number}")
    hidden = await catalog.product("Draft lamp", published=False)
    before = await search.aliased_indices()
    report = Report()
    new_index = await reindex_elastic(
        search.client, primary, Timer(report, None), batch=3, alias=search.alias
    )
    assert await search.aliased_indices() == [new_index]
    assert new_index not in before
    assert not await search.client.indices.exists(index=before)  # the old index is gone
    assert [step.name for step in report.steps] == ["elastic", "alias", "catch-up"]
    assert report.steps[0].count == 7
    result = await find(search, SearchQuery(text="lamp", limit=100))
    assert hidden not in {hit.product_id for hit in result.hits}
    assert result.total == 7
    # Writes after the swap go to the new index through the alias.
    await catalog.product("Lamp 8")
    assert (await find(search, SearchQuery(text="lamp"))).total == 8


async def test_a_category_slug_means_the_category_and_its_descendants(catalog, search) -> None:
    categories = await build_mixed_catalog(catalog)
    by_ids = SearchQuery(
        limit=100, category_ids=tuple(categories[c] for c in ("tops", "shirts", "knitwear"))
    )
    by_slug = replace(by_ids, category_ids=None, category="tops")
    expanded, resolved = await find(search, by_ids), await find(search, by_slug)
    assert resolved.hits and resolved.hits == expanded.hits
    assert (resolved.facets, resolved.total) == (expanded.facets, expanded.total)
    with pytest.raises(CategoryNotFound):
        await search.search(replace(by_slug, category="nowhere"))
