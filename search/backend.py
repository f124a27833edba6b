"""What every search backend takes and returns, and the protocol they implement.

SearchError
└── InvalidCursor   `SearchQuery.after` does not fit the query's sort (a forged or stale cursor)
storage.errors.CategoryNotFound   `SearchQuery.category` names no category

Backends: search.postgres.PostgresSearch (the default), search.elastic.ElasticsearchSearch behind
search.fallback.FallbackSearch (chosen by search.factory.open_search). Money is in
minor units; `price_min`/`price_max` filters bound products.price_min, both inclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

import asyncpg

from search.text import sku_of, uses_operators
from storage.catalog_reads import Thumbnail
from storage.database import Executor

Sort = Literal["relevance", "price_asc", "price_desc", "newest", "name"]
SORTS: tuple[Sort, ...] = ("relevance", "price_asc", "price_desc", "newest", "name")

# Facet buckets over products.price_min in minor units: [low, high), the last one open.
PRICE_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 1000),
    (1000, 2500),
    (2500, 5000),
    (5000, 10000),
    (10000, None),
)


def price_bucket_label(low: int, high: int | None) -> str:
    """'1000-2500' for [1000, 2500), '10000-' for the open last bucket."""
    return f"{low}-{'' if high is None else high}"


# Rules every backend follows, so both answer the same query alike.
SKU_PREFIX_MIN = 3  # shorter prefixes match too many SKUs to mean one
DID_YOU_MEAN_BELOW = 3  # offer the correction when the text as typed finds fewer products
SUGGEST_MIN = 2  # shorter prefixes get no suggestions
FACET_VALUES_MAX = 50  # values per attribute facet, most products first
# The sort keys of a product without a price (no variants yet): last both ways. Cursors carry
# them, so a price cursor of one backend works on the other.
MISSING_PRICE_ASC = 9223372036854775807
MISSING_PRICE_DESC = -1


def sku_lookup(text: str) -> str | None:
    """The text as a SKU to look up (upper-cased), or None.

    Only text with a digit or one of "._-" is looked up: a plain word is far more often a word
    than a SKU, and the text search finds a product named so anyway.
    """
    sku = sku_of(text)
    return None if sku is None or sku.isalpha() else sku


def suggest_prefix(prefix: str) -> str | None:
    """The prefix to autocomplete, stripped; None when it gets no suggestions (shorter than
    SUGGEST_MIN, or websearch syntax)."""
    prefix = prefix.strip()
    return None if len(prefix) < SUGGEST_MIN or uses_operators(prefix) else prefix


class SearchError(Exception):
    """Base of the errors search backends raise on purpose."""


class InvalidCursor(SearchError):
    """`after` was not made by this backend for this sort."""

    def __init__(self, sort: str) -> None:
        super().__init__(f"the cursor does not belong to a search sorted by {sort}")
        self.sort = sort


def check_after(sort: Sort, after: tuple[object, ...] | None) -> tuple[Any, Any]:
    """The keyset values of `after` for this sort ((None, None) for the first page).

    Raises InvalidCursor unless `after` is (sort, key, id) with the key type of that sort. A
    relevance key is PostgreSQL's number: Elasticsearch checks its own relevance keys.
    """
    if after is None:
        return None, None
    if len(after) != 3 or after[0] != sort:
        raise InvalidCursor(sort)
    _, key, last_id = after
    if not isinstance(last_id, int) or isinstance(last_id, bool) or isinstance(key, bool):
        raise InvalidCursor(sort)
    if sort == "relevance" and isinstance(key, int | float) and math.isfinite(key):
        return float(key), last_id
    if sort in ("price_asc", "price_desc") and isinstance(key, int):
        return key, last_id
    if sort == "name" and isinstance(key, str):
        return key, last_id
    if sort == "newest" and isinstance(key, str):
        try:
            datetime.fromisoformat(key)
        except ValueError:
            raise InvalidCursor(sort) from None
        return key, last_id
    raise InvalidCursor(sort)


@dataclass(frozen=True)
class SearchQuery:
    """One search. `after` is `SearchResult.next_after` of the previous page, else None."""

    text: str = ""
    # A category by slug, with its descendants: the backend expands it (PostgreSQL in the same
    # statement). Or any set of categories by id, already expanded; not both.
    category: str | None = None
    category_ids: tuple[int, ...] | None = None
    # attribute slug -> accepted values; a product matches an attribute when it or any of its
    # variants has one of the values; several attributes must all match.
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    price_min: int | None = None
    price_max: int | None = None
    in_stock: bool | None = None
    sort: Sort = "relevance"
    limit: int = 24
    after: tuple[object, ...] | None = None
    # Read-your-writes: a commit position (LSN) the answer must include; None: any recent data.
    # Not part of what is asked: caches leave it out of their keys.
    fresh_for: int | None = None
    # False: hits only (a product list), without facets, total or did-you-mean: much cheaper
    # without text, where only the page itself is read.
    facets: bool = True

    def __post_init__(self) -> None:
        if self.category is not None and self.category_ids is not None:
            raise ValueError("a query takes a category slug or category ids, not both")


class SearchHit(NamedTuple):
    """One product of a result. A named tuple, not a dataclass: a page builds 25 of them per
    request, and a tuple is several times cheaper to make than a frozen dataclass."""

    product_id: int
    slug: str
    name: str
    price_min: int | None  # None: no variants yet
    price_max: int | None
    currency: str | None
    in_stock: bool
    score: float  # 0.0 when the query has no text
    image: Thumbnail | None = None  # the first image, when the result says it has `images`


@dataclass(frozen=True)
class FacetValue:
    value: int | str  # a category id for category facets, else the attribute value or bucket
    count: int


@dataclass(frozen=True)
class Facets:
    """Counts of matching products; each dimension ignores its own filter ("disjunctive").

    Exception: without text, PostgreSQL counts categories only inside `category_ids` (the
    drill-down), so a category page does not count the whole catalog.
    """

    categories: list[FacetValue]  # by products.category_id, not rolled up to ancestors
    attributes: dict[str, list[FacetValue]]  # filterable attributes only
    price_ranges: list[FacetValue]  # every PRICE_BUCKETS label, in order, zeros included


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    facets: Facets | None  # None when the query asked for none
    total: int | None  # None when the query asked for no facets
    next_after: tuple[object, ...] | None  # JSON scalars only: str, int, float
    did_you_mean: str | None
    backend: str
    # True: each hit carries its first image (None: it has none), read in the same statement.
    # False: the caller looks the images up (storage.catalog_reads.first_images).
    images: bool = False


@dataclass(frozen=True)
class Suggestion:
    text: str
    slug: str
    product_id: int


class SearchBackend(Protocol):
    """Search over published products, and keeping the backend's documents up to date."""

    async def search(self, query: SearchQuery, reader: Executor | None = None) -> SearchResult:
        """One page of hits with facets; raises InvalidCursor and CategoryNotFound.

        `reader`: the caller's routing decision (storage.replica.Reader), for every database
        read the search makes, so one unit of work reads from one place; None: the backend
        decides from `query.fresh_for`.
        """
        ...

    async def suggest(self, prefix: str, limit: int = 8) -> list[Suggestion]:
        """Products whose name matches what is typed so far, best first (autocomplete)."""
        ...

    async def index_product(self, product_id: int, conn: asyncpg.Connection | None = None) -> None:
        """Rebuild one product's document from the database; idempotent.

        `conn`: read (and, for PostgreSQL, write) through the caller's transaction. An
        unpublished product's document is removed. Raises storage's ProductNotFound. Only what
        commits with the transaction: copies to other stores are `after_commit`'s.
        """
        ...

    async def after_commit(self, product_id: int) -> None:
        """Copy the committed document to secondary stores; idempotent (PostgresSearch: nothing).

        Called after the transaction of `index_product` committed, and again on a retry, so a
        store that failed gets the document later while PostgreSQL's stays current.
        """
        ...

    async def remove_product(self, product_id: int) -> None:
        """Drop one product's document; idempotent, also for unknown ids."""
        ...
