"""PostgreSQL search against real PostgreSQL: relevance, what shoppers type, facets, paging."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from search.backend import PRICE_BUCKETS, InvalidCursor, SearchQuery, Sort, price_bucket_label
from search.postgres import PostgresSearch
from storage.database import connect, create_pool, statement_pool
from storage.errors import CategoryNotFound, ProductNotFound

INSERT_CATEGORY = """
    INSERT INTO categories (parent_id, slug, name, path) VALUES ($1, $2, $3, '{}') RETURNING id
"""
SET_CATEGORY_PATH = """
    UPDATE categories
    SET path = coalesce((SELECT path FROM categories WHERE id = $2), '{}') || id
    WHERE id = $1
"""
INSERT_ATTRIBUTE = """
    INSERT INTO attributes (slug, name, kind, is_filterable) VALUES ($1, $2, 'choice', $3)
"""
INSERT_PRODUCT = """
    INSERT INTO products (slug, name, description, category_id, attributes, is_published,
                          created_at)
    VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()))
    RETURNING id
"""
INSERT_VARIANT = """
    INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand, attributes)
    VALUES ($1, $2, $3, 'EUR', $4, $5)
"""
FIXED_TIME = datetime(2025, 3, 1, tzinfo=UTC)


@dataclass
class Item:
    """What a test product is made of, to compute expectations without asking SQL."""

    id: int
    name: str
    category: int | None
    published: bool
    attributes: dict[str, Any]
    variants: list[tuple[str, int, int, dict[str, Any]]]  # sku, price, stock, attributes

    @property
    def price(self) -> int | None:
        return min((v[1] for v in self.variants), default=None)

    @property
    def in_stock(self) -> bool:
        return any(v[2] > 0 for v in self.variants)

    def values(self, slug: str) -> set[str]:
        found = set()
        for attributes in [self.attributes, *(v[3] for v in self.variants)]:
            value = attributes.get(slug)
            for one in value if isinstance(value, list) else [value]:
                if one is not None:
                    found.add(str(one).lower() if isinstance(one, bool) else str(one))
        return found


@dataclass
class Catalog:
    """Writes categories and products with plain SQL, then indexes them through the backend."""

    conn: asyncpg.Connection
    search: PostgresSearch
    items: dict[int, Item] = field(default_factory=dict)

    async def category(self, slug: str, parent: int | None = None) -> int:
        category_id: int = await self.conn.fetchval(
            INSERT_CATEGORY, parent, slug, slug.replace("-", " ").title()
        )
        await self.conn.execute(SET_CATEGORY_PATH, category_id, parent)
        return category_id

    async def attribute(self, slug: str, *, filterable: bool = True) -> None:
        await self.conn.execute(INSERT_ATTRIBUTE, slug, slug.title(), filterable)

    async def product(
        self,
        name: str,
        *,
        description: str = "",
        category: int | None = None,
        attributes: dict[str, Any] | None = None,
        variants: Sequence[tuple[str, int, int, dict[str, Any]]] | None = None,
        published: bool = True,
        created_at: datetime | None = None,
        index: bool = True,
    ) -> int:
        slug = f"p-{len(self.items) + 1}"
        chosen = list(variants if variants is not None else [(slug.upper(), 1000, 1, {})])
        async with self.conn.transaction():
            product_id: int = await self.conn.fetchval(
                INSERT_PRODUCT,
                slug,
                name,
                description,
                category,
                attributes or {},
                published,
                created_at,
            )
            for sku, price, stock, variant_attributes in chosen:
                await self.conn.execute(
                    INSERT_VARIANT, product_id, sku, price, stock, variant_attributes
                )
        self.items[product_id] = Item(
            product_id, name, category, published, attributes or {}, chosen
        )
        if index:
            await self.search.index_product(product_id)
        return product_id


@pytest.fixture
async def search(fresh_db: str) -> AsyncIterator[PostgresSearch]:
    primary = await create_pool(fresh_db, 2)
    replica = statement_pool(fresh_db, 2)  # as open_database gives browsing reads
    yield PostgresSearch(replica, primary)
    await replica.close()
    await primary.close()


@pytest.fixture
async def catalog(fresh_db: str, search: PostgresSearch) -> AsyncIterator[Catalog]:
    conn = await connect(fresh_db)
    yield Catalog(conn, search)
    await conn.close()


async def names(search: PostgresSearch, text: str, **filters: Any) -> list[str]:
    result = await search.search(SearchQuery(text=text, **filters))
    return [hit.name for hit in result.hits]


async def test_a_match_in_the_name_ranks_above_one_in_the_description(catalog, search) -> None:
    await catalog.product("Desk light", description="Brighter than any lamp. Lamp, lamp, lamp!")
    await catalog.product("Brass lamp", description="Warm light for a desk.")
    await catalog.product("Floor light", description="Like a lamp, only taller.")
    result = await search.search(SearchQuery(text="lamp"))
    assert result.hits[0].name == "Brass lamp"
    assert result.hits[0].score > result.hits[1].score
    assert result.total == 3


async def test_the_whole_query_in_the_name_ranks_above_parts_of_it(catalog, search) -> None:
    await catalog.product("Wool socks", description="Warm and soft, not a jumper.")
    await catalog.product("Wool jumper")
    assert (await names(search, "wool jumper"))[0] == "Wool jumper"


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
    # The stem of "running" is "run": the typed prefix reaches it through the known word.
    assert await names(search, "runni") == ["Running socks"]


async def test_typos_still_find_the_product_and_say_did_you_mean(catalog, search) -> None:
    await catalog.product("iPhone 15")
    await catalog.product("Headphones")
    result = await search.search(SearchQuery(text="iphnoe"))
    assert [hit.name for hit in result.hits] == ["iPhone 15"]
    assert result.did_you_mean == "iphone"
    result = await search.search(SearchQuery(text="headphnes"))
    assert [hit.name for hit in result.hits] == ["Headphones"]
    assert result.did_you_mean == "headphones"


async def test_did_you_mean_corrects_only_the_unknown_word(catalog, search) -> None:
    await catalog.product("Linen shirt")
    await catalog.product("Linen skirt")
    result = await search.search(SearchQuery(text="linen shrit"))
    assert result.did_you_mean == "linen shirt"
    assert [hit.name for hit in result.hits] == ["Linen shirt"]
    # A correct query is left alone: a known word is never "corrected" into a neighbour.
    result = await search.search(SearchQuery(text="linen shirt"))
    assert result.did_you_mean is None
    assert [hit.name for hit in result.hits] == ["Linen shirt"]


async def test_nothing_close_gives_no_did_you_mean(catalog, search) -> None:
    await catalog.product("Linen shirt")
    result = await search.search(SearchQuery(text="xylophone"))
    assert result.hits == [] and result.total == 0
    assert result.did_you_mean is None


async def test_an_exact_sku_or_a_sku_prefix_finds_the_product(catalog, search) -> None:
    mug = await catalog.product("Mug", variants=[("MUG-RED-350", 1500, 3, {})])
    await catalog.product("Mug rack", variants=[("RACK-1", 1500, 3, {})])
    for text in ("MUG-RED-350", "mug-red-350", "  Mug-Red-350 ", "MUG-RE"):
        result = await search.search(SearchQuery(text=text))
        assert result.hits[0].product_id == mug, text


async def test_an_exact_sku_ranks_above_a_sku_prefix(catalog, search) -> None:
    longer = await catalog.product("Cable", variants=[("AB-10", 900, 1, {})])
    exact = await catalog.product("Charger", variants=[("AB-1", 900, 1, {})])
    result = await search.search(SearchQuery(text="ab-1"))
    assert [hit.product_id for hit in result.hits] == [exact, longer]


async def test_websearch_syntax_is_honoured(catalog, search) -> None:
    await catalog.product("Red run shoe")
    await catalog.product("Blue run shoe")
    await catalog.product("Shoe for a run")
    assert await names(search, '"run shoe" -red') == ["Blue run shoe"]
    assert sorted(await names(search, "red or blue")) == ["Blue run shoe", "Red run shoe"]


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


async def test_remove_product_drops_its_document(catalog, search) -> None:
    product_id = await catalog.product("Velvet cushion")
    await search.remove_product(product_id)
    await search.remove_product(product_id)  # idempotent
    await search.remove_product(10**9)  # unknown ids too
    assert await names(search, "velvet") == []


async def test_index_product_raises_for_an_unknown_product(search) -> None:
    with pytest.raises(ProductNotFound):
        await search.index_product(10**9)


async def test_suggest_completes_names_published_only(catalog, search) -> None:
    await catalog.product("iPhone 15 case")
    await catalog.product("iPhone 15")
    await catalog.product("Case for iPhone")
    await catalog.product("iPhone 16", published=False)
    await catalog.product("Desk lamp", description="Charges an iPhone")
    suggestions = await search.suggest("iph")
    assert [s.text for s in suggestions] == ["iPhone 15", "iPhone 15 case", "Case for iPhone"]
    assert [s.text for s in await search.suggest("iph", limit=1)] == ["iPhone 15"]
    assert {s.text for s in await search.suggest("iphone ca")} == {
        "iPhone 15 case",
        "Case for iPhone",
    }
    assert await search.suggest("i") == []
    assert [s.text for s in await search.suggest("iphnoe")][:1] == ["iPhone 15"]
    first = suggestions[0]
    assert first.slug and isinstance(first.product_id, int)


# --- filters and facets ---------------------------------------------------------------------


async def build_mixed_catalog(catalog: Catalog) -> dict[str, int]:
    """About 40 products over a small tree, with product- and variant-level attributes."""
    rng = random.Random(4)
    clothing = await catalog.category("clothing")
    tops = await catalog.category("tops", clothing)
    shirts = await catalog.category("shirts", tops)
    knitwear = await catalog.category("knitwear", tops)
    home = await catalog.category("home")
    for slug in ("colour", "size", "material"):
        await catalog.attribute(slug)
    await catalog.attribute("care", filterable=False)
    leaves = [shirts, knitwear, home, tops, None]
    for number in range(40):
        kind = rng.choice(["tee", "jumper", "mug"])
        colours = rng.sample(["red", "blue", "green", "black"], rng.randint(1, 2))
        variants = [
            (
                f"SKU-{number}-{index}",
                rng.choice([500, 999, 1000, 2400, 2500, 4999, 7000, 12000]),
                rng.choice([0, 0, 3]),
                {"size": rng.choice(["s", "m", "l"]), "colour": colour},
            )
            for index, colour in enumerate(colours)
        ]
        attributes: dict[str, Any] = {
            "material": rng.choice(["cotton", "wool", ["cotton", "linen"]])
        }
        if number % 5 == 0:
            attributes["care"] = "hand-wash"
        await catalog.product(
            f"{rng.choice(['Soft', 'Bold', 'Plain'])} {kind} {number}",
            category=rng.choice(leaves),
            attributes=attributes,
            variants=variants if number % 13 else [],
            published=number % 9 != 4,
        )
    return {"clothing": clothing, "tops": tops, "shirts": shirts, "knitwear": knitwear}


def expected(
    items: Sequence[Item], query: SearchQuery
) -> tuple[list[int], Counter[int], Counter[str], dict[str, Counter[str]]]:
    """Hits (ids), category, price and attribute counts, computed in Python: disjunctive."""
    word = query.text.lower() or None
    base = [
        item
        for item in items
        if item.published
        and (word is None or word in item.name.lower().split())
        and (query.in_stock is None or item.in_stock == query.in_stock)
    ]

    def category_ok(item: Item) -> bool:
        return query.category_ids is None or item.category in query.category_ids

    def price_ok(item: Item) -> bool:
        low, high = query.price_min, query.price_max
        if low is None and high is None:
            return True
        price = item.price
        return (
            price is not None and (low is None or price >= low) and (high is None or price <= high)
        )

    def attributes_ok(item: Item, but: str | None = None) -> bool:
        return all(
            item.values(slug) & set(values)
            for slug, values in query.attributes.items()
            if slug != but and values
        )

    hits = [i.id for i in base if category_ok(i) and price_ok(i) and attributes_ok(i)]
    categories = Counter(
        i.category for i in base if i.category is not None and price_ok(i) and attributes_ok(i)
    )
    if not query.text and query.category_ids is not None:
        # Without text the category facet stays inside the filtered categories (documented).
        categories = Counter({c: n for c, n in categories.items() if c in query.category_ids})
    prices: Counter[str] = Counter()
    for item in base:
        if category_ok(item) and attributes_ok(item) and item.price is not None:
            low, high = next(b for b in PRICE_BUCKETS if b[1] is None or item.price < b[1])
            prices[price_bucket_label(low, high)] += 1
    attributes: dict[str, Counter[str]] = {}
    for slug in ("colour", "size", "material"):
        counts = Counter(
            value
            for item in base
            if category_ok(item) and price_ok(item) and attributes_ok(item, but=slug)
            for value in item.values(slug)
        )
        if counts:
            attributes[slug] = counts
    return hits, categories, prices, attributes


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
    catalog, search, shape: dict[str, Any]
) -> None:
    categories = await build_mixed_catalog(catalog)
    if "category_ids" in shape:
        shape = {**shape, "category_ids": tuple(categories[c] for c in shape["category_ids"])}
    query = SearchQuery(limit=100, **shape)
    hits, category_counts, price_counts, attribute_counts = expected(
        list(catalog.items.values()), query
    )
    result = await search.search(query)
    assert sorted(hit.product_id for hit in result.hits) == sorted(hits)
    assert result.total == len(hits)
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


# --- pagination -----------------------------------------------------------------------------


SORT_KEYS = {
    "relevance": None,
    "price_asc": lambda item: (item.price if item.price is not None else 10**12, item.id),
    "price_desc": lambda item: (-(item.price if item.price is not None else -1), -item.id),
    "name": lambda item: (item.name, item.id),
}


@pytest.mark.parametrize(
    ("sort", "text", "facets"),
    [
        ("relevance", "lamp", True),
        ("price_asc", "lamp", True),
        ("price_desc", "lamp", True),
        ("newest", "lamp", True),
        ("name", "lamp", True),
        # Lists without text or facets read only their page, by another statement (LIST).
        ("price_asc", "", False),
        ("price_desc", "", False),
        ("newest", "", False),
        ("name", "", False),
    ],
)
async def test_paging_never_repeats_or_skips_while_products_are_added(
    catalog, search, sort: Sort, text: str, facets: bool
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
    added = 0
    while True:
        result = await search.search(query)
        seen += [hit.product_id for hit in result.hits]
        if result.next_after is None:
            break
        for _ in range(2):  # new products that sort before, among and after the ones left
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


async def test_a_cursor_from_another_sort_is_rejected(catalog, search) -> None:
    for number in range(3):
        await catalog.product(f"Lamp {number}")
    result = await search.search(SearchQuery(text="lamp", sort="name", limit=1))
    assert result.next_after is not None
    with pytest.raises(InvalidCursor):
        await search.search(SearchQuery(text="lamp", sort="newest", after=result.next_after))
    with pytest.raises(InvalidCursor):
        await search.search(SearchQuery(sort="price_asc", after=("price_asc", "x", 1)))


@pytest.mark.parametrize(
    "shape",
    [{"text": "tee"}, {"facets": False, "sort": "name"}, {"facets": False}, {"sort": "price_asc"}],
)
async def test_a_category_slug_means_the_category_and_its_descendants(
    catalog, search, shape: dict[str, Any]
) -> None:
    categories = await build_mixed_catalog(catalog)
    by_ids = SearchQuery(
        limit=100,
        category_ids=tuple(categories[c] for c in ("tops", "shirts", "knitwear")),
        **shape,
    )
    by_slug = replace(by_ids, category_ids=None, category="tops")
    expanded, in_sql = await search.search(by_ids), await search.search(by_slug)
    assert in_sql.hits and [h.product_id for h in in_sql.hits] == [
        h.product_id for h in expanded.hits
    ]
    assert (in_sql.facets, in_sql.total) == (expanded.facets, expanded.total)
    with pytest.raises(CategoryNotFound):
        await search.search(replace(by_slug, category="nowhere"))
    with pytest.raises(ValueError, match="not both"):
        replace(by_ids, category="tops")
