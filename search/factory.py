"""The search backend a process uses, chosen by configuration (ELASTICSEARCH_URL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elasticsearch import AsyncElasticsearch

from configs.settings import Settings
from search.backend import SearchBackend
from search.bitmap import BitmapSearch
from search.elastic import ElasticsearchSearch
from search.fallback import FallbackSearch
from search.postgres import PostgresSearch
from storage.database import Database

# Short, because PostgreSQL can answer instead: a slow cluster must not make search slow.
REQUEST_TIMEOUT_SECONDS = 2.0
SKIP_SECONDS = 5.0  # after a failure, reads skip Elasticsearch this long


def elastic_client(url: str) -> AsyncElasticsearch:
    """A client for ELASTICSEARCH_URL that gives up fast (one retry, only on connection errors)."""
    return AsyncElasticsearch(
        url, request_timeout=REQUEST_TIMEOUT_SECONDS, max_retries=1, retry_on_timeout=False
    )


@asynccontextmanager
async def open_search(
    settings: Settings, db: Database, *, index: bool = False
) -> AsyncIterator[SearchBackend]:
    """The active backend: PostgreSQL reading through the replica pool, writing on the primary.

    `index` (web processes, with SEARCH_INDEX=bitmap): PostgreSQL answers from an in-process
    index (search.bitmap) that a background task builds and keeps current until exit.
    With ELASTICSEARCH_URL set, Elasticsearch answers and PostgreSQL takes over when it fails
    (search.fallback); the client is closed on exit.
    """
    async with _postgres(settings, db, index=index) as postgres:
        if settings.elasticsearch_url is None:
            yield postgres
            return
        async with _elastic(settings, db, postgres) as backend:
            yield backend


@asynccontextmanager
async def _postgres(
    settings: Settings, db: Database, *, index: bool
) -> AsyncIterator[PostgresSearch]:
    """PostgresSearch, or BitmapSearch with its refresh task running (cancelled on exit)."""
    if not index or settings.search_index != "bitmap":
        yield PostgresSearch(db.replica, db.primary)
        return
    bitmap = BitmapSearch(
        db.replica,
        db.primary,
        refresh_seconds=settings.search_index_refresh_seconds,
        freeze_after_build=True,
        lists=settings.search_index_lists,
        keep=settings.search_index_keep,
    )
    task = asyncio.create_task(bitmap.run(), name="search-index")
    try:
        yield bitmap
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def _elastic(
    settings: Settings, db: Database, postgres: PostgresSearch
) -> AsyncIterator[SearchBackend]:
    assert settings.elasticsearch_url is not None
    client = elastic_client(str(settings.elasticsearch_url))
    try:
        yield FallbackSearch(
            ElasticsearchSearch(client, db.primary, reader=db.replica),
            postgres,
            timeout=REQUEST_TIMEOUT_SECONDS,
            skip_seconds=SKIP_SECONDS,
        )
    finally:
        await client.close()
