"""Products: the skeleton's minimal catalog (the catalog issue grows it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.database import Executor
from storage.errors import DuplicateSlug, ProductNotFound

LIST_NEWEST_PUBLISHED = """
    SELECT id, slug, name, description, price_amount, price_currency, is_published, created_at,
           indexed_at, index_version
    FROM products
    WHERE is_published
    ORDER BY created_at DESC, id DESC
    LIMIT $1
"""
GET_PRODUCT = """
    SELECT id, slug, name, description, price_amount, price_currency, is_published, created_at,
           indexed_at, index_version
    FROM products WHERE id = $1
"""
INSERT_PRODUCT = """
    INSERT INTO products (slug, name, description, price_amount, price_currency)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING id, slug, name, description, price_amount, price_currency, is_published, created_at,
              indexed_at, index_version
"""
INDEX_PRODUCT = """
    UPDATE products
    SET search_vector = setweight(to_tsvector('english', name), 'A')
                     || setweight(to_tsvector('english', description), 'C'),
        indexed_at = now(),
        index_version = index_version + 1
    WHERE id = $1
    RETURNING index_version
"""


@dataclass(frozen=True)
class Product:
    id: int
    slug: str
    name: str
    description: str
    price_amount: int
    price_currency: str
    is_published: bool
    created_at: datetime
    indexed_at: datetime | None
    index_version: int


async def list_newest(executor: Executor, limit: int = 24) -> list[Product]:
    """The newest published products."""
    return [Product(**dict(row)) for row in await executor.fetch(LIST_NEWEST_PUBLISHED, limit)]


async def get(executor: Executor, product_id: int) -> Product:
    """One product by id; raises ProductNotFound."""
    row = await executor.fetchrow(GET_PRODUCT, product_id)
    if row is None:
        raise ProductNotFound(product_id)
    return Product(**dict(row))


async def create(
    conn: asyncpg.Connection,
    *,
    slug: str,
    name: str,
    description: str,
    price_amount: int,
    price_currency: str,
) -> Product:
    """Insert a product in the caller's transaction; raises DuplicateSlug."""
    try:
        row = await conn.fetchrow(
            INSERT_PRODUCT, slug, name, description, price_amount, price_currency
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateSlug(slug) from None
    return Product(**dict(row))


async def index(conn: asyncpg.Connection, product_id: int) -> int:
    """Rebuild one product's search document; returns its index_version. Raises ProductNotFound."""
    version = await conn.fetchval(INDEX_PRODUCT, product_id)
    if version is None:
        raise ProductNotFound(product_id)
    return int(version)
