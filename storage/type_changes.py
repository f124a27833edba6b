"""Staff changes to product types and attributes once products use them, and what each touches.

Each change has an `effect_of_*` read (the counts a confirmation page shows; they may be stale by
the time the change is confirmed) and a write that takes its locks, checks again and applies the
change in the caller's transaction. Writes that change what products show return the ids of the
products whose search documents must be rebuilt; the caller records the events.

Locks, always in this order: the product type row, then the attribute row (FOR UPDATE), then the
products of the type (ORDER BY id FOR UPDATE, the lock a product save takes first), then the
advisory lock of the names being checked. Names are unique without regard to case among
attributes, among product types and among one attribute's choices; no index says so (older rows
may repeat a name), so every rename and addition checks under the advisory lock of its kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.attributes import CHECK_MESSAGES, Level
from storage.database import Executor
from storage.errors import (
    AttributeAlreadyDeclared,
    AttributeNotDeclared,
    AttributeNotFound,
    ChoiceInUse,
    ChoiceNotFound,
    DuplicateChoiceSlug,
    DuplicateName,
    InvalidAttribute,
    InvalidProductType,
    ProductTypeNotFound,
)

# One advisory lock per kind of name (pg_advisory_xact_lock(1467, n)): renames of one kind wait
# for each other, so two staff members cannot both take a free name.
NAMES_LOCK = "SELECT pg_advisory_xact_lock(1467, $1)"
ATTRIBUTE_NAMES, TYPE_NAMES, CHOICE_NAMES = 1, 2, 3

LOCK_TYPE = "SELECT id, name FROM product_types WHERE id = $1 FOR UPDATE"
LOCK_ATTRIBUTE = "SELECT id, slug, name, kind FROM attributes WHERE id = $1 FOR UPDATE"
LOCK_TYPE_PRODUCTS = "SELECT id FROM products WHERE product_type_id = $1 ORDER BY id FOR UPDATE"
GET_CHOICE = "SELECT slug, name FROM attribute_choices WHERE id = $1 AND attribute_id = $2"
GET_LEVEL = """
    SELECT level FROM product_type_attributes WHERE product_type_id = $1 AND attribute_id = $2
"""

TYPE_NAME_TAKEN = (
    "SELECT EXISTS (SELECT FROM product_types WHERE lower(name) = lower($1) AND id <> $2)"
)
ATTRIBUTE_NAME_TAKEN = (
    "SELECT EXISTS (SELECT FROM attributes WHERE lower(name) = lower($1) AND id <> $2)"
)
CHOICE_NAME_TAKEN = """
    SELECT EXISTS (
        SELECT FROM attribute_choices
        WHERE attribute_id = $1 AND lower(name) = lower($2) AND id <> $3
    )
"""
CHOICE_NAMES_TAKEN = """
    SELECT name FROM attribute_choices WHERE attribute_id = $1 AND lower(name) = ANY($2::text[])
    ORDER BY position, id
"""

RENAME_TYPE = "UPDATE product_types SET name = $2 WHERE id = $1"
RENAME_ATTRIBUTE = "UPDATE attributes SET name = $2 WHERE id = $1"
RENAME_CHOICE = "UPDATE attribute_choices SET name = $3 WHERE id = $1 AND attribute_id = $2"
DELETE_CHOICE = "DELETE FROM attribute_choices WHERE id = $1 AND attribute_id = $2"
COUNT_CHOICES = "SELECT count(*) FROM attribute_choices WHERE attribute_id = $1"
# New choices go after the existing ones, in the order given.
APPEND_CHOICES = """
    INSERT INTO attribute_choices (attribute_id, slug, name, swatch, position)
    SELECT $1, c.slug, c.name, c.swatch,
           c.n + coalesce((SELECT max(position) FROM attribute_choices WHERE attribute_id = $1), -1)
    FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS c (slug, name, swatch, n)
"""
DECLARE = """
    INSERT INTO product_type_attributes (product_type_id, attribute_id, level, position)
    SELECT $1, $2, $3,
           1 + coalesce((SELECT max(position) FROM product_type_attributes
                         WHERE product_type_id = $1), -1)
"""
UNDECLARE = "DELETE FROM product_type_attributes WHERE product_type_id = $1 AND attribute_id = $2"
STRIP_PRODUCTS = """
    UPDATE products SET attributes = attributes - $2::text, updated_at = now()
    WHERE product_type_id = $1 AND attributes ? $2
    RETURNING id
