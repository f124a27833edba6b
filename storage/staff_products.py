"""The staff products list (thumbnail, stock, sortable) and publishing many products at once.

The sort is one of SORTS: a key the web edge has already checked against that whitelist, turned
here into a fixed ORDER BY. Nothing the client sends is ever put into the SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.catalog_admin import PRODUCT_FILTERS, like_escape
from storage.database import Executor
from storage.products import PRODUCT_COLUMNS, Product, _product

# sort key -> ORDER BY (each ends in p.id, so pages never repeat or skip a row on ties)
SORTS: dict[str, str] = {
    "name": "lower(p.name), p.id",
    "-name": "lower(p.name) DESC, p.id DESC",
    "price": "p.price_min NULLS LAST, p.id",
    "-price": "p.price_min DESC NULLS LAST, p.id DESC",
    "stock": "stock, p.id",
    "-stock": "stock DESC, p.id DESC",
    "updated": "p.updated_at, p.id",
    "-updated": "p.updated_at DESC, p.id DESC",
}
DEFAULT_SORT = "-updated"
_COLUMNS = ", ".join(f"p.{name.strip()}" for name in PRODUCT_COLUMNS.split(","))
LIST_FOR_STAFF = """
    SELECT {columns}, p.updated_at,
           coalesce((SELECT sum(v.stock_on_hand) FROM variants v WHERE v.product_id = p.id), 0)
               AS stock,
           (SELECT coalesce(i.renditions ->> '320', i.path)
            FROM product_images i WHERE i.product_id = p.id
            ORDER BY i.position, i.id LIMIT 1) AS thumbnail
    FROM products p
    WHERE {PRODUCT_FILTERS}
    ORDER BY {order}
    LIMIT $5 OFFSET $6
"""
LIST_BY_SORT = {
    key: LIST_FOR_STAFF.format(columns=_COLUMNS, PRODUCT_FILTERS=PRODUCT_FILTERS, order=order)
    for key, order in SORTS.items()
}
GET_MANY = f"""
    SELECT {_COLUMNS}, p.updated_at,
           coalesce((SELECT sum(v.stock_on_hand) FROM variants v WHERE v.product_id = p.id), 0)
               AS stock,
           NULL::text AS thumbnail
    FROM products p WHERE p.id = ANY($1::bigint[]) ORDER BY p.id
"""
# Row locks in primary-key order, so two bulk edits of overlapping sets never deadlock.
LOCK_MANY = "SELECT id FROM products WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"
SET_PUBLISHED_MANY = """
    UPDATE products SET is_published = $2, updated_at = now()
    WHERE id = ANY($1::bigint[]) AND is_published <> $2
    RETURNING id
"""


@dataclass(frozen=True)
class StaffProduct:
    """A row of the staff list: the product, units on hand over its variants, its first image."""

    product: Product
    stock: int
    thumbnail: str | None  # the 320 px rendition (or the original before it exists), in media
    updated_at: datetime


def _row(row: Any) -> StaffProduct:
    return StaffProduct(
        product=_product(row),
        stock=int(row["stock"]),
        thumbnail=row["thumbnail"],
        updated_at=row["updated_at"],
    )


async def list_products(
    executor: Executor,
    *,
    sort: str = DEFAULT_SORT,
    query: str | None = None,
    category_id: int | None = None,
    published: bool | None = None,
    in_stock: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[StaffProduct]:
    """Products, published or not, filtered, in the order `sort` (a key of SORTS; KeyError
    otherwise: the caller checks it at the edge)."""
    rows = await executor.fetch(
        LIST_BY_SORT[sort],
        like_escape(query) if query else None,
        category_id,
        published,
        in_stock,
        limit,
        offset,
    )
    return [_row(row) for row in rows]


async def get_many(executor: Executor, product_ids: list[int]) -> list[StaffProduct]:
    """The products with these ids that exist, by id (no thumbnails)."""
    return [_row(row) for row in await executor.fetch(GET_MANY, product_ids)]


async def set_published_many(
    conn: asyncpg.Connection, product_ids: list[int], published: bool
) -> list[int]:
    """In the caller's transaction: lock the products (id order) and publish or unpublish them.
    Returns the ids that changed (ids that do not exist, or already had the state, are left)."""
    await conn.fetch(LOCK_MANY, product_ids)
    rows = await conn.fetch(SET_PUBLISHED_MANY, product_ids, published)
    return sorted(row["id"] for row in rows)
