"""The search backend a process uses, chosen by configuration (ELASTICSEARCH_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elasticsearch import AsyncElasticsearch

from configs.settings import Settings
from search.backend import SearchBackend
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
async def open_search(settings: Settings, db: Database) -> AsyncIterator[SearchBackend]:
    """The active backend: PostgreSQL reading through the replica pool, writing on the primary.

    With ELASTICSEARCH_URL set, Elasticsearch answers and PostgreSQL takes over when it fails
    (search.fallback); the client is closed on exit.
    """
    postgres = PostgresSearch(db.replica, db.primary)
    if settings.elasticsearch_url is None:
        yield postgres
        return
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