"""
STRIP_VARIANTS = """
    UPDATE variants v SET attributes = v.attributes - $2::text, updated_at = now()
    FROM products p
    WHERE p.id = v.product_id AND p.product_type_id = $1 AND v.attributes ? $2
    RETURNING v.product_id
"""

# The types declaring an attribute, by name, and how many products they have.
DECLARING_TYPES = """
    SELECT t.name, (SELECT count(*) FROM products p WHERE p.product_type_id = t.id) AS products
    FROM product_type_attributes pta JOIN product_types t ON t.id = pta.product_type_id
    WHERE pta.attribute_id = $1
    ORDER BY t.name, t.id
"""
DECLARING_PRODUCTS = """
    SELECT p.id FROM products p
    JOIN product_type_attributes pta ON pta.product_type_id = p.product_type_id
    WHERE pta.attribute_id = $1
    ORDER BY p.id
"""
TYPE_PRODUCTS = "SELECT count(*) FROM products WHERE product_type_id = $1"
# A value equal to the choice, or a list holding it (jsonb_path_ops indexes both containments).
USES_CHOICE = """
    (attributes @> jsonb_build_object($1::text, $2::text)
     OR attributes @> jsonb_build_object($1::text, jsonb_build_array($2::text)))
"""
CHOICE_PRODUCTS = f"""
    SELECT id FROM products WHERE {USES_CHOICE}
    UNION
    SELECT product_id FROM variants WHERE {USES_CHOICE}
    ORDER BY 1
"""
CHOICE_VARIANTS = f"SELECT count(*) FROM variants WHERE {USES_CHOICE}"
VALUES_IN_TYPE = """
    SELECT
        (SELECT count(*) FROM products WHERE product_type_id = $1 AND attributes ? $2) AS products,
        (SELECT count(*) FROM variants v JOIN products p ON p.id = v.product_id
         WHERE p.product_type_id = $1 AND v.attributes ? $2) AS variants,
        (SELECT count(*) FROM products p WHERE p.product_type_id = $1
           AND (p.attributes ? $2 OR EXISTS (SELECT FROM variants v
                                              WHERE v.product_id = p.id AND v.attributes ? $2)))
            AS touched
"""


@dataclass(frozen=True)
class Effect:
    """What a change touches: products (and variants) and the product types they belong to."""

    products: int
    variants: int = 0
    types: tuple[str, ...] = ()  # names, for a change to an attribute several types declare


async def _names_lock(conn: asyncpg.Connection, kind: int) -> None:
    await conn.execute(NAMES_LOCK, kind)


async def _lock_type(conn: asyncpg.Connection, type_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_TYPE, type_id)
    if row is None:
        raise ProductTypeNotFound(type_id)
    return row


async def _lock_attribute(conn: asyncpg.Connection, attribute_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_ATTRIBUTE, attribute_id)
    if row is None:
        raise AttributeNotFound(attribute_id)
    return row


async def _choice(executor: Executor, attribute_id: int, choice_id: int) -> asyncpg.Record:
    row = await executor.fetchrow(GET_CHOICE, choice_id, attribute_id)
    if row is None:
        raise ChoiceNotFound(choice_id)
    return row


# Product types


async def effect_of_type_change(executor: Executor, type_id: int) -> Effect:
    """The products of a type (renaming it or declaring one more attribute touches them all)."""
    return Effect(products=int(await executor.fetchval(TYPE_PRODUCTS, type_id)))


async def rename_type(conn: asyncpg.Connection, type_id: int, name: str) -> None:
    """Rename a product type. Raises ProductTypeNotFound or DuplicateName. No product's search
    document holds a type's name, so nothing to reindex."""
    await _lock_type(conn, type_id)
    await _names_lock(conn, TYPE_NAMES)
    if await conn.fetchval(TYPE_NAME_TAKEN, name, type_id):
        raise DuplicateName(name)
    await conn.execute(RENAME_TYPE, type_id, name)


