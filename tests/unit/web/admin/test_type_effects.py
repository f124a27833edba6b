"""The effects of a change to a product type or an attribute, said for people: counts in words,
one and many, and what happens when nothing uses the thing changed."""

from __future__ import annotations

from storage.attributes import Attribute, Choice, ProductType, TypeAttribute
from storage.type_changes import Effect
from web.admin import type_effects

SIZE = Attribute(1, "size", "Size", "choice", "", True, (Choice(1, "s", "S", None, 0),))
TEES = ProductType(1, "t-shirts", "T-shirts", (TypeAttribute(SIZE, "variant", 0),))


def test_counts_are_words_with_thousands_and_plurals() -> None:
    assert type_effects.count(1, "product") == "1 product"
    assert type_effects.count(1200, "variant") == "1,200 variants"


def test_removing_a_variant_attribute_counts_products_and_their_variants() -> None:
    said = type_effects.undeclare(TEES, SIZE, "variant", Effect(products=48, variants=96))
    assert said == (
        "Removing 'Size' from T-shirts removes the size value from 48 products' 96 variants;"
        " they stay published."
    )
    one = type_effects.undeclare(TEES, SIZE, "variant", Effect(products=1, variants=2))
    assert "from 1 product's 2 variants;" in one
    none = type_effects.undeclare(TEES, SIZE, "variant", Effect(products=0))
    assert none == (
        "Removing 'Size' from T-shirts changes no product: none of its products has the size value."
    )


def test_renaming_an_attribute_names_its_types() -> None:
    effect = Effect(products=312, types=("Hoodies", "Mugs", "T-shirts"))
    assert type_effects.rename_attribute(SIZE, "Fit", effect) == (
        "Renaming 'Size' to 'Fit' changes the label on 312 products in 3 types"
        " (Hoodies, Mugs, T-shirts)."
    )
    many = Effect(products=9, types=tuple(f"T{n}" for n in range(7)))
    assert "7 types (T0, T1, T2, T3, T4 and 2 more)" in type_effects.rename_attribute(
        SIZE, "Fit", many
    )
    assert "no product type uses it yet" in type_effects.rename_attribute(SIZE, "Fit", Effect(0))


def test_adding_an_attribute_says_products_have_no_value_yet() -> None:
    said = type_effects.declare(TEES, "Material", "product", Effect(products=312), new=False)
    assert said == (
        "Adding 'Material' to T-shirts, on the product: 312 products have no material yet;"
        " they stay published and the field shows empty until edited."
    )
    new = type_effects.declare(TEES, "Fit", "variant", Effect(products=0), new=True)
    assert new == (
        "Creating 'Fit' and adding it to T-shirts, on each variant: T-shirts has no products"
        " yet; new ones show the field."
    )
