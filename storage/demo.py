"""The demo catalog of `aioshop up` and `aioshop seed` (without --products): small, realistic,
with pictures.

The pictures (storage.demo_images) go the way a staff upload goes: each is kept through the
upload's spool and check (storage.media.store_original), and its row commits with the
MAKE_RENDITIONS event (storage.images.add_original), so the image actor makes the renditions
(srcset) once a worker runs. Drawing runs on a small thread pool while files are written.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from storage import images, media
from storage.database import connect
from storage.demo_images import Picture, draw, pictures_of
from storage.seed import seed_catalog

log = structlog.get_logger(__name__)

# Enough for every category and facet of the seed's taxonomy to show something; seeded in
# about a second, so `aioshop up` stays quick.
DEMO_SIZE = 240
DRAWING_THREADS = 2
MAX_PICTURE_BYTES = 1024 * 1024  # far above what draw() makes: a bound, as for an upload
# Each product's colours in its variants' order (first appearance), with their names and swatches.
LIST_PRODUCT_COLOURS = """
    SELECT p.id, p.name,
           coalesce(array_agg(c.name ORDER BY first.position)
                    FILTER (WHERE c.name IS NOT NULL), '{}') AS colour_names,
           coalesce(array_agg(c.swatch ORDER BY first.position)
                    FILTER (WHERE c.name IS NOT NULL), '{}') AS swatches
    FROM products p
    LEFT JOIN LATERAL (
        SELECT v.attributes->>'colour' AS colour, min(v.position) AS position
        FROM variants v WHERE v.product_id = p.id AND v.attributes ? 'colour'
        GROUP BY 1
    ) first ON true
    LEFT JOIN attribute_choices c
        ON c.slug = first.colour AND c.swatch IS NOT NULL
       AND c.attribute_id = (SELECT id FROM attributes WHERE slug = 'colour')
    WHERE p.id = ANY($1::bigint[])
    GROUP BY p.id, p.name
    ORDER BY p.id
"""
LIST_PRODUCT_IDS = "SELECT id FROM products ORDER BY id"


@dataclass(frozen=True)
class Stored:
    product_id: int
    path: str
    width: int
    height: int
    alt: str


async def seed_demo(dsn: str, media_dir: Path | None = None) -> int:
    """Seed the demo catalog when there are no products at all; returns how many were added.

    With `media_dir`, each product gets its pictures there and their renditions are queued.
    Products an operator made are never mixed with generated ones: any product means 0.
    """
    conn = await connect(dsn)
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT FROM products)"):
            return 0
    finally:
        await conn.close()
    report = await seed_catalog(dsn, DEMO_SIZE, seed=1)
    if media_dir is not None:
        conn = await connect(dsn)
        try:
            ids = [row["id"] for row in await conn.fetch(LIST_PRODUCT_IDS)]
            await add_pictures(conn, media_dir, ids)
        finally:
            await conn.close()
    return report.products


async def add_pictures(conn: asyncpg.Connection, media_dir: Path, product_ids: list[int]) -> int:
    """Draw and keep the pictures of these products, their rows and MAKE_RENDITIONS events in
    one transaction; returns how many. Files of a transaction that failed are removed."""
    begun = time.monotonic()
    rows = await conn.fetch(LIST_PRODUCT_COLOURS, product_ids)
    wanted = [
        (row["id"], picture)
        for row in rows
        for picture in pictures_of(
            row["name"], list(zip(row["colour_names"], row["swatches"], strict=True))
        )
    ]
    with ThreadPoolExecutor(DRAWING_THREADS, thread_name_prefix="demo-pictures") as pool:
        results = await asyncio.gather(
            *(_store(pool, media_dir, product_id, picture) for product_id, picture in wanted),
            return_exceptions=True,
        )
    stored = [each for each in results if isinstance(each, Stored)]
    failed = [each for each in results if not isinstance(each, Stored)]
    if failed:
        await asyncio.to_thread(media.remove, media_dir, [each.path for each in stored])
        raise failed[0]
    try:
        async with conn.transaction():
            for each in stored:  # in product and place order: the same positions every time
                await images.add_original(
                    conn,
                    each.product_id,
                    path=each.path,
                    width=each.width,
                    height=each.height,
                    alt=each.alt,
                )
    except BaseException:
        await asyncio.to_thread(media.remove, media_dir, [each.path for each in stored])
        raise
    log.info(
        "demo.pictures_added",
        pictures=len(stored),
        products=len(rows),
        seconds=round(time.monotonic() - begun, 3),
    )
    return len(stored)


async def _store(
    pool: ThreadPoolExecutor, media_dir: Path, product_id: int, picture: Picture
) -> Stored:
    data = await asyncio.get_running_loop().run_in_executor(pool, draw, picture)
    path, info = await media.store_original(media_dir, product_id, data, MAX_PICTURE_BYTES)
    return Stored(product_id, path, info.width, info.height, picture.alt)
