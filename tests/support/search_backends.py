"""Search backends under test: a catalog written with plain SQL and indexed through a backend,
expectations computed without one, and each backend opened on a test database.

The Elasticsearch backend needs a real cluster: ELASTICSEARCH_URL (e.g. `docker run -p 9200:9200
-e discovery.type=single-node -e xpack.security.enabled=false elasticsearch:9.1.0`); tests that
need one are marked NEEDS_ELASTICSEARCH. Each opened Elasticsearch backend gets its own alias
(`aioshop-test-<random>`), whose indices are deleted afterwards.
"""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from elasticsearch import AsyncElasticsearch

from search.backend import PRICE_BUCKETS, SearchBackend, SearchQuery, price_bucket_label
from search.elastic import ElasticsearchSearch
from search.postgres import PostgresSearch
from storage.database import connect, create_pool, statement_pool

ELASTICSEARCH_URL = os.environ.get("ELASTICSEARCH_URL")
NEEDS_ELASTICSEARCH = pytest.mark.skipif(
    not ELASTICSEARCH_URL,
    reason="ELASTICSEARCH_URL is not set: these tests need a real Elasticsearch cluster",
)

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
    search: SearchBackend
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


@asynccontextmanager
async def postgres_search(dsn: str) -> AsyncIterator[PostgresSearch]:
    """PostgresSearch on the test database, its reads on a second pool."""
    primary = await create_pool(dsn, 2)
    replica = statement_pool(dsn, 2)  # as open_database gives browsing reads
    try:
        yield PostgresSearch(replica, primary)
    finally:
        await replica.close()
        await primary.close()


@asynccontextmanager
async def elastic_search(dsn: str) -> AsyncIterator[ElasticsearchSearch]:
    """ElasticsearchSearch on the cluster at ELASTICSEARCH_URL, behind an alias of its own."""
    client = AsyncElasticsearch(str(ELASTICSEARCH_URL), request_timeout=30)
    try:
        primary = await create_pool(dsn, 3)
        try:
            alias = f"aioshop-test-{uuid.uuid4().hex[:10]}"
            backend = ElasticsearchSearch(client, primary, alias=alias)
            await backend.ensure_alias()
            try:
                yield backend
            finally:
                # By name: clusters refuse wildcard deletes (action.destructive_requires_name).
                found = await client.indices.get(index=f"{alias}-*", allow_no_indices=True)
                if found.body:
                    await client.indices.delete(index=list(found.body))
        finally:
            await primary.close()
    finally:
        await client.close()


@asynccontextmanager
async def catalog_for(dsn: str, search: SearchBackend) -> AsyncIterator[Catalog]:
    """A Catalog writing to the test database and indexing through `search`."""
    conn = await connect(dsn)
    try:
        yield Catalog(conn, search)
    finally:
        await conn.close()


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


# The order of each sort, computed from Items (None: relevance, which no Item knows).
SORT_KEYS = {
    "relevance": None,
    "price_asc": lambda item: (item.price if item.price is not None else 10**12, item.id),
    "price_desc": lambda item: (-(item.price if item.price is not None else -1), -item.id),
    "name": lambda item: (item.name, item.id),
}
