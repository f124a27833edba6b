"""Elasticsearch that answers from PostgreSQL when it cannot: FallbackSearch.

Reads (search, suggest) go to the primary backend (Elasticsearch) with a short timeout. When it
fails (cannot connect, times out, answers an error), the same call is answered by the fallback
(PostgreSQL), logged as `search.fallback` and counted in aioshop_search_fallback_total; then, for
`skip_seconds`, reads go straight to the fallback, so a dead cluster costs one timeout every few
seconds instead of one per request. `SearchResult.backend` says which one answered.

Writes keep both up to date: `index_product` rebuilds PostgreSQL's document in the caller's
transaction (so the fallback answers with current data, whatever Elasticsearch does), and
`after_commit` then copies the committed document to Elasticsearch. Its failure raises after the
commit: the search actor retries, and the retry (a duplicate delivery) copies again; external
versions make repeated or late copies harmless.

Cursors: the field sorts make the same keys in both backends, so their cursors work on either;
a relevance cursor from one backend is InvalidCursor in the other (the API answers 400).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from elasticsearch import ApiError, TransportError
from prometheus_client import Counter

from search.backend import SearchQuery, SearchResult, Suggestion
from search.elastic import ElasticsearchSearch
from search.postgres import PostgresSearch
from storage.database import Executor

log = structlog.get_logger(__name__)

# elasticsearch.ConnectionError and ConnectionTimeout are TransportErrors; every HTTP error
# answer (including a missing alias before the first reindex) is an ApiError.
UNAVAILABLE: tuple[type[BaseException], ...] = (TransportError, ApiError, asyncio.TimeoutError)

FALLBACKS = Counter(
    "aioshop_search_fallbacks_total",
    "Search reads (searches and suggestions) answered by PostgreSQL because the configured"
    " backend failed or was being skipped after a failure.",
    ["backend"],
)

T = TypeVar("T")


class FallbackSearch:
    """SearchBackend: `primary` (Elasticsearch) answers, `fallback` (PostgreSQL) when it fails."""

    name = "elasticsearch"

    def __init__(
        self,
        primary: ElasticsearchSearch,
        fallback: PostgresSearch,
        *,
        timeout: float = 2.0,
        skip_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.timeout = timeout
        self.skip_seconds = skip_seconds
        self.clock = clock
        self.skip_until = float("-inf")

    @property
    def skipping(self) -> bool:
        """Whether reads go straight to the fallback now (a recent failure)."""
        return self.clock() < self.skip_until

    async def _read(
        self,
        operation: str,
        primary: Callable[[], Awaitable[T]],
        fallback: Callable[[], Awaitable[T]],
    ) -> T:
        if not self.skipping:
            try:
                return await asyncio.wait_for(primary(), self.timeout)
            except UNAVAILABLE as exc:
                self.skip_until = self.clock() + self.skip_seconds
                log.warning(
                    "search.fallback",
                    operation=operation,
                    error=type(exc).__name__,
                    detail=str(exc).splitlines()[0] if str(exc) else "",
                    skip_seconds=self.skip_seconds,
                )
        FALLBACKS.labels(backend=self.name).inc()
        return await fallback()

    async def search(self, query: SearchQuery, reader: Executor | None = None) -> SearchResult:
        """One page of hits with facets from Elasticsearch, else PostgreSQL; raises
        InvalidCursor or CategoryNotFound (the caller's errors, not Elasticsearch's failure).
        `reader`: the caller's routing decision, for both."""
        return await self._read(
            "search",
            lambda: self.primary.search(query, reader),
            lambda: self.fallback.search(query, reader),
        )

    async def suggest(self, prefix: str, limit: int = 8) -> list[Suggestion]:
        """Autocomplete from Elasticsearch, else PostgreSQL."""
        return await self._read(
            "suggest",
            lambda: self.primary.suggest(prefix, limit),
            lambda: self.fallback.suggest(prefix, limit),
        )

    async def index_product(self, product_id: int, conn: asyncpg.Connection | None = None) -> None:
        """Rebuild PostgreSQL's document (in the caller's transaction with `conn`); Elasticsearch
        gets it from `after_commit`. Raises ProductNotFound."""
        await self.fallback.index_product(product_id, conn)

    async def after_commit(self, product_id: int) -> None:
        """Copy the committed document to Elasticsearch; raises its errors (the actor retries)."""
        await self.primary.after_commit(product_id)

    async def remove_product(self, product_id: int) -> None:
        """Drop the product's document in both backends; idempotent. Raises Elasticsearch's
        errors after PostgreSQL's document is gone."""
        await self.fallback.remove_product(product_id)
        await self.primary.remove_product(product_id)
