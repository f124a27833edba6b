"""Test helpers for the catalog: products with one variant, written straight to the database."""

from __future__ import annotations

from storage.database import connect

INSERT_PRODUCT = """
    INSERT INTO products (slug, name, is_published) VALUES ($1, $2, $3) RETURNING id
"""
INSERT_VARIANT = """
    INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand)
    VALUES ($1, $2, $3, $4, $5)
"""


async def insert_product(
    dsn: str,
    slug: str,
    name: str | None = None,
    *,
    price: int = 100,
    currency: str = "EUR",
    stock: int = 0,
    published: bool = True,
) -> int:
    """One product with one variant (SKU from the slug); returns the product id."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            product_id: int = await conn.fetchval(INSERT_PRODUCT, slug, name or slug, published)
            sku = slug.upper().replace("-", "_")
            await conn.execute(INSERT_VARIANT, product_id, sku, price, currency, stock)
    finally:
        await conn.close()
    return product_id
