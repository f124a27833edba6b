"""Reads for the sitemaps: which id ranges hold published products, and the URLs in one range.

Products are split into chunks by id: chunk n (from 1) holds the ids in ((n-1)*size, n*size].
Ids are unique, so a chunk never has more than `size` products, and a product never moves to
another chunk (publishing, unpublishing and editing change what a chunk holds, not where the
boundaries are). Ranges that hold no published product are left out of the index. Reading a
chunk walks its range by keyset (`id > last`), never by OFFSET.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime

from storage.database import Executor

# One index probe per chunk of ids up to the largest: about 6 ms for a million products, where
# one pass over the rows for each chunk's newest change (a lastmod per child) takes 0.5 to 1 s.
GET_PRODUCT_CHUNKS = """
    SELECT n.number
    FROM generate_series(1, (SELECT coalesce(max(id), 0) FROM products) / $1::bigint + 1)
        AS n (number)
    WHERE EXISTS (
        SELECT FROM products
        WHERE is_published AND id > (n.number - 1) * $1::bigint AND id <= n.number * $1::bigint
    )
    ORDER BY n.number
"""
GET_PRODUCT_URLS = """
    SELECT id, slug, updated_at FROM products
    WHERE is_published AND id > $1 AND id <= $2
    ORDER BY id LIMIT $3
"""
GET_CATEGORY_SLUGS = "SELECT slug FROM categories ORDER BY path"
BATCH = 5_000  # rows per statement while a chunk streams


@dataclass(frozen=True)
class ProductUrl:
    slug: str
    lastmod: datetime


async def product_chunks(reader: Executor, size: int) -> list[int]:
    """The numbers of the chunks of `size` ids that hold a published product, in order (one
    statement)."""
    return [row["number"] for row in await reader.fetch(GET_PRODUCT_CHUNKS, size)]


async def product_batches(
    reader: Executor, number: int, size: int, *, batch: int = BATCH
) -> AsyncGenerator[list[ProductUrl], None]:
    """The published products of chunk `number` (of `size` ids), in id order, `batch` rows per
    statement; nothing for a chunk with none. Every statement goes through `reader`."""
    last, end = (number - 1) * size, number * size
    while True:
        rows = await reader.fetch(GET_PRODUCT_URLS, last, end, batch)
        if not rows:
            return
        yield [ProductUrl(row["slug"], row["updated_at"]) for row in rows]
        if len(rows) < batch:
            return
        last = rows[-1]["id"]


async def category_slugs(reader: Executor) -> list[str]:
    """Every category's slug, parents before their children."""
    return [row["slug"] for row in await reader.fetch(GET_CATEGORY_SLUGS)]
