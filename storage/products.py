"""Products and their variants. Prices live on variants; products carry their range (a trigger)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from storage.database import Executor
from storage.errors import DuplicateSku, DuplicateSlug, ProductNotFound

PRODUCT_COLUMNS = """
    id, slug, name, description, is_published, created_at, category_id, product_type_id,
    attributes, price_min, price_max, currency, in_stock, indexed_at, index_version
"""
LIST_NEWEST_PUBLISHED = f"""
    SELECT {PRODUCT_COLUMNS} FROM products
    WHERE is_published
    ORDER BY created_at DESC, id DESC
    LIMIT $1
"""
GET_PRODUCT = f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"
GET_PUBLISHED_BY_SLUG = f"SELECT {PRODUCT_COLUMNS} FROM products WHERE slug = $1 AND is_published"
LIST_IMAGES = """
    SELECT id, path, width, height, alt, renditions
    FROM product_images WHERE product_id = $1 ORDER BY position, id
"""
INSERT_PRODUCT = f"""
    INSERT INTO products (slug, name, description, category_id, product_type_id, attributes,
                          is_published)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING {PRODUCT_COLUMNS}
"""
INSERT_VARIANT = """
    INSERT INTO variants (product_id, sku, name, price_amount, currency, stock_on_hand,
                          attributes, position)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING id
"""
LIST_VARIANTS = """
    SELECT id, sku, name, price_amount, currency, stock_on_hand, attributes
    FROM variants WHERE product_id = $1 ORDER BY position, id
"""
# The search document (weighted tsvector, search_facets, search_terms) is defined once, in
# migration 0006's search_index_products(ids), which bulk loads call for many ids at once.
INDEX_PRODUCT = "SELECT index_version FROM search_index_products(ARRAY[$1::bigint])"


@dataclass(frozen=True)
class Product:
    id: int
    slug: str
    name: str
    description: str
    is_published: bool
    created_at: datetime
    category_id: int | None
    product_type_id: int | None
    attributes: dict[str, Any]
    price_min: int | None  # None: no variants yet
    price_max: int | None
    currency: str | None
    in_stock: bool
    indexed_at: datetime | None
    index_version: int


@dataclass(frozen=True)
class Variant:
    id: int
    sku: str
    name: str
    price_amount: int
    currency: str
    stock_on_hand: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Image:
    id: int
    path: str
    width: int
    height: int
    alt: str
    renditions: dict[str, str]


@dataclass(frozen=True)
class NewVariant:
    sku: str
    price_amount: int
    currency: str
    stock_on_hand: int = 0
    name: str = ""
    attributes: dict[str, Any] | None = None


def _product(row: Any) -> Product:
    return Product(**{f.name: row[f.name] for f in fields(Product)})


async def list_newest(executor: Executor, limit: int = 24) -> list[Product]:
    """The newest published products."""
    return [_product(row) for row in await executor.fetch(LIST_NEWEST_PUBLISHED, limit)]


async def get(executor: Executor, product_id: int) -> Product:
    """One product by id; raises ProductNotFound."""
    row = await executor.fetchrow(GET_PRODUCT, product_id)
    if row is None:
        raise ProductNotFound(product_id)
    return _product(row)


async def get_published_by_slug(executor: Executor, slug: str) -> Product:
    """A published product by slug; raises ProductNotFound (also for unpublished ones)."""
    row = await executor.fetchrow(GET_PUBLISHED_BY_SLUG, slug)
    if row is None:
        raise ProductNotFound(slug)
    return _product(row)


async def images_of(executor: Executor, product_id: int) -> list[Image]:
    """A product's images in display order."""
    rows = await executor.fetch(LIST_IMAGES, product_id)
    return [Image(**{f.name: row[f.name] for f in fields(Image)}) for row in rows]


async def variants_of(executor: Executor, product_id: int) -> list[Variant]:
    """A product's variants in display order."""
    rows = await executor.fetch(LIST_VARIANTS, product_id)
    return [Variant(**{f.name: row[f.name] for f in fields(Variant)}) for row in rows]


def variant_values(variant: NewVariant, position: int) -> tuple[Any, ...]:
    """INSERT_VARIANT's arguments after the product id (UPDATE_VARIANT's after the two ids)."""
    return (
        variant.sku,
        variant.name,
        variant.price_amount,
        variant.currency,
        variant.stock_on_hand,
        variant.attributes or {},
        position,
    )


async def create(
    conn: asyncpg.Connection,
    *,
    slug: str,
    name: str,
    description: str = "",
    category_id: int | None = None,
    product_type_id: int | None = None,
    attributes: dict[str, Any] | None = None,
    variants: Sequence[NewVariant] = (),
    is_published: bool = True,
) -> Product:
    """Insert a product and its variants in the caller's transaction.

    Raises DuplicateSlug or DuplicateSku (the caller's transaction is then unusable: roll back).
    """
    try:
        row = await conn.fetchrow(
            INSERT_PRODUCT,
            slug,
            name,
            description,
            category_id,
            product_type_id,
            attributes or {},
            is_published,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateSlug(slug) from None
    for position, variant in enumerate(variants):
        try:
            await conn.fetchval(INSERT_VARIANT, row["id"], *variant_values(variant, position))
        except asyncpg.UniqueViolationError:
            raise DuplicateSku(variant.sku) from None
    return await get(conn, row["id"]) if variants else _product(row)


async def index(conn: asyncpg.Connection, product_id: int) -> int:
    """Rebuild one product's search document; returns its index_version. Raises ProductNotFound."""
    version = await conn.fetchval(INDEX_PRODUCT, product_id)
    if version is None:
        raise ProductNotFound(product_id)
    return int(version)


INDEX_PRODUCTS = "SELECT count(*) FROM search_index_products($1::bigint[])"


async def index_many(executor: Executor, ids: Sequence[int]) -> int:
    """Rebuild these products' search documents in one statement (one transaction); returns how
    many were rebuilt (unknown ids are skipped)."""
    return int(await executor.fetchval(INDEX_PRODUCTS, list(ids)))