async def declare(conn: asyncpg.Connection, type_id: int, attribute_id: int, level: Level) -> None:
    """Declare one more attribute on a type, after the others. Products keep their values (none
    for it yet). Raises ProductTypeNotFound, AttributeNotFound, AttributeAlreadyDeclared or
    InvalidProductType (a level other than product or variant)."""
    if level not in ("product", "variant"):
        raise InvalidProductType(f"levels must be product or variant, not {level}")
    await _lock_type(conn, type_id)
    await _lock_attribute(conn, attribute_id)
    try:
        async with conn.transaction():
            await conn.execute(DECLARE, type_id, attribute_id, level)
    except asyncpg.UniqueViolationError:
        raise AttributeAlreadyDeclared(attribute_id) from None


async def effect_of_undeclaring(executor: Executor, type_id: int, attribute_id: int) -> Effect:
    """The products of the type holding a value of the attribute (`products`: on the product or
    a variant) and the variants holding one."""
    row = await executor.fetchrow("SELECT slug FROM attributes WHERE id = $1", attribute_id)
    if row is None:
        raise AttributeNotFound(attribute_id)
    counts = await executor.fetchrow(VALUES_IN_TYPE, type_id, row["slug"])
    return Effect(products=int(counts["touched"]), variants=int(counts["variants"]))


async def undeclare(conn: asyncpg.Connection, type_id: int, attribute_id: int) -> list[int]:
    """Remove an attribute from a type and its values from the type's products and variants
    (they stay published). Returns the ids of the products that lost a value. Raises
    ProductTypeNotFound, AttributeNotFound or AttributeNotDeclared."""
    await _lock_type(conn, type_id)
    attribute = await _lock_attribute(conn, attribute_id)
    await conn.execute(LOCK_TYPE_PRODUCTS, type_id)
    if await conn.fetchval(GET_LEVEL, type_id, attribute_id) is None:
        raise AttributeNotDeclared(attribute_id)
    await conn.execute(UNDECLARE, type_id, attribute_id)
    # Both levels: a value left at the other level (older data) goes too.
    slug = attribute["slug"]
    changed = {row["id"] for row in await conn.fetch(STRIP_PRODUCTS, type_id, slug)}
    changed |= {row["product_id"] for row in await conn.fetch(STRIP_VARIANTS, type_id, slug)}
    return sorted(changed)


# Attributes and their choices


async def effect_of_attribute_change(executor: Executor, attribute_id: int) -> Effect:
    """The products of every type declaring the attribute, and those types' names."""
    rows = await executor.fetch(DECLARING_TYPES, attribute_id)
    return Effect(
        products=sum(int(row["products"]) for row in rows),
        types=tuple(row["name"] for row in rows),
    )


async def rename_attribute(conn: asyncpg.Connection, attribute_id: int, name: str) -> list[int]:
    """Rename an attribute; returns the products of the types declaring it (their pages show
    the name). Raises AttributeNotFound or DuplicateName."""
    await _lock_attribute(conn, attribute_id)
    await _names_lock(conn, ATTRIBUTE_NAMES)
    if await conn.fetchval(ATTRIBUTE_NAME_TAKEN, name, attribute_id):
        raise DuplicateName(name)
    await conn.execute(RENAME_ATTRIBUTE, attribute_id, name)
    return [row["id"] for row in await conn.fetch(DECLARING_PRODUCTS, attribute_id)]


async def effect_of_choice_change(executor: Executor, attribute_id: int, choice_id: int) -> Effect:
    """The products (by their own value or a variant's) and the variants carrying a choice.
    Raises AttributeNotFound or ChoiceNotFound."""
    slug = await executor.fetchval("SELECT slug FROM attributes WHERE id = $1", attribute_id)
    if slug is None:
        raise AttributeNotFound(attribute_id)
    choice = await _choice(executor, attribute_id, choice_id)
    product_ids = await executor.fetch(CHOICE_PRODUCTS, slug, choice["slug"])
    variants = await executor.fetchval(CHOICE_VARIANTS, slug, choice["slug"])
    return Effect(products=len(product_ids), variants=int(variants))


