"""From a storefront filter form's query string to the API's listing parameters, and back to links.

The storefront's filters are a plain GET form, so the URL is what the shopper shares. Browsers
send that form differently from the API's convention: a checkbox per value repeats the
parameter (`attr.colour=red&attr.colour=blue`, the API wants `attr.colour=red,blue`), fields left
empty arrive as `name=`, and a price range is one radio (`price=1000-2500`, a facet bucket
[low, high)) where the API takes inclusive `price_min`/`price_max`. `listing_params` folds the
form into the API's shape so both share web.listing.parse_listing and one cache entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from multidict import MultiMapping

from domain.money import format_money

PRICE_RANGE = re.compile(r"^([0-9]{1,13})-([0-9]{0,13})$")
# The sort orders a shopper can pick, in menu order; relevance only means something with text.
SORT_LABELS = {
    "relevance": "Best match",
    "newest": "Newest",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "name": "Name",
}
# Parameter names as people read them in an error message.
PARAMETER_NAMES = {
    "q": "Search text",
    "category": "Category",
    "price": "Price",
    "price_min": "Lowest price",
    "price_max": "Highest price",
    "in_stock": "In stock",
    "sort": "Sort",
    "limit": "Page size",
    "cursor": "Page link",
}


class FormErrors(Exception):
    """Form fields that cannot be turned into listing parameters; `errors` as parse_listing's."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


def listing_params(query: MultiMapping[str], *, category: str | None = None) -> dict[str, str]:
    """The API-style parameters the filter form in `query` asks for; raises FormErrors.

    `category` (from the page's path) overrides any `category` field: /c/shoes always lists shoes.
    """
    params: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in dict.fromkeys(query.keys()):
        values = [value.strip() for value in query.getall(name) if value.strip()]
        if not values:
            continue  # an empty field means "no filter", as a browser sends it
        if name.startswith("attr."):
            params[name] = ",".join(dict.fromkeys(values))
        elif name == "price":
            bounds = PRICE_RANGE.match(values[-1])
            if bounds is None or (bounds[2] and int(bounds[2]) <= int(bounds[1])):
                errors["price"] = "choose one of the price ranges"
                continue
            params["price_min"] = bounds[1]
            if bounds[2]:
                params["price_max"] = str(int(bounds[2]) - 1)  # buckets exclude their top
        else:
            params[name] = values[-1]
    if category is not None:
        params["category"] = category
    if errors:
        raise FormErrors(errors)
    return params


def describe_errors(errors: Mapping[str, str]) -> list[str]:
    """Each bad parameter as a sentence for people, naming the filter rather than the field."""
    messages = []
    for name, message in errors.items():
        if name.startswith("attr."):
            label = f"Filter “{name.removeprefix('attr.')}”"
        else:
            label = PARAMETER_NAMES.get(name, f"“{name}”")
        if name == "sort":
            message = "choose one of the orders in the list"  # not the API's value names
        messages.append(f"{label}: {message}.")
    return messages


def url_with(path: str, query: Mapping[str, str], **changes: str | None) -> str:
    """`path` with the same (non-empty) query, each of `changes` replaced or, if None, removed.

    `cursor` is always dropped from `query` (a link made from a page starts at the first page);
    only `changes` can set one.
    """
    pairs = [
        (name, value)
        for name, value in query.items()
        if name not in changes and value.strip() and name != "cursor"
    ]
    pairs += [(name, value) for name, value in changes.items() if value is not None]
    return f"{path}?{urlencode(pairs)}" if pairs else path


@dataclass(frozen=True)
class PriceChoice:
    """One price range radio: its form value, text, count and whether it is the current one."""

    value: str
    label: str
    count: int
    selected: bool


def price_choices(
    ranges: Iterable[Mapping[str, Any]],
    params: Mapping[str, str],
    currency: str | None,
    locale: str,
) -> list[PriceChoice]:
    """The price_ranges facet as radios; empty ranges are left out unless selected."""
    choices = []
    for bucket in ranges:
        low, high = int(bucket["min"]), bucket["max"]
        selected = params.get("price_min") == str(low) and params.get("price_max") == (
            str(int(high) - 1) if high is not None else None
        )
        if bucket["count"] or selected:
            label = range_label(low, None if high is None else int(high), currency, locale)
            choices.append(PriceChoice(str(bucket["label"]), label, int(bucket["count"]), selected))
    return choices


def range_label(low: int, high: int | None, currency: str | None, locale: str) -> str:
    """A price range [low, high) as people read it: "Under €50.00", "€100.00 and up"."""

    def money(amount: int) -> str:
        if currency:
            return format_money(amount, currency, locale)
        units, cents = divmod(amount, 100)  # no currency to format with; still never a float
        return f"{units}.{cents:02d}"

    if high is None:
        return f"{money(low)} and up"
    if low == 0:
        return f"Under {money(high)}"
    return f"{money(low)} to {money(high)}"


def sort_choices(*, text: bool) -> list[tuple[str, str]]:
    """(value, label) of the sorts a shopper can choose; "Best match" only for a search text."""
    return [(value, label) for value, label in SORT_LABELS.items() if text or value != "relevance"]


def active_filters(params: Mapping[str, str]) -> bool:
    """Whether any filter narrows the list (the sort and the search text are no filters)."""
    return any(
        name.startswith("attr.") or name in ("price_min", "price_max", "in_stock")
        for name in params
    )
