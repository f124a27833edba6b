"""What staff do to products and variants: a filtered list, create, edit, publish, variant rows.

Every write runs in the caller's transaction, so a product and all its variant rows are saved
together or not at all. Constraint violations become the storage errors the staff pages show
beside a field; after one of them the caller's transaction is unusable and must roll back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from domain.events import INDEX_PRODUCT
from storage import products
from storage.database import Executor
from storage.errors import (
    CategoryNotFound,
    DuplicateSku,
    DuplicateSlug,
    NotFound,
    ProductNotFound,
    ProductTypeNotFound,
)
from storage.outbox import INSERT_EVENT, new_event
from storage.products import INSERT_VARIANT, PRODUCT_COLUMNS, NewVariant, Product, _product

# Filters are optional: a NULL parameter switches its condition off. The category filter takes
# the category's whole subtree (its path contains the id). Name matches anywhere, SKU by prefix.
PRODUCT_FILTERS = """
    ($1::text IS NULL
           OR p.name ILIKE '%' || $1 || '%' ESCAPE '\\'
           OR EXISTS (SELECT FROM variants v
                      WHERE v.product_id = p.id AND v.sku LIKE upper($1) || '%' ESCAPE '\\'))
      AND ($2::bigint IS NULL
           OR p.category_id IN (SELECT id FROM categories WHERE path @> ARRAY[$2::bigint]))
      AND ($3::boolean IS NULL OR p.is_published = $3)
      AND ($4::boolean IS NULL OR p.in_stock = $4)
"""
LIST_PRODUCTS = f"""
    SELECT {PRODUCT_COLUMNS} FROM products p
    WHERE {PRODUCT_FILTERS}
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT $5 OFFSET $6
"""
# The product type is chosen at creation and kept: its attribute values depend on it. The row
# lock it takes makes two staff saving the same product apply their variant rows in turn.
UPDATE_PRODUCT = f"""
    UPDATE products
    SET slug = $2, name = $3, description = $4, category_id = $5, attributes = $6,
        is_published = $7, updated_at = now()
    WHERE id = $1
    RETURNING {PRODUCT_COLUMNS}
"""
SET_PUBLISHED = """
    UPDATE products SET is_published = $2, updated_at = now() WHERE id = $1 RETURNING id
"""
UPDATE_VARIANT = """
    UPDATE variants
    SET sku = $3, name = $4, price_amount = $5, currency = $6, stock_on_hand = $7,
        attributes = $8, position = $9, updated_at = now()
    WHERE id = $1 AND product_id = $2
    RETURNING id
"""
DELETE_VARIANT = "DELETE FROM variants WHERE id = $1 AND product_id = $2 RETURNING id"
# Variants first, in id order, then the product: the order a checkout takes them in (it locks
# variants in id order, and its stock update's trigger then writes the product), so a save and
# a checkout wait for each other instead of deadlocking.
LOCK_VARIANTS = "SELECT id FROM variants WHERE product_id = $1 ORDER BY id FOR UPDATE"
LOCK_PRODUCT = f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1 FOR UPDATE"
LIST_PRODUCTS_UNDER_CATEGORY = """
    SELECT p.id FROM products p
    WHERE p.category_id IN (SELECT id FROM categories WHERE path @> ARRAY[$1::bigint])
    ORDER BY p.id
"""


class VariantNotFound(NotFound):
    """The variant is not (or no longer) one of this product's variants."""

    def __init__(self, variant_id: int) -> None:
        super().__init__(f"variant {variant_id} does not exist")
        self.variant_id = variant_id


@dataclass(frozen=True, kw_only=True)
class VariantRow(NewVariant):
    """A variant as staff submit it: `id` None for a new one."""

    id: int | None = None


@dataclass(frozen=True)
class ProductFields:
    """The product's own fields as staff edit them."""

    slug: str
    name: str
    description: str
    category_id: int | None
    attributes: dict[str, Any]
    is_published: bool


