"""A few demo products for `aioshop up` and `aioshop seed` (the catalog issue seeds more)."""

from __future__ import annotations

from storage import outbox
from storage.database import connect

DEMO_PRODUCTS = (
    ("linen-shirt", "Linen shirt", "A breathable shirt in washed linen.", 4900, "EUR"),
    ("trail-running-shoe", "Trail running shoe", "Grippy sole, light mesh upper.", 11900, "EUR"),
    ("ceramic-mug", "Ceramic mug", "Stoneware mug, 350 ml, dishwasher safe.", 1500, "EUR"),
    ("wool-beanie", "Wool beanie", "Merino wool, one size.", 2500, "EUR"),
    ("canvas-tote", "Canvas tote", "Heavy cotton canvas with inner pocket.", 1900, "EUR"),
    ("desk-lamp", "Desk lamp", "Dimmable LED, warm white.", 5900, "EUR"),
)

INSERT_DEMO_PRODUCT = """
    INSERT INTO products (slug, name, description) VALUES ($1, $2, $3)
    ON CONFLICT (slug) DO NOTHING
    RETURNING id
"""
INSERT_DEMO_VARIANT = """
    INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand)
    VALUES ($1, upper(replace($2, '-', '_')), $3, $4, 25)
"""


async def seed_demo(dsn: str) -> int:
    """Insert the demo products that are missing (and queue their indexing); returns how many."""
    conn = await connect(dsn)
    created = 0
    try:
        async with conn.transaction():
            for slug, name, description, amount, currency in DEMO_PRODUCTS:
                product_id = await conn.fetchval(INSERT_DEMO_PRODUCT, slug, name, description)
                if product_id is not None:
                    await conn.execute(INSERT_DEMO_VARIANT, product_id, slug, amount, currency)
                    await outbox.add(conn, "search.index_product", product_id=product_id)
                    created += 1
    finally:
        await conn.close()
    return created
