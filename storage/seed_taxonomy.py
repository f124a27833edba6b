"""The seed's taxonomy: attributes and their choices, product types, the category tree.

Upserted by slug with plain INSERTs, so a second run reuses what the first made (and whatever
staff changed since: ON CONFLICT leaves existing rows alone). A type whose attributes are declared
at other levels than the seed's raises SeedConflict rather than give products values their type
does not expect.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from storage.errors import Conflict
from storage.seed_data import ATTRIBUTES, CATEGORIES, CHOICES, TYPES, Node, Taxonomy, TypeSpec

UPSERT_ATTRIBUTE = """
    INSERT INTO attributes (slug, name, kind, unit) VALUES ($1, $2, $3, $4)
    ON CONFLICT (slug) DO NOTHING
"""
UPSERT_CHOICE = """
    INSERT INTO attribute_choices (attribute_id, slug, name, swatch, position)
    SELECT id, $2, $3, $4, $5 FROM attributes WHERE slug = $1
    ON CONFLICT (attribute_id, slug) DO NOTHING
"""
UPSERT_TYPE = "INSERT INTO product_types (slug, name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING"
UPSERT_TYPE_ATTRIBUTE = """
    INSERT INTO product_type_attributes (product_type_id, attribute_id, level, position)
    SELECT t.id, a.id, $3, $4 FROM product_types t, attributes a WHERE t.slug = $1 AND a.slug = $2
    ON CONFLICT (product_type_id, attribute_id) DO NOTHING
"""
LIST_TYPE_LEVELS = """
    SELECT t.slug AS type, a.slug AS attribute, pta.level
    FROM product_type_attributes pta
    JOIN product_types t ON t.id = pta.product_type_id
    JOIN attributes a ON a.id = pta.attribute_id
    WHERE t.slug = ANY($1::text[])
"""
LIST_TYPE_IDS = "SELECT slug, id FROM product_types WHERE slug = ANY($1::text[])"
# The path ends with the row's own id (a CHECK), so the id is drawn first from the identity's
# own sequence; ON CONFLICT leaves an existing category (wherever staff moved it) alone.
INSERT_CATEGORY = """
    INSERT INTO categories (id, parent_id, slug, name, path, position) OVERRIDING SYSTEM VALUE
    SELECT n.id, $1::bigint, $2, $3,
           coalesce((SELECT path FROM categories WHERE id = $1), '{}') || n.id, $4
    FROM (SELECT nextval(pg_get_serial_sequence('categories', 'id')) AS id) AS n
    ON CONFLICT (slug) DO NOTHING
    RETURNING id
"""
GET_CATEGORY_ID = "SELECT id FROM categories WHERE slug = $1"


class SeedConflict(Conflict):
    """The database holds catalog data the seed cannot add to without contradicting it."""


async def upsert_taxonomy(conn: asyncpg.Connection) -> tuple[Taxonomy, int]:
    """Create what is missing of the taxonomy; returns its ids and how many rows it declares."""
    await conn.executemany(UPSERT_ATTRIBUTE, [a[:4] for a in ATTRIBUTES])
    await conn.executemany(UPSERT_CHOICE, [
        (attribute, *choice, position)
        for attribute, choices in CHOICES.items() for position, choice in enumerate(choices)
    ])  # fmt: skip
    await conn.executemany(UPSERT_TYPE, [(t.slug, t.name) for t in TYPES.values()])
    declared = [
        (t.slug, attribute, level, position)
        for t in TYPES.values()
        for position, (attribute, level) in enumerate(
            [(a, "product") for a in t.product_attributes]
            + [(a, "variant") for a in t.variant_attributes]
        )
    ]
    await conn.executemany(UPSERT_TYPE_ATTRIBUTE, declared)
    levels = {(r["type"], r["attribute"]): r["level"] for r in await conn.fetch(
        LIST_TYPE_LEVELS, list(TYPES))}  # fmt: skip
    for type_slug, attribute, level, _ in declared:
        if levels.get((type_slug, attribute)) != level:
            raise SeedConflict(
                f"product type {type_slug!r} declares {attribute!r} at the "
                f"{levels.get((type_slug, attribute))} level, the seed needs {level}"
            )
    type_ids = {r["slug"]: r["id"] for r in await conn.fetch(LIST_TYPE_IDS, list(TYPES))}
    leaves: list[tuple[int, TypeSpec]] = []

    async def insert(nodes: Sequence[Node], parent: int | None) -> int:
        count = 0
        for position, (slug, name, type_slug, children) in enumerate(nodes):
            category_id = await conn.fetchval(INSERT_CATEGORY, parent, slug, name, position)
            category_id = category_id or await conn.fetchval(GET_CATEGORY_ID, slug)
            if type_slug is not None:
                leaves.append((category_id, TYPES[type_slug]))
            count += 1 + await insert(children, category_id)
        return count

    categories = await insert(CATEGORIES, None)
    rows = len(ATTRIBUTES) + sum(map(len, CHOICES.values())) + len(TYPES) + len(declared)
    return Taxonomy(tuple(leaves), type_ids), rows + categories