def like_escape(text: str) -> str:
    """`text` with LIKE's wildcards escaped, so a search for "50%" means those characters."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_products(
    executor: Executor,
    *,
    query: str | None = None,
    category_id: int | None = None,
    published: bool | None = None,
    in_stock: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Product]:
    """Products newest first, published or not, filtered by name or SKU prefix and the rest."""
    rows = await executor.fetch(
        LIST_PRODUCTS,
        like_escape(query) if query else None,
        category_id,
        published,
        in_stock,
        limit,
        offset,
    )
    return [_product(row) for row in rows]


def _missing(
    exc: asyncpg.ForeignKeyViolationError, category_id: int | None, product_type_id: int | None
) -> Exception:
    """The row a foreign key found missing: the product type or the category."""
    if exc.constraint_name == "products_product_type_id_fkey" and product_type_id is not None:
        return ProductTypeNotFound(product_type_id)
    return CategoryNotFound(category_id if category_id is not None else "?")


async def create_product(
    conn: asyncpg.Connection, product: ProductFields, *, product_type_id: int | None
) -> Product:
    """Insert a product without variants; raises DuplicateSlug, CategoryNotFound or
    ProductTypeNotFound (the caller's transaction is then unusable: roll back)."""
    try:
        return await products.create(
            conn,
            slug=product.slug,
            name=product.name,
            description=product.description,
            category_id=product.category_id,
            product_type_id=product_type_id,
            attributes=product.attributes,
            is_published=product.is_published,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise _missing(exc, product.category_id, product_type_id) from None


async def update_product(
    conn: asyncpg.Connection, product_id: int, product: ProductFields
) -> Product:
    """Change a product's own fields; raises ProductNotFound, DuplicateSlug or CategoryNotFound
    (after the last two the caller's transaction is unusable: roll back)."""
    try:
        row = await conn.fetchrow(
            UPDATE_PRODUCT,
            product_id,
            product.slug,
            product.name,
            product.description,
            product.category_id,
            product.attributes,
            product.is_published,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateSlug(product.slug) from None
    except asyncpg.ForeignKeyViolationError as exc:
        raise _missing(exc, product.category_id, None) from None
    if row is None:
        raise ProductNotFound(product_id)
    return _product(row)


async def lock_for_edit(
    conn: asyncpg.Connection, product_id: int
) -> tuple[Product, list[products.Variant]]:
    """In the caller's transaction: lock the product and its variants until it ends, and read
    them as stored now (variants in display order). Raises ProductNotFound."""
    await conn.execute(LOCK_VARIANTS, product_id)
    row = await conn.fetchrow(LOCK_PRODUCT, product_id)
    if row is None:
        raise ProductNotFound(product_id)
    return _product(row), await products.variants_of(conn, product_id)


async def set_published(conn: asyncpg.Connection, product_id: int, published: bool) -> None:
    """Publish or unpublish; raises ProductNotFound. Idempotent."""
    if await conn.fetchval(SET_PUBLISHED, product_id, published) is None:
        raise ProductNotFound(product_id)


async def save_variant(
    conn: asyncpg.Connection, product_id: int, variant: VariantRow, position: int
) -> int:
    """Insert (id None) or update one of the product's variants; returns its id.

    Raises DuplicateSku or VariantNotFound (after DuplicateSku the caller's transaction is
    unusable: roll back). Prices and stock below zero are refused by the table's CHECKs, so
    callers validate them first to say why.
    """
    values = products.variant_values(variant, position)
    try:
        if variant.id is None:
            new_id: int = await conn.fetchval(INSERT_VARIANT, product_id, *values)
            return new_id
        updated = await conn.fetchval(UPDATE_VARIANT, variant.id, product_id, *values)
    except asyncpg.UniqueViolationError:
        raise DuplicateSku(variant.sku) from None
    if updated is None:
        raise VariantNotFound(variant.id)
    return variant.id


async def delete_variant(conn: asyncpg.Connection, product_id: int, variant_id: int) -> None:
    """Remove one of the product's variants; raises VariantNotFound."""
    if await conn.fetchval(DELETE_VARIANT, variant_id, product_id) is None:
        raise VariantNotFound(variant_id)


async def reindex_under(
    conn: asyncpg.Connection, category_id: int, *, request_id: str | None
) -> int:
    """In the caller's transaction: one INDEX_PRODUCT outbox event (each with its own
    id) per product in the category or below it, whose search documents name it; one round
    trip for the events. Returns how many."""
    ids = [row["id"] for row in await conn.fetch(LIST_PRODUCTS_UNDER_CATEGORY, category_id)]
    events = [new_event(INDEX_PRODUCT, product_id=product_id) for product_id in ids]
    await conn.executemany(
        INSERT_EVENT, [(e.event_id, e.actor_name, e.payload, request_id) for e in events]
    )
    return len(events)
