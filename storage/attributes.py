"""Attributes (size, colour, material...) and the product types that declare them.

A type declares each attribute at the product level (one value per product) or at the variant
level (one value per variant). `validate_values` checks a product's or variant's values against
its type without I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal, get_args

import asyncpg

from domain.attributes import value_text
from storage.database import Executor
from storage.errors import (
    AttributeNotFound,
    DuplicateAttributeSlug,
    DuplicateProductTypeSlug,
    InvalidAttribute,
    InvalidAttributeValues,
    InvalidProductType,
    ProductTypeNotFound,
)

Kind = Literal["text", "number", "boolean", "choice"]
Level = Literal["product", "variant"]
KINDS: tuple[Kind, ...] = get_args(Kind)
LEVELS: tuple[Level, ...] = get_args(Level)
MAX_TEXT_LENGTH = 200
# Numbers every JSON reader takes exactly (a double's integers): larger ones came back from
# jsonb as integers past 64 bits, which the catalog's JSON encoder refuses.
MAX_NUMBER = 2**53 - 1
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

# Choices come back as an array of anonymous records, which asyncpg decodes into tuples.
ATTRIBUTE_COLUMNS = """
    a.id, a.slug, a.name, a.kind, a.unit, a.is_filterable,
    ARRAY(
        SELECT ROW(c.id, c.slug, c.name, c.swatch, c.position)
        FROM attribute_choices c WHERE c.attribute_id = a.id
        ORDER BY c.position, c.id
    ) AS choices
"""
INSERT_ATTRIBUTE = """
    INSERT INTO attributes (slug, name, kind, unit, is_filterable)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING id
"""
# Positions follow the order the caller gave, from 0.
INSERT_CHOICES = """
    INSERT INTO attribute_choices (attribute_id, slug, name, swatch, position)
    SELECT $1, choice.slug, choice.name, choice.swatch, choice.position - 1
    FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY
        AS choice (slug, name, swatch, position)
"""
GET_ATTRIBUTE = f"SELECT {ATTRIBUTE_COLUMNS} FROM attributes a WHERE a.id = $1"
LIST_ATTRIBUTES = f"SELECT {ATTRIBUTE_COLUMNS} FROM attributes a ORDER BY a.name, a.id"
LIST_FILTERABLE_ATTRIBUTES = f"""
    SELECT {ATTRIBUTE_COLUMNS} FROM attributes a WHERE a.is_filterable ORDER BY a.name, a.id
"""
# KEY SHARE: the attributes cannot be deleted before the type that uses them commits.
LOCK_ATTRIBUTES = """
    SELECT id FROM attributes WHERE id = ANY ($1::bigint[]) ORDER BY id FOR KEY SHARE
"""
INSERT_PRODUCT_TYPE = "INSERT INTO product_types (slug, name) VALUES ($1, $2) RETURNING id"
INSERT_TYPE_ATTRIBUTES = """
    INSERT INTO product_type_attributes (product_type_id, attribute_id, level, position)
    SELECT $1, declared.attribute_id, declared.level, declared.position - 1
    FROM unnest($2::bigint[], $3::text[]) WITH ORDINALITY
        AS declared (attribute_id, level, position)
"""
# One row per declared attribute (one row of NULLs after the type's columns if it has none).
GET_PRODUCT_TYPE = f"""
    SELECT t.id AS type_id, t.slug AS type_slug, t.name AS type_name,
           pta.level, pta.position AS type_position, {ATTRIBUTE_COLUMNS}
    FROM product_types t
    LEFT JOIN product_type_attributes pta ON pta.product_type_id = t.id
    LEFT JOIN attributes a ON a.id = pta.attribute_id
    WHERE t.id = $1
    ORDER BY pta.position, a.id
"""
# Every type the same way, by name (a type without attributes: one row of NULLs after its own).
LIST_PRODUCT_TYPES = f"""
    SELECT t.id AS type_id, t.slug AS type_slug, t.name AS type_name,
           pta.level, pta.position AS type_position, {ATTRIBUTE_COLUMNS}
    FROM product_types t
    LEFT JOIN product_type_attributes pta ON pta.product_type_id = t.id
    LEFT JOIN attributes a ON a.id = pta.attribute_id
    ORDER BY t.name, t.id, pta.position, a.id
