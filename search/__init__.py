"""Search: one SearchBackend protocol (search.backend), backends chosen by configuration.

search.postgres.PostgresSearch is the default; with ELASTICSEARCH_URL set,
search.fallback.FallbackSearch asks Elasticsearch (search.elastic) and answers from PostgreSQL
when it fails (search.factory chooses).
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
