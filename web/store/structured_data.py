"""schema.org JSON-LD for the storefront's pages: a Product with its offers, and BreadcrumbLists.

Built from the same catalog JSON the pages render (web.catalog). Prices are decimal strings in
major units ("12.50"), as schema.org and Google's rich results expect; availability and condition
are schema.org enumeration members. tests/integration/web/store/test_structured_data.py checks
every type, property and enumeration value against the schema.org vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.money import Money

CONTEXT = "https://schema.org"
IN_STOCK = "https://schema.org/InStock"
OUT_OF_STOCK = "https://schema.org/OutOfStock"
NEW_CONDITION = "https://schema.org/NewCondition"
BRAND_ATTRIBUTE = "brand"  # a product attribute of this slug names the brand


def product_data(origin: str, product: dict[str, Any]) -> dict[str, Any]:
    """The Product of a product page (catalog JSON `product_detail`), its URLs under `origin`."""
    url = f"{origin}/products/{product['slug']}"
    data: dict[str, Any] = {"@context": CONTEXT, "@type": "Product", "name": product["name"]}
    if product["description"]:
        data["description"] = product["description"]
    variants = product["variants"]
    if len(variants) == 1:
        data["sku"] = variants[0]["sku"]
    images = [origin + largest(image) for image in product["images"]]
    if images:
        data["image"] = images
    brand = product["attributes"].get(BRAND_ATTRIBUTE)
    if isinstance(brand, str) and brand.strip():
        data["brand"] = {"@type": "Brand", "name": brand.strip()}
    data["url"] = url
    priced = _priced(variants)
    offers = [_offer(url, variant) for variant in priced]
    if len(offers) == 1:
        data["offers"] = offers[0]
    elif offers:
        data["offers"] = _aggregate(priced, offers)
    return data


def breadcrumbs_data(origin: str, crumbs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A BreadcrumbList of (name, path) pairs, the shop's home first."""
    return {
        "@context": CONTEXT,
        "@type": "BreadcrumbList",
        "itemListElement": [
            {"@type": "ListItem", "position": position, "name": name, "item": origin + path}
            for position, (name, path) in enumerate([("Home", "/"), *crumbs], start=1)
        ],
    }


def category_crumbs(category: dict[str, Any]) -> list[tuple[str, str]]:
    """A category page's trail: its ancestors and itself (catalog JSON `category_page`)."""
    return [(crumb["name"], f"/c/{crumb['slug']}") for crumb in category["breadcrumbs"]]


def product_crumbs(product: dict[str, Any]) -> list[tuple[str, str]]:
    """A product page's trail: its category's, then the product."""
    categories = [(crumb["name"], f"/c/{crumb['slug']}") for crumb in product["breadcrumbs"]]
    return [*categories, (product["name"], f"/products/{product['slug']}")]


def largest(image: dict[str, Any]) -> str:
    """The path of an image (catalog JSON) at its largest rendition; the original while it has
    none."""
    renditions = image["renditions"]
    return str(renditions[max(renditions, key=int)]) if renditions else str(image["url"])


def _priced(variants: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The variants with a price in the currency of the first priced one."""
    priced = [v for v in variants if v["price"] is not None]
    currency = priced[0]["price"]["currency"] if priced else None
    return [v for v in priced if v["price"]["currency"] == currency]


def _offer(url: str, variant: dict[str, Any]) -> dict[str, Any]:
    price = variant["price"]
    return {
        "@type": "Offer",
        "sku": variant["sku"],
        "price": Money(price["amount"], price["currency"]).decimal_text(),
        "priceCurrency": price["currency"],
        "availability": IN_STOCK if variant["in_stock"] else OUT_OF_STOCK,
        "itemCondition": NEW_CONDITION,
        "url": url,
    }


def _aggregate(priced: list[dict[str, Any]], offers: list[dict[str, Any]]) -> dict[str, Any]:
    """Several variants' offers: their price range and whether any is in stock."""
    currency = priced[0]["price"]["currency"]
    amounts = sorted(v["price"]["amount"] for v in priced)
    return {
        "@type": "AggregateOffer",
        "lowPrice": Money(amounts[0], currency).decimal_text(),
        "highPrice": Money(amounts[-1], currency).decimal_text(),
        "priceCurrency": currency,
        "offerCount": len(offers),
        "availability": IN_STOCK if any(v["in_stock"] for v in priced) else OUT_OF_STOCK,
        "itemCondition": NEW_CONDITION,
        "offers": offers,
    }
