"""Reads that decorate catalog lists: each product's first image, category names."""

from __future__ import annotations

import json
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
# The picture of one order line `l` (its variant_id and product_id), as a record: the variant's
# picture as VARIANT_IMAGES chooses it, else (a variant deleted since, or one whose product has
# no picture: then none either) its product's first image as FIRST_IMAGES does. For the lines
# of `line_images` and of an order email's one read (storage.orders.email_view).
LINE_IMAGE = """
    SELECT (i.path, i.width, i.height, i.alt, i.renditions::json) AS image FROM (
        (SELECT 0 AS rank, i.path, i.width, i.height, i.alt, i.renditions
         FROM variants v
         JOIN product_images i ON i.product_id = v.product_id
         LEFT JOIN attribute_choices c
             ON c.slug = v.attributes->>'colour'
            AND c.attribute_id = (SELECT id FROM attributes WHERE slug = 'colour')
         WHERE v.id = l.variant_id
         ORDER BY coalesce(strpos(lower(i.alt), lower(c.name)) > 0, false) DESC, i.position, i.id
         LIMIT 1)
        UNION ALL
        (SELECT 1, i.path, i.width, i.height, i.alt, i.renditions
         FROM product_images i WHERE i.product_id = l.product_id
         ORDER BY i.position, i.id
         LIMIT 1)
    ) i
    ORDER BY i.rank
    LIMIT 1
"""
LINE_IMAGES = f"""
    SELECT l.line, img.image
    FROM unnest($1::integer[], $2::bigint[], $3::bigint[]) AS l (line, variant_id, product_id)
    CROSS JOIN LATERAL ({LINE_IMAGE}) img
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
    variant's (as VARIANT_IMAGES chooses it), else, for a variant deleted since, its product's
    first image. One statement (LINE_IMAGE per line)."""
    if not lines:
        return {}
    rows = await executor.fetch(
        LINE_IMAGES, [n for n, _, _ in lines], [v for _, v, _ in lines], [p for _, _, p in lines]
    )
    return {row["line"]: thumbnail_of(row["image"]) for row in rows}


def thumbnail_of(image: Any) -> Thumbnail:
    """A Thumbnail from LINE_IMAGE's record (path, width, height, alt, renditions as JSON text:
    asyncpg leaves a json field of a record undecoded)."""
    path, width, height, alt, renditions = image
    return Thumbnail(path, width, height, alt, json.loads(renditions))


async def category_names(executor: Executor, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """{id: {"slug", "name"}} for the categories among `ids` that exist."""
    if not ids:
        return {}
    rows = await executor.fetch(CATEGORY_NAMES, list(ids))
    return {row["id"]: {"slug": row["slug"], "name": row["name"]} for row in rows}
