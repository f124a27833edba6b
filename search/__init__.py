"""Search: one SearchBackend protocol (search.backend), backends chosen by configuration.

search.postgres.PostgresSearch is the default; Elasticsearch comes later behind the same protocol.
"""

from search.backend import (
    PRICE_BUCKETS,
    SORTS,
    Facets,
    FacetValue,
    InvalidCursor,
    SearchBackend,
    SearchError,
    SearchHit,
    SearchQuery,
    SearchResult,
    Sort,
    Suggestion,
    price_bucket_label,
)

__all__ = [
    "PRICE_BUCKETS",
    "SORTS",
    "FacetValue",
    "Facets",
    "InvalidCursor",
    "SearchBackend",
    "SearchError",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "Sort",
    "Suggestion",
    "price_bucket_label",
]
