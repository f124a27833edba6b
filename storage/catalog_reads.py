"""Reads that decorate catalog lists: each product's first image, category names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from storage.database import Executor

FIRST_IMAGES = """
    SELECT DISTINCT ON (product_id) product_id, path, width, height, alt, renditions
    FROM product_images WHERE product_id = ANY ($1::bigint[])
    ORDER BY product_id, position, id
"""
CATEGORY_NAMES = "SELECT id, slug, name FROM categories WHERE id = ANY ($1::bigint[])"


class Thumbnail(NamedTuple):
    """A product's first image in a list (a named tuple: lists make many; see SearchHit)."""

    path: str
    width: int
    height: int
    alt: str
    renditions: dict[str, str]


async def first_images(executor: Executor, product_ids: Sequence[int]) -> dict[int, Thumbnail]:
    """Each product's first image (by position), for those that have one."""
    if not product_ids:
        return {}
    rows = await executor.fetch(FIRST_IMAGES, list(product_ids))
    return {
        row["product_id"]: Thumbnail(
            row["path"], row["width"], row["height"], row["alt"], row["renditions"]
        )
        for row in rows
    }


async def category_names(executor: Executor, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """{id: {"slug", "name"}} for the categories among `ids` that exist."""
    if not ids:
        return {}
    rows = await executor.fetch(CATEGORY_NAMES, list(ids))
    return {row["id"]: {"slug": row["slug"], "name": row["name"]} for row in rows}
