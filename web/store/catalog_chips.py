"""The filters a listing is narrowed by, as removable chips above the results.

Each chip is a plain link to the same listing without that one filter (the sort, the search text
and the other filters stay), so chips work without JavaScript and each state has a URL. Chips
are named as people read the filters: the attribute's and the choice's display names from the
facets, the price range's label, "In stock only". A value the facets do not know (nothing
matches it any more) is shown as it is in the URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from multidict import MultiDict, MultiMapping

from web.store.catalog_query import PriceChoice, range_label, url_with

PRICE_FIELDS = ("price", "price_min", "price_max")


@dataclass(frozen=True)
class Chip:
    """One active filter: what it filters (`group`, e.g. "Colour"), its value ("Red"), and the
    URL of the listing without it."""

    group: str
    value: str
    url: str


def filter_chips(
    path: str,
    query: MultiMapping[str],
    params: Mapping[str, str],
    facets: Mapping[str, Any],
    prices: Iterable[PriceChoice],
    currency: str | None,
    locale: str,
    *,
    category_chip: bool,
) -> list[Chip]:
    """The chips of the filters in `params` (listing_params of `query`), in the URL's order.

    `category_chip`: whether a `category` parameter is a filter (search) rather than the page
    itself (/c/slug).
    """
    chips: list[Chip] = []
    price_done = False
    for name, value in params.items():
        if name.startswith("attr."):
            chips += _attribute_chips(path, query, name, value, facets)
        elif name in ("price_min", "price_max") and not price_done:
            price_done = True
            label = next((p.label for p in prices if p.selected), None) or _price_label(
                params, currency, locale
            )
            chips.append(Chip("Price", label, _without(path, query, PRICE_FIELDS)))
        elif name == "in_stock" and value == "true":
            chips.append(Chip("Availability", "In stock only", _without(path, query, (name,))))
        elif name == "category" and category_chip:
            names = {c["slug"]: c["name"] for c in facets.get("categories", [])}
            chips.append(Chip("Category", names.get(value, value), _without(path, query, (name,))))
    return chips


def _attribute_chips(
    path: str, query: MultiMapping[str], name: str, value: str, facets: Mapping[str, Any]
) -> list[Chip]:
    slug = name.removeprefix("attr.")
    attribute = next((a for a in facets.get("attributes", []) if a["slug"] == slug), None)
    group = attribute["name"] if attribute else slug
    labels = {v["value"]: v["label"] for v in attribute["values"]} if attribute else {}
    chosen = dict.fromkeys(part.strip() for part in value.split(",") if part.strip())
    return [
        Chip(group, labels.get(choice, choice), _without_value(path, query, name, choice))
        for choice in chosen
    ]


def _price_label(params: Mapping[str, str], currency: str | None, locale: str) -> str:
    low = int(params.get("price_min", "0"))
    high = params.get("price_max")
    return range_label(low, int(high) + 1 if high is not None else None, currency, locale)


def _without(path: str, query: MultiMapping[str], names: Iterable[str]) -> str:
    """The listing's URL without the parameters `names` (and without a page cursor)."""
    dropped = set(names)
    return url_with(path, MultiDict((k, v) for k, v in query.items() if k not in dropped))


def _without_value(path: str, query: MultiMapping[str], name: str, value: str) -> str:
    """The listing's URL with `value` taken out of parameter `name`, whether the form repeated
    the parameter (attr.colour=red&attr.colour=blue) or the API's commas joined them."""
    kept: MultiDict[str] = MultiDict()
    for key, given in query.items():
        if key == name:
            parts = [part for part in given.split(",") if part.strip() and part.strip() != value]
            given = ",".join(parts)
        kept.add(key, given)
    return url_with(path, kept)