async def rename_choice(
    conn: asyncpg.Connection, attribute_id: int, choice_id: int, name: str
) -> list[int]:
    """Rename one choice (its slug, the stored value, stays); returns the products carrying it.
    Raises AttributeNotFound, ChoiceNotFound or DuplicateName."""
    attribute = await _lock_attribute(conn, attribute_id)
    choice = await _choice(conn, attribute_id, choice_id)
    await _names_lock(conn, CHOICE_NAMES)
    if await conn.fetchval(CHOICE_NAME_TAKEN, attribute_id, name, choice_id):
        raise DuplicateName(name)
    await conn.execute(RENAME_CHOICE, choice_id, attribute_id, name)
    rows = await conn.fetch(CHOICE_PRODUCTS, attribute["slug"], choice["slug"])
    return [row["id"] for row in rows]


async def remove_choice(conn: asyncpg.Connection, attribute_id: int, choice_id: int) -> None:
    """Remove a choice no product or variant carries. Raises AttributeNotFound, ChoiceNotFound,
    ChoiceInUse (counted under the attribute's lock) or InvalidAttribute (the last choice)."""
    attribute = await _lock_attribute(conn, attribute_id)
    choice = await _choice(conn, attribute_id, choice_id)
    products = await conn.fetch(CHOICE_PRODUCTS, attribute["slug"], choice["slug"])
    if products:
        variants = await conn.fetchval(CHOICE_VARIANTS, attribute["slug"], choice["slug"])
        raise ChoiceInUse(len(products), int(variants))
    if await conn.fetchval(COUNT_CHOICES, attribute_id) <= 1:
        raise InvalidAttribute("a choice attribute needs at least one choice")
    await conn.execute(DELETE_CHOICE, choice_id, attribute_id)


async def add_choices(
    conn: asyncpg.Connection,
    attribute_id: int,
    choices: Sequence[tuple[str, str, str | None]],
) -> None:
    """Append (slug, name, swatch) choices to a choice attribute, in a savepoint. Raises
    AttributeNotFound, InvalidAttribute (not a choice attribute, a repeated slug, a value the
    table refuses), DuplicateChoiceSlug or DuplicateName."""
    attribute = await _lock_attribute(conn, attribute_id)
    if attribute["kind"] != "choice":
        raise InvalidAttribute(f"only choice attributes have choices, not {attribute['kind']} ones")
    slugs = [slug for slug, _, _ in choices]
    names = [name.lower() for _, name, _ in choices]
    if len(set(slugs)) < len(slugs):
        raise InvalidAttribute("each new choice needs its own slug")
    if len(set(names)) < len(names):
        raise DuplicateName(next(n for n in names if names.count(n) > 1))
    await _names_lock(conn, CHOICE_NAMES)
    taken = await conn.fetchval(CHOICE_NAMES_TAKEN, attribute_id, names)
    if taken is not None:
        raise DuplicateName(taken)
    try:
        async with conn.transaction():
            await conn.execute(
                APPEND_CHOICES,
                attribute_id,
                slugs,
                [name for _, name, _ in choices],
                [swatch for _, _, swatch in choices],
            )
    except asyncpg.UniqueViolationError:
        raise DuplicateChoiceSlug(", ".join(slugs)) from None
    except asyncpg.CheckViolationError as exc:
        raise InvalidAttribute(CHECK_MESSAGES.get(exc.constraint_name or "", str(exc))) from None


async def attribute_name_taken(executor: Executor, name: str, except_id: int = 0) -> bool:
    """Whether another attribute has this name (any case): the form's early answer; the
    transaction's own check is `claim_attribute_name` or the rename's."""
    return bool(await executor.fetchval(ATTRIBUTE_NAME_TAKEN, name, except_id))


async def type_name_taken(executor: Executor, name: str, except_id: int) -> bool:
    """Whether another product type has this name (any case)."""
    return bool(await executor.fetchval(TYPE_NAME_TAKEN, name, except_id))


async def claim_attribute_name(conn: asyncpg.Connection, name: str) -> None:
    """For a new attribute: hold the attribute names' lock to the end of the caller's
    transaction and raise DuplicateName when another attribute has `name` (any case)."""
    await _names_lock(conn, ATTRIBUTE_NAMES)
    if await conn.fetchval(ATTRIBUTE_NAME_TAKEN, name, 0):
        raise DuplicateName(name)


async def claim_type_name(conn: asyncpg.Connection, name: str) -> None:
    """For a new product type: as `claim_attribute_name`, among the types."""
    await _names_lock(conn, TYPE_NAMES)
    if await conn.fetchval(TYPE_NAME_TAKEN, name, 0):
        raise DuplicateName(name)
