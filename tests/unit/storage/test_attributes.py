"""validate_values: a product's or variant's attribute values against its type (no database)."""

from __future__ import annotations

import pytest

from storage.attributes import (
    Attribute,
    Choice,
    Kind,
    Level,
    ProductType,
    TypeAttribute,
    validate_values,
)
from storage.errors import InvalidAttributeValues


def attribute(slug: str, kind: Kind, choices: tuple[str, ...] = ()) -> Attribute:
    return Attribute(
        id=len(slug),
        slug=slug,
        name=slug.title(),
        kind=kind,
        unit="",
        is_filterable=True,
        choices=tuple(
            Choice(id=index, slug=choice, name=choice.upper(), swatch=None, position=index)
            for index, choice in enumerate(choices)
        ),
    )


def declared(slug: str, kind: Kind, level: Level, *choices: str) -> TypeAttribute:
    return TypeAttribute(attribute=attribute(slug, kind, choices), level=level, position=0)


SHOE = ProductType(
    id=1,
    slug="shoe",
    name="Shoe",
    attributes=(
        declared("material", "text", "product"),
        declared("waterproof", "boolean", "product"),
        declared("heel_height", "number", "product"),
        declared("size", "choice", "variant", "40", "41", "42"),
        declared("wide_fit", "boolean", "variant"),
    ),
)


def errors_for(level: Level, values: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InvalidAttributeValues) as caught:
        validate_values(SHOE, level, values)
    return caught.value.errors


def test_valid_values_come_back_in_declaration_order_and_stripped() -> None:
    values = {"heel_height": 2.5, "material": " leather ", "waterproof": False}
    assert list(validate_values(SHOE, "product", values).items()) == [
        ("material", "leather"),
        ("waterproof", False),
        ("heel_height", 2.5),
    ]
    assert validate_values(SHOE, "variant", {"wide_fit": True, "size": "41"}) == {
        "size": "41",
        "wide_fit": True,
    }


def test_no_values_is_valid() -> None:
    assert validate_values(SHOE, "product", {}) == {}


def test_integers_are_numbers() -> None:
    assert validate_values(SHOE, "product", {"heel_height": 3}) == {"heel_height": 3}


def test_unknown_attribute() -> None:
    assert errors_for("product", {"colour": "red"}) == {"colour": "Shoe has no such attribute"}


def test_attribute_declared_at_the_other_level() -> None:
    assert errors_for("product", {"size": "41"}) == {
        "size": "set on the variant, not on the product"
    }
    assert errors_for("variant", {"material": "suede"}) == {
        "material": "set on the product, not on the variant"
    }


@pytest.mark.parametrize("value", [True, "3", None, [3], float("nan"), float("inf")])
def test_number_must_be_a_finite_int_or_float_not_bool(value: object) -> None:
    assert list(errors_for("product", {"heel_height": value})) == ["heel_height"]


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_boolean_must_be_a_bool(value: object) -> None:
    assert errors_for("product", {"waterproof": value}) == {"waterproof": "must be true or false"}


@pytest.mark.parametrize("value", [3, None, b"leather", ["leather"]])
def test_text_must_be_a_string(value: object) -> None:
    assert errors_for("product", {"material": value}) == {"material": "must be text"}


def test_text_is_at_most_200_characters() -> None:
    assert validate_values(SHOE, "product", {"material": "x" * 200})["material"] == "x" * 200
    assert errors_for("product", {"material": "x" * 201}) == {
        "material": "must be at most 200 characters"
    }


@pytest.mark.parametrize("value", ["43", 41, "", None])
def test_choice_must_be_one_of_the_slugs(value: object) -> None:
    assert errors_for("variant", {"size": value}) == {"size": "must be one of 40, 41, 42"}


def test_every_bad_key_is_named_at_once() -> None:
    errors = errors_for(
        "product",
        {"material": 1, "waterproof": "yes", "heel_height": True, "size": "41", "x": 1},
    )
    assert set(errors) == {"material", "waterproof", "heel_height", "size", "x"}


def test_error_message_lists_every_key() -> None:
    with pytest.raises(InvalidAttributeValues, match=r"material: must be text; x: Shoe has no"):
        validate_values(SHOE, "product", {"material": 1, "x": 1})


def test_unknown_level_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="level must be product or variant"):
        validate_values(SHOE, "both", {})  # type: ignore[arg-type]