"""

# The table's CHECK constraints, said for people.
CHECK_MESSAGES = {
    "attributes_slug_check": "the slug must be lowercase letters and digits, words joined by _",
    "attributes_name_check": "the name must be 1 to 60 characters",
    "attributes_unit_check": "the unit must be at most 10 characters",
    "attribute_choices_slug_check": (
        "a choice slug must be lowercase letters and digits, words joined by -"
    ),
    "attribute_choices_name_check": "a choice name must be 1 to 60 characters",
    "attribute_choices_swatch_check": "a swatch must be # and 6 lowercase hex digits",
    "product_types_slug_check": "the slug must be lowercase letters and digits, words joined by -",
    "product_types_name_check": "the name must be 1 to 60 characters",
}


@dataclass(frozen=True)
class Choice:
    id: int
    slug: str
    name: str
    swatch: str | None  # "#rrggbb", for colours
    position: int


@dataclass(frozen=True)
class Attribute:
    id: int
    slug: str  # the key in products' and variants' attribute values
    name: str
    kind: Kind
    unit: str  # "cm", "g"...; "" for none
    is_filterable: bool
    choices: tuple[Choice, ...]  # only for kind "choice", in display order

    def text(self, value: object) -> str:
        """`value` of this attribute for people (domain.attributes.value_text)."""
        names = {choice.slug: choice.name for choice in self.choices}
        return value_text(value, kind=self.kind, unit=self.unit, choices=names)


@dataclass(frozen=True)
class TypeAttribute:
    attribute: Attribute
    level: Level
    position: int


@dataclass(frozen=True)
class ProductType:
    id: int
    slug: str
    name: str
    attributes: tuple[TypeAttribute, ...]  # in declaration order


def _attribute(row: Any) -> Attribute:
    return Attribute(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        kind=row["kind"],
        unit=row["unit"],
        is_filterable=row["is_filterable"],
        choices=tuple(
            Choice(id=choice_id, slug=slug, name=name, swatch=swatch, position=position)
            for choice_id, slug, name, swatch, position in row["choices"]
        ),
    )


def _check_message(exc: asyncpg.CheckViolationError) -> str:
    return CHECK_MESSAGES.get(exc.constraint_name or "", str(exc))


def _check_definition(kind: str, choices: Sequence[tuple[str, str, str | None]]) -> None:
    if kind not in KINDS:
        raise InvalidAttribute(f"the kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind != "choice" and choices:
        raise InvalidAttribute(f"only choice attributes have choices, not {kind} ones")
    if kind == "choice" and not choices:
        raise InvalidAttribute("a choice attribute needs at least one choice")
    slugs = [slug for slug, _, _ in choices]
    repeated = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if repeated:
        raise InvalidAttribute(f"choice slugs given more than once: {', '.join(repeated)}")


async def create_attribute(
    conn: asyncpg.Connection,
    *,
    slug: str,
    name: str,
    kind: Kind,
    unit: str = "",
    is_filterable: bool = True,
    choices: Sequence[tuple[str, str, str | None]] = (),
) -> Attribute:
    """Insert an attribute and its (slug, name, swatch) choices, in a savepoint.

    Raises InvalidAttribute (bad kind, choices without kind "choice" or none with it, a slug,
    name, unit or swatch the table refuses) or DuplicateAttributeSlug; the caller's
    transaction stays usable.
    """
    _check_definition(kind, choices)
    async with conn.transaction():
        try:
            attribute_id = await conn.fetchval(
                INSERT_ATTRIBUTE, slug, name, kind, unit, is_filterable
            )
            if choices:
                await conn.execute(
                    INSERT_CHOICES,
                    attribute_id,
                    [choice_slug for choice_slug, _, _ in choices],
                    [choice_name for _, choice_name, _ in choices],
                    [swatch for _, _, swatch in choices],
                )
        except asyncpg.UniqueViolationError:
            raise DuplicateAttributeSlug(slug) from None
        except asyncpg.CheckViolationError as exc:
            raise InvalidAttribute(_check_message(exc)) from None
        return _attribute(await conn.fetchrow(GET_ATTRIBUTE, attribute_id))


async def get_attribute(executor: Executor, attribute_id: int) -> Attribute:
    """One attribute with its choices; raises AttributeNotFound."""
    row = await executor.fetchrow(GET_ATTRIBUTE, attribute_id)
    if row is None:
        raise AttributeNotFound(attribute_id)
    return _attribute(row)


async def list_attributes(executor: Executor) -> list[Attribute]:
    """Every attribute with its choices, by name."""
    return [_attribute(row) for row in await executor.fetch(LIST_ATTRIBUTES)]


async def filterable_attributes(executor: Executor) -> list[Attribute]:
    """The attributes shoppers can filter by, with their choices, by name."""
    return [_attribute(row) for row in await executor.fetch(LIST_FILTERABLE_ATTRIBUTES)]


async def create_product_type(
    conn: asyncpg.Connection,
    *,
    slug: str,
    name: str,
    attributes: Sequence[tuple[int, Level]],
) -> ProductType:
    """Insert a product type declaring (attribute_id, level) pairs in that order, in a savepoint.

    Raises InvalidProductType (bad level, an attribute twice, a slug or name the table refuses),
    AttributeNotFound or DuplicateProductTypeSlug; the caller's transaction stays usable.
    """
    ids = [attribute_id for attribute_id, _ in attributes]
    levels = [level for _, level in attributes]
    bad_levels = sorted({level for level in levels if level not in LEVELS})
    if bad_levels:
        raise InvalidProductType(f"levels must be product or variant, not {', '.join(bad_levels)}")
    repeated = sorted({attribute_id for attribute_id in ids if ids.count(attribute_id) > 1})
    if repeated:
        raise InvalidProductType(f"attributes declared twice: {', '.join(map(str, repeated))}")
    async with conn.transaction():
        found = {row["id"] for row in await conn.fetch(LOCK_ATTRIBUTES, ids)}
        for attribute_id in ids:
            if attribute_id not in found:
                raise AttributeNotFound(attribute_id)
        try:
            type_id = await conn.fetchval(INSERT_PRODUCT_TYPE, slug, name)
        except asyncpg.UniqueViolationError:
            raise DuplicateProductTypeSlug(slug) from None
        except asyncpg.CheckViolationError as exc:
            raise InvalidProductType(_check_message(exc)) from None
        await conn.execute(INSERT_TYPE_ATTRIBUTES, type_id, ids, levels)
        return await get_product_type(conn, type_id)


LOCK_PRODUCT_TYPE = "SELECT id FROM product_types WHERE id = $1 FOR SHARE"


async def get_product_type(
    executor: Executor, product_type_id: int, *, lock: bool = False
) -> ProductType:
    """One product type with its attributes in declaration order; raises ProductTypeNotFound.

    lock: first take a share lock on the type until the caller's transaction ends, so a change
    to its attributes (storage.type_changes, which locks the type for update) waits for it."""
    if lock:
        await executor.fetchval(LOCK_PRODUCT_TYPE, product_type_id)
    rows = await executor.fetch(GET_PRODUCT_TYPE, product_type_id)
    if not rows:
        raise ProductTypeNotFound(product_type_id)
    first = rows[0]
    declared = tuple(
        TypeAttribute(attribute=_attribute(row), level=row["level"], position=row["type_position"])
        for row in rows
        if row["id"] is not None
    )
    return ProductType(
        id=first["type_id"], slug=first["type_slug"], name=first["type_name"], attributes=declared
    )


async def list_product_types(executor: Executor) -> list[ProductType]:
    """Every product type with its attributes in declaration order, by name; one query."""
    types: list[ProductType] = []
    for _, grouped in groupby(await executor.fetch(LIST_PRODUCT_TYPES), key=itemgetter("type_id")):
        rows = list(grouped)
        first = rows[0]
        declared = tuple(
            TypeAttribute(
                attribute=_attribute(row), level=row["level"], position=row["type_position"]
            )
            for row in rows
            if row["id"] is not None
        )
        types.append(
            ProductType(
                id=first["type_id"],
                slug=first["type_slug"],
                name=first["type_name"],
                attributes=declared,
            )
        )
    return types


def validate_values(
    product_type: ProductType, level: Level, values: Mapping[str, object]
) -> dict[str, object]:
    """Check a product's or variant's attribute values against its type. Pure: no I/O.

    Returns the values in declaration order, text stripped. Raises InvalidAttributeValues naming
    every bad key (unknown, declared at the other level, wrong type, not one of the choices);
    ValueError for a level other than "product" or "variant".
    """
    if level not in LEVELS:
        raise ValueError(f"level must be product or variant, not {level!r}")
    declared = {each.attribute.slug: each for each in product_type.attributes}
    errors: dict[str, str] = {}
    checked: dict[str, object] = {}
    for key, value in values.items():
        found = declared.get(key)
        if found is None:
            errors[key] = f"{product_type.name} has no such attribute"
        elif found.level != level:
            errors[key] = f"set on the {found.level}, not on the {level}"
        else:
            try:
                checked[key] = _clean(found.attribute, value)
            except ValueError as exc:
                errors[key] = str(exc)
    if errors:
        raise InvalidAttributeValues(errors)
    return {
        found.attribute.slug: checked[found.attribute.slug]
        for found in product_type.attributes
        if found.attribute.slug in checked
    }


def _clean(attribute: Attribute, value: object) -> object:
    """The value to store for this attribute; ValueError says what is wrong with it."""
    if attribute.kind == "number":
        # bool is an int subclass, but True is not a number of centimetres.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if not -MAX_NUMBER <= value <= MAX_NUMBER:
            raise ValueError(f"must be between -{MAX_NUMBER} and {MAX_NUMBER}")
        return value
    if attribute.kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if attribute.kind == "text":
        if not isinstance(value, str):
            raise ValueError("must be text")
        value = value.strip()
        if len(value) > MAX_TEXT_LENGTH:
            raise ValueError(f"must be at most {MAX_TEXT_LENGTH} characters")
        if CONTROL_CHARACTER.search(value):  # jsonb refuses NUL; the rest no one can see
            raise ValueError("must not contain control characters")
        return value
    slugs = [choice.slug for choice in attribute.choices]
    if not isinstance(value, str) or value not in slugs:
        raise ValueError(f"must be one of {', '.join(slugs)}")
    return value
