"""What a change to a product type or an attribute will do, said in plain words with counts.

The confirmation page shows these sentences before anything is written; the counts come from
storage.type_changes' `effect_of_*` reads, and the apply checks again under its locks.
"""

from __future__ import annotations

from storage.attributes import Attribute, Level, ProductType
from storage.type_changes import Effect

LEVEL_WORDS = {"product": "on the product", "variant": "on each variant"}


def count(number: int, noun: str, plural: str | None = None) -> str:
    """ "1 product", "3 products", "1,200 products"."""
    return f"{number:,} {noun if number == 1 else (plural or noun + 's')}"


def _types(names: tuple[str, ...]) -> str:
    if not names:
        return "no product type"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{count(len(names), 'type')} ({shown})"


def rename_type(product_type: ProductType, name: str, effect: Effect) -> str:
    """Renaming a product type."""
    start = f"Renaming the type '{product_type.name}' to '{name}'"
    if not effect.products:
        return f"{start} changes no product: none has this type yet."
    return (
        f"{start} changes the type shown on {count(effect.products, 'product')} in the staff pages."
    )


def declare(
    product_type: ProductType, attribute_name: str, level: Level, effect: Effect, *, new: bool
) -> str:
    """Adding an attribute (an existing one, or a new one created with it) to a type."""
    start = (
        f"{'Creating' if new else 'Adding'} '{attribute_name}' "
        f"{'and adding it ' if new else ''}to {product_type.name}, {LEVEL_WORDS[level]}"
    )
    if not effect.products:
        return f"{start}: {product_type.name} has no products yet; new ones show the field."
    return (
        f"{start}: {count(effect.products, 'product')} {'has' if effect.products == 1 else 'have'}"
        f" no {attribute_name.lower()} yet; they stay published and the field shows empty until"
        " edited."
    )


def undeclare(product_type: ProductType, attribute: Attribute, level: Level, effect: Effect) -> str:
    """Removing an attribute from a type (its values go)."""
    start = f"Removing '{attribute.name}' from {product_type.name}"
    value = f"the {attribute.name.lower()} value"
    if not effect.products:
        return f"{start} changes no product: none of its products has {value}."
    if level == "variant" or effect.variants:
        apostrophe = "'s" if effect.products == 1 else "'"
        owners = (
            f"{count(effect.products, 'product')}{apostrophe} {count(effect.variants, 'variant')}"
        )
    else:
        owners = count(effect.products, "product")
    return f"{start} removes {value} from {owners}; they stay published."


def rename_attribute(attribute: Attribute, name: str, effect: Effect) -> str:
    """Renaming an attribute."""
    start = f"Renaming '{attribute.name}' to '{name}'"
    if not effect.types:
        return f"{start} changes no product: no product type uses it yet."
    return (
        f"{start} changes the label on {count(effect.products, 'product')}"
        f" in {_types(effect.types)}."
    )


def add_choices(attribute: Attribute, names: list[str], effect: Effect) -> str:
    """Adding choices to a choice attribute."""
    listed = ", ".join(f"'{name}'" for name in names)
    start = f"Adding {count(len(names), 'choice')} to '{attribute.name}' ({listed})"
    return (
        f"{start} changes no product; products of {_types(effect.types)} can choose"
        f" {'it' if len(names) == 1 else 'them'} when edited."
    )


def rename_choice(attribute: Attribute, old: str, name: str, effect: Effect) -> str:
    """Renaming one choice."""
    start = f"Renaming the {attribute.name.lower()} '{old}' to '{name}'"
    if not effect.products:
        return f"{start} changes no product: none uses it yet."
    return (
        f"{start} changes what {count(effect.products, 'product')} and"
        f" {count(effect.variants, 'variant')} show."
    )


def remove_choice(attribute: Attribute, name: str) -> str:
    """Removing a choice no product uses (a used one is refused before this page)."""
    return (
        f"Removing the {attribute.name.lower()} '{name}' changes no product: none uses it."
        " Staff can no longer choose it."
    )


def in_use(name: str, effect: Effect) -> str:
    """Why a choice cannot be removed."""
    return (
        f"'{name}' is used by {count(effect.products, 'product')} and"
        f" {count(effect.variants, 'variant')}: give them another value first, then remove it."
    )
