"""Query parameters of catalog listings and search: parsed strictly, every error named.

    ?q=running+shoes&category=shoes&attr.colour=red,navy&attr.size=m&price_min=1000
    &price_max=5000&in_stock=true&sort=price_asc&limit=24&cursor=...

Unknown parameters, malformed cursors, negative prices and page sizes over the limit are refused
(400, problem+json listing each bad parameter) rather than silently ignored: a typo in a filter
should not quietly show everything.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from domain.identifiers import is_slug
from search.backend import MISSING_PRICE_ASC, MISSING_PRICE_DESC, SORTS, Sort
from web.fields import BIGINT_MAX, text_problem
from web.params import InvalidParameters, query_bool, query_int, timestamp

DEFAULT_LIMIT = 24
MAX_LIMIT = 100
MAX_PRICE = 10**12
ATTRIBUTE_PARAM = re.compile(r"^attr\.([a-z0-9]+(?:_[a-z0-9]+)*)$")
VALUE_PATTERN = re.compile(r"^[A-Za-z0-9._ -]{1,60}$")
KNOWN = frozenset(
    {"q", "category", "price_min", "price_max", "in_stock", "sort", "limit", "cursor"}
)
MAX_CURSOR_LENGTH = 1000
CURSOR_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
NOT_A_CURSOR = "not a cursor from this API"


LISTING_PARAMETERS: tuple[dict[str, Any], ...] = (
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200}},
    {
        "name": "category",
        "in": "query",
        "description": "a category slug; its descendants too",
        "schema": {"type": "string"},
    },
    {
        "name": "attr.{slug}",
        "in": "query",
        "description": "values of a filterable attribute, comma-separated (any of them matches)",
        "schema": {"type": "string"},
    },
    {
        "name": "price_min",
        "in": "query",
        "description": "minor units, inclusive",
        "schema": {"type": "integer", "minimum": 0},
    },
    {
        "name": "price_max",
        "in": "query",
        "description": "minor units, inclusive",
        "schema": {"type": "integer", "minimum": 0},
    },
    {"name": "in_stock", "in": "query", "schema": {"type": "boolean"}},
    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}},
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "description": "next_cursor of the previous page",
        "schema": {"type": "string"},
    },
)


@dataclass(frozen=True)
class Listing:
    """What a listing or search request asks for."""

    text: str = ""
    category: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    price_min: int | None = None
    price_max: int | None = None
    in_stock: bool | None = None
    sort: Sort = "newest"
    limit: int = DEFAULT_LIMIT
    after: tuple[Any, ...] | None = None


def parse_listing(query: Mapping[str, str], *, default_sort: Sort = "newest") -> Listing:
    """The listing `query` asks for; raises InvalidParameters naming every bad parameter."""
    errors: dict[str, str] = {}
    attributes: dict[str, tuple[str, ...]] = {}
    for name, raw in query.items():
        match = ATTRIBUTE_PARAM.fullmatch(name)
        if match:
            values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
            if not values or not all(VALUE_PATTERN.fullmatch(v) for v in values):
                errors[name] = "give one or more values separated by commas"
            else:
                attributes[match.group(1)] = values
        elif name not in KNOWN:
            errors[name] = "unknown parameter"
    text = query.get("q", "").strip()
    if problem := query_text_problem(text, 200):
        errors["q"] = problem
    category = query.get("category")
    if category is not None and not is_slug(category):
        errors["category"] = "not a category slug"
    price_min = query_int(query, "price_min", 0, MAX_PRICE, errors)
    price_max = query_int(query, "price_max", 0, MAX_PRICE, errors)
    if price_min is not None and price_max is not None and price_min > price_max:
        errors["price_max"] = "must not be below price_min"
    limit = query_int(query, "limit", 1, MAX_LIMIT, errors)
    in_stock = query_bool(query, "in_stock", errors)
    sort = query.get("sort", "relevance" if text else default_sort)
    if sort not in SORTS:
        errors["sort"] = f"one of {', '.join(SORTS)}"
    elif sort == "relevance" and not text:
        errors["sort"] = "relevance needs a search text (q)"
    after = None
    if "cursor" in query and "sort" not in errors:
        after = _decode_cursor(query["cursor"], sort, errors)
    if errors:
        raise InvalidParameters(errors)
    return Listing(
        text=text,
        category=category,
        attributes=attributes,
        price_min=price_min,
        price_max=price_max,
        in_stock=in_stock,
        sort=cast(Sort, sort),
        limit=limit or DEFAULT_LIMIT,
        after=after,
    )


def query_text_problem(text: str, max_length: int) -> str | None:
    """What is wrong with free text from a query string, or None (a NUL cannot reach
    PostgreSQL, and control characters are no one's search)."""
    if len(text) > max_length:
        return f"at most {max_length} characters"
    return text_problem(text)


def encode_cursor(sort: str, after: tuple[Any, ...]) -> str:
    """An opaque cursor for the page after `after` in `sort` order."""
    raw = orjson.dumps([sort, list(after)], default=str)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(value: str, sort: str, errors: dict[str, str]) -> tuple[Any, ...] | None:
    """The position a cursor of encode_cursor holds: (sort, key, id), each part checked for
    its type and range (a forged cursor must fail here, not in SQL)."""
    if len(value) > MAX_CURSOR_LENGTH or CURSOR_ALPHABET.fullmatch(value) is None:
        errors["cursor"] = NOT_A_CURSOR
        return None
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):
        errors["cursor"] = NOT_A_CURSOR
        return None
    if not isinstance(decoded, list) or len(decoded) != 2 or not isinstance(decoded[1], list):
        errors["cursor"] = NOT_A_CURSOR
        return None
    if decoded[0] != sort:
        errors["cursor"] = "belongs to another sort order; start again without it"
        return None
    after = decoded[1]
    if len(after) != 3 or after[0] != sort or not _is_id(after[2]):
        errors["cursor"] = NOT_A_CURSOR
        return None
    key = _cursor_key(sort, after[1])
    if key is None:
        errors["cursor"] = NOT_A_CURSOR
        return None
    return (sort, key, after[2])


def _cursor_key(sort: str, key: object) -> object | None:
    """The sort key as the backends wrote it, or None when it cannot be one."""
    if isinstance(key, bool):
        return None
    if sort in ("price_asc", "price_desc"):
        fits = isinstance(key, int) and MISSING_PRICE_DESC <= key <= MISSING_PRICE_ASC
        return key if fits else None
    if sort == "newest" and isinstance(key, str):
        try:
            return timestamp(key).isoformat()
        except ValueError:
            return None
    if sort == "name" and isinstance(key, str):
        return key if len(key) <= 1000 and text_problem(key) is None else None
    if sort == "relevance":
        if isinstance(key, int | float) and math.isfinite(key):
            return key
        # Elasticsearch's score (the backend checks the rest)
        if isinstance(key, str) and len(key) <= 40 and key.isascii() and key.isprintable():
            return key
    return None


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= BIGINT_MAX
