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
# The picture for a cart or order line: the variant's product's image whose alt text names the
# variant's colour (the demo's "Tee in Red", or staff's own words), else its first image.
VARIANT_IMAGES = """
    SELECT DISTINCT ON (v.id) v.id AS variant_id, i.path, i.width, i.height, i.alt, i.renditions
    FROM variants v
    JOIN product_images i ON i.product_id = v.product_id
    LEFT JOIN attribute_choices c
        ON c.slug = v.attributes->>'colour'
       AND c.attribute_id = (SELECT id FROM attributes WHERE slug = 'colour')
    WHERE v.id = ANY ($1::bigint[])
    ORDER BY v.id, coalesce(strpos(lower(i.alt), lower(c.name)) > 0, false) DESC, i.position, i.id
"""
CATEGORY_NAMES = "SELECT id, slug, name FROM categories WHERE id = ANY ($1::bigint[])"


class Thumbnail(NamedTuple):
    """A product's first image in a list (a named tuple: lists make many; see SearchHit)."""

    path: str
    width: int
    height: int
    alt: str
    renditions: dict[str, str]

    @property
    def smallest(self) -> tuple[str, int, int]:
        """The smallest file of the image (a rendition, else the original): path, width, height.

        A rendition keeps the original's proportions, so its height follows from its width."""
        if not self.renditions:
            return self.path, self.width, self.height
        width = min(int(key) for key in self.renditions)
        height = max(1, round(self.height * width / self.width))
        return self.renditions[str(width)], width, height


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


async def variant_images(executor: Executor, variant_ids: Sequence[int]) -> dict[int, Thumbnail]:
    """The picture of each variant (by id) whose product has images; see VARIANT_IMAGES."""
    if not variant_ids:
        return {}
    rows = await executor.fetch(VARIANT_IMAGES, list(variant_ids))
    return {
        row["variant_id"]: Thumbnail(
            row["path"], row["width"], row["height"], row["alt"], row["renditions"]
        )
        for row in rows
    }


async def line_images(
    executor: Executor, lines: Sequence[tuple[int, int | None, int | None]]
) -> dict[int, Thumbnail]:
    """The picture of each order line, by line number, from (line, variant_id, product_id): the
    variant's (variant_images), else, for a variant deleted since, its product's first image."""
    by_variant = await variant_images(executor, [v for _, v, _ in lines if v is not None])
    missing = [p for _, v, p in lines if p is not None and v not in by_variant]
    by_product = await first_images(executor, missing) if missing else {}
    found: dict[int, Thumbnail] = {}
    for line, variant_id, product_id in lines:
        image = by_variant.get(variant_id) if variant_id is not None else None
        if image is None and product_id is not None:
            image = by_product.get(product_id)
        if image is not None:
            found[line] = image
    return found


async def category_names(executor: Executor, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """{id: {"slug", "name"}} for the categories among `ids` that exist."""
    if not ids:
        return {}
    rows = await executor.fetch(CATEGORY_NAMES, list(ids))
    return {row["id"]: {"slug": row["slug"], "name": row["name"]} for row in rows}
