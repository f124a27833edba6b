"""Attributes and product types against real PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from storage import attributes
from storage.attributes import Attribute, Choice, ProductType
from storage.errors import (
    AttributeNotFound,
    DuplicateAttributeSlug,
    DuplicateProductTypeSlug,
    DuplicateSlug,
    InvalidAttribute,
    InvalidAttributeValues,
    InvalidProductType,
    ProductTypeNotFound,
)

SIZES = (("s", "Small", None), ("m", "Medium", None), ("l", "Large", None))
COLOURS = (("red", "Red", "#cc0000"), ("navy", "Navy", "#000080"))


async def make_attributes(conn: asyncpg.Connection) -> dict[str, Attribute]:
    return {
        "size": await attributes.create_attribute(
            conn, slug="size", name="Size", kind="choice", choices=SIZES
        ),
        "colour": await attributes.create_attribute(
            conn, slug="colour", name="Colour", kind="choice", choices=COLOURS
        ),
        "weight": await attributes.create_attribute(
            conn, slug="weight", name="Weight", kind="number", unit="g"
        ),
        "organic": await attributes.create_attribute(
            conn, slug="organic", name="Organic", kind="boolean"
        ),
        "care": await attributes.create_attribute(
            conn, slug="care_notes", name="Care notes", kind="text", is_filterable=False
        ),
    }


async def make_shirt_type(conn: asyncpg.Connection, made: dict[str, Attribute]) -> ProductType:
    return await attributes.create_product_type(
        conn,
        slug="t-shirt",
        name="T-shirt",
        attributes=[
            (made["organic"].id, "product"),
            (made["care"].id, "product"),
            (made["weight"].id, "product"),
            (made["size"].id, "variant"),
            (made["colour"].id, "variant"),
        ],
    )


async def test_create_attributes_of_every_kind(conn) -> None:
    made = await make_attributes(conn)
    size, colour, weight = made["size"], made["colour"], made["weight"]
    assert (size.slug, size.name, size.kind, size.unit, size.is_filterable) == (
        "size",
        "Size",
        "choice",
        "",
        True,
    )
    assert [(choice.slug, choice.name, choice.position) for choice in size.choices] == [
        ("s", "Small", 0),
        ("m", "Medium", 1),
        ("l", "Large", 2),
    ]
    assert colour.choices[0] == Choice(
        id=colour.choices[0].id, slug="red", name="Red", swatch="#cc0000", position=0
    )
    assert (weight.kind, weight.unit, weight.choices) == ("number", "g", ())
    assert made["organic"].kind == "boolean"
    assert (made["care"].kind, made["care"].is_filterable) == ("text", False)


async def test_list_and_filterable_attributes(conn) -> None:
    made = await make_attributes(conn)
    listed = await attributes.list_attributes(conn)
    assert [attribute.slug for attribute in listed] == [
        "care_notes",
        "colour",
        "organic",
        "size",
        "weight",
    ]
    assert listed[3] == made["size"]
    filterable = await attributes.filterable_attributes(conn)
    assert [attribute.slug for attribute in filterable] == ["colour", "organic", "size", "weight"]


@pytest.mark.parametrize(
    ("kind", "choices", "message"),
    [
        ("choice", (), "a choice attribute needs at least one choice"),
        ("number", SIZES, "only choice attributes have choices, not number ones"),
        ("colour", (), "the kind must be one of text, number, boolean, choice, not 'colour'"),
        ("choice", (*SIZES, ("s", "Again", None)), "choice slugs given more than once: s"),
    ],
)
async def test_create_attribute_refuses_bad_kinds_and_choices(
    conn, kind: str, choices: tuple[tuple[str, str, str | None], ...], message: str
) -> None:
    with pytest.raises(InvalidAttribute) as caught:
        await attributes.create_attribute(
            conn,
            slug="size",
            name="Size",
            kind=kind,  # type: ignore[arg-type]
            choices=choices,
        )
    assert str(caught.value) == message
    assert await attributes.list_attributes(conn) == []


@pytest.mark.parametrize(
    ("slug", "unit", "choices", "message"),
    [
        ("Size", "", SIZES, "the slug must be lowercase letters and digits, words joined by _"),
        ("size", "centimetres", (), "the unit must be at most 10 characters"),
        ("size", "", (("S M", "Small", None),), "a choice slug must be lowercase letters"),
        ("size", "", (("s", "Small", "red"),), "a swatch must be # and 6 lowercase hex digits"),
    ],
)
async def test_create_attribute_translates_table_checks(
    conn, slug: str, unit: str, choices: tuple[tuple[str, str, str | None], ...], message: str
) -> None:
    kind: attributes.Kind = "choice" if choices else "number"
    async with conn.transaction():
        with pytest.raises(InvalidAttribute) as caught:
            await attributes.create_attribute(
                conn, slug=slug, name="Size", kind=kind, unit=unit, choices=choices
            )
        assert str(caught.value).startswith(message)
        # A savepoint: the caller's transaction goes on, and nothing half-made is left.
        assert await attributes.list_attributes(conn) == []


async def test_duplicate_attribute_slug_raises_and_keeps_the_transaction(conn) -> None:
    await attributes.create_attribute(conn, slug="size", name="Size", kind="choice", choices=SIZES)
    async with conn.transaction():
        with pytest.raises(DuplicateAttributeSlug) as caught:
            await attributes.create_attribute(conn, slug="size", name="Size", kind="text")
        assert isinstance(caught.value, DuplicateSlug) and caught.value.slug == "size"
        await attributes.create_attribute(conn, slug="fit", name="Fit", kind="text")
    assert [a.slug for a in await attributes.list_attributes(conn)] == ["fit", "size"]


async def test_product_type_declares_attributes_at_both_levels(conn) -> None:
    made = await make_attributes(conn)
    shirt = await make_shirt_type(conn, made)
    assert (shirt.slug, shirt.name) == ("t-shirt", "T-shirt")
    assert [
        (declared.attribute.slug, declared.level, declared.position)
        for declared in shirt.attributes
    ] == [
        ("organic", "product", 0),
        ("care_notes", "product", 1),
        ("weight", "product", 2),
        ("size", "variant", 3),
        ("colour", "variant", 4),
    ]
    assert shirt.attributes[3].attribute == made["size"]  # choices included
    assert await attributes.get_product_type(conn, shirt.id) == shirt


async def test_product_type_without_attributes(conn) -> None:
    gift_card = await attributes.create_product_type(
        conn, slug="gift-card", name="Gift card", attributes=[]
    )
    assert gift_card.attributes == ()
    assert await attributes.get_product_type(conn, gift_card.id) == gift_card


async def test_get_missing_product_type_raises(conn) -> None:
    with pytest.raises(ProductTypeNotFound) as caught:
        await attributes.get_product_type(conn, 999)
    assert caught.value.product_type_id == 999


async def test_create_product_type_refusals_keep_the_transaction(conn) -> None:
    made = await make_attributes(conn)
    size = made["size"].id
    async with conn.transaction():
        with pytest.raises(AttributeNotFound) as caught:
            await attributes.create_product_type(
                conn, slug="mug", name="Mug", attributes=[(size, "variant"), (999, "product")]
            )
        assert caught.value.attribute_id == 999
        with pytest.raises(InvalidProductType, match="attributes declared twice"):
            await attributes.create_product_type(
                conn, slug="mug", name="Mug", attributes=[(size, "variant"), (size, "product")]
            )
        with pytest.raises(InvalidProductType, match="not both"):
            await attributes.create_product_type(
                conn,
                slug="mug",
                name="Mug",
                attributes=[(size, "both")],  # type: ignore[list-item]
            )
        with pytest.raises(InvalidProductType, match="the slug must be"):
            await attributes.create_product_type(conn, slug="Mug!", name="Mug", attributes=[])
        await make_shirt_type(conn, made)
        with pytest.raises(DuplicateProductTypeSlug):
            await make_shirt_type(conn, made)
    assert await conn.fetchval("SELECT count(*) FROM product_types") == 1
    assert await conn.fetchval("SELECT count(*) FROM product_type_attributes") == 5


async def test_validate_values_against_a_stored_type(conn) -> None:
    shirt = await make_shirt_type(conn, await make_attributes(conn))
    product = {"organic": True, "weight": 180, "care_notes": "  Wash at 30  "}
    assert attributes.validate_values(shirt, "product", product) == {
        "organic": True,
        "care_notes": "Wash at 30",
        "weight": 180,
    }
    assert attributes.validate_values(shirt, "variant", {"colour": "navy", "size": "m"}) == {
        "size": "m",
        "colour": "navy",
    }
    with pytest.raises(InvalidAttributeValues) as caught:
        attributes.validate_values(shirt, "variant", {"size": "xl", "organic": True, "fit": "x"})
    assert caught.value.errors == {
        "size": "must be one of s, m, l",
        "organic": "set on the product, not on the variant",
        "fit": "T-shirt has no such attribute",
    }
