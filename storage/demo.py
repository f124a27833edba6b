"""The demo catalog of `aioshop up` and `aioshop seed` (without --products): small, realistic."""

from __future__ import annotations

from storage.database import connect
from storage.seed import seed_catalog

# Enough for every category and facet of the seed's taxonomy to show something; seeded in
# about a second, so `aioshop up` stays quick.
DEMO_SIZE = 240


async def seed_demo(dsn: str) -> int:
    """Seed the demo catalog when there are no products at all; returns how many were added.

    Products an operator made are never mixed with generated ones: any product means 0.
    """
    conn = await connect(dsn)
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT FROM products)"):
            return 0
    finally:
        await conn.close()
    report = await seed_catalog(dsn, DEMO_SIZE, seed=1)
    return report.products
