"""The catalog's JSON shapes, shared by the API and the storefront pages rendered from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.attributes import value_text
from domain.money import format_money
from search.backend import PRICE_BUCKETS, Facets, FacetValue, SearchHit, price_bucket_label
from storage.attributes import Attribute
from storage.catalog_reads import Thumbnail
from storage.categories import Category, CategoryNode
from storage.products import Image, Product, Variant


def money_json(amount: int | None, currency: str | None, locale: str) -> dict[str, Any] | None:
    """A price as the API shows it: minor units, currency, and text for people in the shop's
    `locale` (domain.money.format_money)."""
    if amount is None or currency is None:
        return None
    return {
        "amount": amount,
        "currency": currency,
        "formatted": format_money(amount, currency, locale),
    }


def image_json(image: Image | Thumbnail) -> dict[str, Any]:
    """An image: the original's URL and size (for width/height attributes), and renditions."""
    renditions = {
        int(width): f"/media/{path}"
        for width, path in sorted(image.renditions.items(), key=lambda item: int(item[0]))
    }
    return {
        "url": f"/media/{image.path}",
        "width": image.width,
        "height": image.height,
        "alt": image.alt,
        "renditions": {str(width): url for width, url in renditions.items()},
        "srcset": ", ".join(f"{url} {width}w" for width, url in renditions.items()),
    }


def thumbnail_json(image: Thumbnail, fallback_alt: str) -> dict[str, Any]:
    """A small picture beside a cart or order line: the image's smallest file and its size (for
    width/height attributes), and alt text (the image's own, else `fallback_alt`)."""
    path, width, height = image.smallest
    return {
        "url": f"/media/{path}",
        "width": width,
        "height": height,
        "alt": image.alt or fallback_alt,
    }


def product_json(product: Product, locale: str) -> dict[str, Any]:
    """A product as lists and its detail show it."""
    return {
        "id": product.id,
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "price": money_json(product.price_min, product.currency, locale),
        "price_max": money_json(product.price_max, product.currency, locale),
        "in_stock": product.in_stock,
        "created_at": product.created_at.isoformat(),
        "indexed_at": product.indexed_at.isoformat() if product.indexed_at else None,
    }


def hit_json(hit: SearchHit, image: Thumbnail | None, locale: str) -> dict[str, Any]:
    """A product in a list or search result (a page makes 24 of these per request: kept lean).

    Where the product has one price, `price` and `price_max` are one dict, written twice.
    """
    product_id, slug, name, price_min, price_max, currency, in_stock = hit[:7]
    price = money_json(price_min, currency, locale)
    return {
        "id": product_id,
        "slug": slug,
        "name": name,
        "url": "/products/" + slug,
        "price": price,
        "price_max": price if price_max == price_min else money_json(price_max, currency, locale),
        "in_stock": in_stock,
        "image": image_json(image) if image is not None else None,
    }


def variant_json(variant: Variant, locale: str) -> dict[str, Any]:
    """A variant: what can be bought, at what price, and whether it can be had now."""
    return {
        "sku": variant.sku,
        "name": variant.name,
        "price": money_json(variant.price_amount, variant.currency, locale),
        "attributes": variant.attributes,
        "in_stock": variant.stock_on_hand > 0,
        "stock": variant.stock_on_hand,
    }


def options_json(
    variants: Sequence[Variant], attributes: Mapping[str, Attribute]
) -> dict[str, list[dict[str, Any]]]:
    """For a variant picker: each variant attribute's values in first-seen order, with the
    value's label (a choice's name, Yes/No) and swatch, and whether any variant with that value is
    in stock."""
    options: dict[str, dict[str, bool]] = {}
    raw: dict[tuple[str, str], Any] = {}  # the value as stored, for its label
    for variant in variants:
        for name, value in variant.attributes.items():
            seen = options.setdefault(name, {})
            key = str(value)
            seen[key] = seen.get(key, False) or variant.stock_on_hand > 0
            raw.setdefault((name, key), value)
    result: dict[str, list[dict[str, Any]]] = {}
    for name, values in options.items():
        attribute = attributes.get(name)
        choices = {c.slug: c for c in attribute.choices} if attribute is not None else {}
        result[name] = [
            {
                "value": value,
                "label": attribute.text(raw[name, value]) if attribute is not None else value,
                "swatch": choices[value].swatch if value in choices else None,
                "in_stock": stocked,
            }
            for value, stocked in values.items()
        ]
    return result


def attribute_label_json(attribute: Attribute) -> dict[str, Any]:
    """What an attribute's values read as: its name, kind, unit and choices' names by slug."""
    return {
        "name": attribute.name,
        "kind": attribute.kind,
        "unit": attribute.unit,
        "choices": {choice.slug: choice.name for choice in attribute.choices},
    }


def attribute_text(labels: Mapping[str, Any], slug: str, value: Any) -> str:
    """`value` of the attribute `slug` for people, by `labels` (attribute_label_json by slug)."""
    label = labels.get(slug)
    if label is None:
        return value_text(value, kind="text")
    return value_text(value, kind=label["kind"], unit=label["unit"], choices=label["choices"])


def node_json(node: CategoryNode) -> dict[str, Any]:
    """A category and its subtree."""
    return {
        "id": node.id,
        "slug": node.slug,
        "name": node.name,
        "children": [node_json(child) for child in node.children],
    }


def category_json(category: Category) -> dict[str, Any]:
    return {"id": category.id, "slug": category.slug, "name": category.name}


def facets_json(
    facets: Facets,
    categories: Mapping[int, Mapping[str, Any]],
    attributes: Sequence[Attribute],
    selected: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """Facet counts with what people read: category names, attribute names, choice labels and
    swatches, price bounds; `selected` marks the values the query filters by. A selected value
    that nothing matches any more is still listed (count 0), so it can be named and unselected."""
    by_slug = {attribute.slug: attribute for attribute in attributes}
    attribute_facets = []
    counted = {slug: list(values) for slug, values in facets.attributes.items()}
    for slug in selected:
        counted.setdefault(slug, [])
    for slug, values in counted.items():
        attribute = by_slug.get(slug)
        if attribute is None:
            continue
        choices = {choice.slug: choice for choice in attribute.choices}
        chosen = selected.get(slug, ())
        seen = {str(facet.value) for facet in values}
        entries = []
        for facet in [*values, *(FacetValue(v, 0) for v in chosen if v not in seen)]:
            value = str(facet.value)
            choice = choices.get(value)
            entries.append(
                {
                    "value": value,
                    "label": choice.name if choice else attribute.text(facet.value),
                    "swatch": choice.swatch if choice else None,
                    "count": facet.count,
                    "selected": value in chosen,
                }
            )
        attribute_facets.append({"slug": slug, "name": attribute.name, "values": entries})
    bounds = {price_bucket_label(low, high): (low, high) for low, high in PRICE_BUCKETS}
    return {
        "categories": [
            {**categories[int(value.value)], "id": int(value.value), "count": value.count}
            for value in facets.categories
            if int(value.value) in categories
        ],
        "attributes": attribute_facets,
        "price_ranges": [
            {
                "label": str(value.value),
                "min": bounds[str(value.value)][0],
                "max": bounds[str(value.value)][1],
                "count": value.count,
            }
            for value in facets.price_ranges
        ],
    }
