"""The product page's variant picker: which option values can be chosen, and the chosen variant.

Choices cascade in the order of the product's options (colour, then size, ...): a value is
disabled when no variant has it together with the values chosen on the axes before it ("not
available in Red") or when every such variant is sold out. Only earlier axes constrain later
ones, so every enabled value can always be reached: changing the colour never leaves the shopper
stuck behind a size that blocks it; a later choice that no longer fits is simply dropped.
web/static/js/picker.js applies the same rule in the browser, from `Picker.data`.

A product whose variants have no option attributes but several SKUs gets one axis, "sku".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SKU_AXIS = "sku"


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    swatch: str | None
    checked: bool
    disabled: bool
    reason: str  # why it is disabled, for people; "" when it is not


@dataclass(frozen=True)
class Axis:
    slug: str  # also the query parameter: ?colour=red&size=m
    name: str
    choices: list[Choice]


@dataclass(frozen=True)
class Picker:
    axes: list[Axis]
    variant: Mapping[str, Any] | None  # the chosen variant, once every axis has a value
    missing: list[str]  # names of the axes still to choose
    data: dict[str, Any]  # what picker.js needs, as JSON


def _key(variant: Mapping[str, Any], axes: Sequence[str]) -> dict[str, str]:
    if axes == [SKU_AXIS]:
        return {SKU_AXIS: str(variant["sku"])}
    values = variant["attributes"]
    return {axis: str(values[axis]) for axis in axes if axis in values}


Value = tuple[str, str, str | None]  # an option value: (value, label, swatch)


def build_picker(detail: Mapping[str, Any], query: Mapping[str, str]) -> Picker:
    """The picker for a product_detail JSON and the choice in `query` (?sku=... or per axis).

    Values that do not exist or cannot be chosen are ignored, never an error: an old link to a
    sold-out variant still opens the product.
    """
    variants: list[Mapping[str, Any]] = detail["variants"]
    axes, values = _axes(variants, detail["options"])
    keys = [_key(variant, axes) for variant in variants]
    labels = {axis: {value: label for value, label, _ in values[axis]} for axis in axes}
    requested = _requested(query, axes, keys, variants)
    names: Mapping[str, str] = detail["attribute_names"]
    chosen: dict[str, str] = {}
    built: list[Axis] = []
    for axis in axes:
        # Only the values chosen on earlier axes constrain this one.
        pool = [
            (key, variant)
            for key, variant in zip(keys, variants, strict=True)
            if all(key.get(a) == v for a, v in chosen.items())
        ]
        before = ", ".join(labels[a][v] for a, v in chosen.items())
        only = len(variants) == 1
        choices = [
            _choice(axis, value, pool, before, requested, only=only) for value in values[axis]
        ]
        if any(c.checked for c in choices):
            chosen[axis] = requested[axis]
        built.append(Axis(axis, names.get(axis, "Option"), choices))
    variant = _chosen_variant(variants, keys, chosen, axes)
    missing = [axis.name.lower() for axis in built if axis.slug not in chosen]
    return Picker(built, variant, missing, _picker_data(axes, built, labels, keys, variants))


def _axes(
    variants: Sequence[Mapping[str, Any]], options: Mapping[str, list[Mapping[str, Any]]]
) -> tuple[list[str], dict[str, list[Value]]]:
    """The axes in the order people choose them, and each axis's values."""
    # Colour-like axes (with swatches) first: people pick a colour, then a size.
    axes = sorted(options, key=lambda axis: not any(o["swatch"] for o in options[axis]))
    values = {
        axis: [(str(o["value"]), str(o["label"]), o["swatch"]) for o in options[axis]]
        for axis in axes
    }
    if not axes and len(variants) > 1:
        return [SKU_AXIS], {SKU_AXIS: [(v["sku"], v["name"] or v["sku"], None) for v in variants]}
    return axes, values


def _requested(
    query: Mapping[str, str],
    axes: Sequence[str],
    keys: Sequence[dict[str, str]],
    variants: Sequence[Mapping[str, Any]],
) -> dict[str, str]:
    """The values the query asks for: per axis, or all of one variant's by ?sku=."""
    if len(variants) == 1:
        return keys[0]
    by_sku = [key for key, v in zip(keys, variants, strict=True) if v["sku"] == query.get("sku")]
    if by_sku:
        return by_sku[0]
    return {axis: query[axis] for axis in axes if axis in query}


def _choice(
    axis: str,
    value: Value,
    pool: Sequence[tuple[dict[str, str], Mapping[str, Any]]],
    before: str,
    requested: Mapping[str, str],
    *,
    only: bool,
) -> Choice:
    """One value of `axis` among the variants still possible (`pool`)."""
    code, label, swatch = value
    matching = [variant for key, variant in pool if key.get(axis) == code]
    reason = ""
    if not matching:
        reason = f"Not available in {before}" if before else "Not available"
    elif not any(variant["in_stock"] for variant in matching):
        reason = "Out of stock"
    # The only variant stays chosen even when sold out: the page says so.
    checked = requested.get(axis) == code and (not reason or only)
    return Choice(code, label, swatch, checked, bool(reason), reason)


def _chosen_variant(
    variants: Sequence[Mapping[str, Any]],
    keys: Sequence[dict[str, str]],
    chosen: Mapping[str, str],
    axes: Sequence[str],
) -> Mapping[str, Any] | None:
    """The variant every axis's value names (one in stock first), once every axis has one."""
    if len(variants) == 1:
        return variants[0]
    if len(chosen) != len(axes):
        return None
    pairs = list(zip(keys, variants, strict=True))
    found = [v for key, v in pairs if key == chosen and v["in_stock"]] or [
        v for key, v in pairs if key == chosen
    ]
    return found[0] if found else None


def _picker_data(
    axes: Sequence[str],
    built: Sequence[Axis],
    labels: Mapping[str, Mapping[str, str]],
    keys: Sequence[dict[str, str]],
    variants: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """What picker.js needs to apply the same rule in the browser."""
    return {
        "axes": list(axes),
        "names": {axis.slug: axis.name.lower() for axis in built},
        "labels": labels,
        "variants": [
            {
                "sku": v["sku"],
                "key": key,
                "price": v["price"]["formatted"] if v["price"] else None,
                "stock": v["stock"],
                "in_stock": v["in_stock"],
            }
            for key, v in zip(keys, variants, strict=True)
        ],
    }


def stock_text(stock: int) -> str:
    """What the page says about a variant's stock."""
    return f"{stock} in stock" if stock > 0 else "Out of stock"
