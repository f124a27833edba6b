"""Elasticsearch search: one index behind an alias, documents copied from PostgreSQL.

ALIAS (`aioshop-products`) points at one concrete index, `aioshop-products-<timestamp>`. Searches
and single-document writes go through the alias; a reindex (search.reindex) fills a new index with
`bulk` and swaps the alias in one `update_aliases` call, so searches never see a missing or
half-filled index. Writes use external versions (the primary's clock, see elastic_documents): a
write that arrives after a newer one gets 409 and is dropped, so a slow retry cannot bring an old
document back. Request bodies live in search.elastic_query and their answers are read in
search.elastic_results (pure, unit tested); documents and the mapping in search.elastic_documents.

elasticsearch-py 9 async API: https://elasticsearch-py.readthedocs.io/en/latest/async.html
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

import asyncpg
import structlog
from elasticsearch import AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError
from elasticsearch.helpers import async_bulk

from search.backend import SearchQuery, SearchResult, Suggestion, suggest_prefix
from search.elastic_documents import (
    ALIAS,
    INDEX_SETTINGS,
    MAPPINGS,
    SELECT_DOCUMENTS,
    SELECT_PUBLISHED_AFTER,
    document,
    index_name,
)
from search.elastic_query import BACKEND, build_search, build_suggest
from search.elastic_results import parse_search, parse_suggest
from storage import attributes, categories, products
from storage.database import Executor
from storage.errors import ProductNotFound
from storage.replica import fresh_reader

log = structlog.get_logger(__name__)

BULK_BATCH = 500  # documents per bulk request (reindex's load, at most)


def bulk_actions(index: str, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Bulk `index` actions (external versions) for published rows, `delete` for the others."""
    actions: list[dict[str, Any]] = []
    for row in rows:
        base = {
            "_index": index,
            "_id": str(row["id"]),
            "version": row["version"],
            "version_type": "external",
        }
        if row["is_published"]:
            actions.append({**base, "_op_type": "index", "_source": document(row)})
        else:
            actions.append({**base, "_op_type": "delete"})
    return actions


class ElasticsearchSearch:
    """SearchBackend over Elasticsearch; documents are read from PostgreSQL on `primary`."""

    name = BACKEND

    def __init__(
        self,
        client: AsyncElasticsearch,
        primary: asyncpg.Pool,
        *,
        alias: str = ALIAS,
        reader: Executor | None = None,
        attributes_ttl: float = 30.0,
    ) -> None:
        self.client = client
        self.primary = primary
        self.alias = alias
        # Expands category slugs (PostgreSQL's tree) and names the filterable attributes.
        self.reader: Executor = reader or primary
        # Which attributes get a facet changes when staff edit attributes: a newly filterable one
        # gets its facet up to attributes_ttl seconds late, and searches skip a round trip.
        self.attributes_ttl = attributes_ttl
        self._filterable: tuple[float, tuple[str, ...]] = (float("-inf"), ())

    async def filterable(self) -> tuple[str, ...]:
        """The slugs of the filterable attributes (remembered for attributes_ttl seconds)."""
        expires, slugs = self._filterable
        if expires < time.monotonic():
            slugs = tuple(a.slug for a in await attributes.filterable_attributes(self.reader))
            self._filterable = (time.monotonic() + self.attributes_ttl, slugs)
        return slugs

    async def search(self, query: SearchQuery, reader: Executor | None = None) -> SearchResult:
        """One page of published products with facets; raises InvalidCursor, CategoryNotFound
        and client errors. The category is expanded through `reader` (the caller's decision),
        else through one made here for `query.fresh_for`."""
        if query.category is not None:
            if reader is None:
                reader = await fresh_reader(self.reader, query.fresh_for)
            ids = await categories.subtree_ids_by_slug(reader, query.category)
            query = replace(query, category=None, category_ids=tuple(ids))
        body = build_search(query, await self.filterable() if query.facets else ())
        response = await self.client.search(index=self.alias, **body)
        return parse_search(query, response.body)

    async def suggest(self, prefix: str, limit: int = 8) -> list[Suggestion]:
        """Published products whose name matches what is typed so far (autocomplete)."""
        stripped = suggest_prefix(prefix)
        if stripped is None:
            return []
        response = await self.client.search(index=self.alias, **build_suggest(stripped, limit))
        return parse_suggest(response.body)

    async def index_product(self, product_id: int, conn: asyncpg.Connection | None = None) -> None:
        """Refresh the product's PostgreSQL document, then copy it here; idempotent.

        The PostgreSQL document comes first because this one is read from it (search_facets) and
        because its row lock orders concurrent indexers. Raises ProductNotFound.
        """
        if conn is None:
            async with self.primary.acquire() as own, own.transaction():
                await products.index(own, product_id)
                await self.copy_product(product_id, own)
            return
        await products.index(conn, product_id)
        await self.copy_product(product_id, conn)

    async def after_commit(self, product_id: int) -> None:
        """Copy the product's committed PostgreSQL document here; idempotent (external versions
        make repeats and out-of-order copies harmless). Raises ProductNotFound and client errors."""
        async with self.primary.acquire() as conn:
            await self.copy_product(product_id, conn)

    async def copy_product(self, product_id: int, conn: asyncpg.Connection) -> None:
        """Write the product's document (or delete it when unpublished) from its current
        PostgreSQL document, read through `conn`. Raises ProductNotFound and client errors."""
        row = await conn.fetchrow(SELECT_DOCUMENTS, [product_id])
        if row is None:
            raise ProductNotFound(product_id)
        try:
            if row["is_published"]:
                await self._write(row)
            else:
                await self.client.delete(
                    index=self.alias,
                    id=str(product_id),
                    version=row["version"],
                    version_type="external",
                )
        except ConflictError:
            # A newer write got there first: what it wrote is at least as new as this.
            log.info("search.write_superseded", product_id=product_id)
        except NotFoundError:
            pass  # deleting a document that is not there: already as wanted

    async def _write(self, row: Any) -> None:
        # require_alias: a write must never auto-create a concrete index named like the alias
        # (with a guessed mapping, and in the alias's way for good).
        arguments: dict[str, Any] = {
            "index": self.alias,
            "id": str(row["id"]),
            "document": document(row),
            "version": row["version"],
            "version_type": "external",
            "require_alias": True,
        }
        try:
            await self.client.index(**arguments)
        except NotFoundError:
            # No alias yet (no reindex has run): skip the write. An index made here would hold
            # only the products written since, and searches would get its 200s instead of the
            # 404 that makes FallbackSearch answer from PostgreSQL until `aioshop reindex`.
            log.warning("search.no_alias", alias=self.alias, product_id=row["id"])

    async def ensure_alias(self) -> bool:
        """Create an empty index behind the alias unless it exists; True when it was created.

        For tests and tools only: writes never call it (a missing alias must stay missing until
        a reindex fills an index, see _write). The index has a fixed name, so several processes
        doing this at once make one index (the others get resource_already_exists), never an
        alias over two indices.
        """
        if await self.aliased_indices():
            return False
        name = f"{self.alias}-initial"
        try:
            await self.client.indices.create(
                index=name, settings=INDEX_SETTINGS, mappings=MAPPINGS, aliases={self.alias: {}}
            )
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
            return False
        log.info("search.index_created", index=name, alias=self.alias)
        return True

    async def remove_product(self, product_id: int) -> None:
        """Drop one product's document; idempotent, also for unknown ids."""
        with suppress(NotFoundError):
            await self.client.delete(index=self.alias, id=str(product_id))

    # --- whole-index operations (search.reindex) ----------------------------------------------

    async def create_index(self, name: str | None = None) -> str:
        """Create a new empty concrete index with the mapping; returns its name."""
        name = name or index_name(self.alias)
        await self.client.indices.create(index=name, settings=INDEX_SETTINGS, mappings=MAPPINGS)
        return name

    async def aliased_indices(self) -> list[str]:
        """The concrete indices the alias points at now (none before the first reindex)."""
        try:
            response = await self.client.indices.get_alias(name=self.alias)
        except NotFoundError:
            return []
        return sorted(response.body)

    async def load(
        self,
        index: str,
        pool: asyncpg.Pool,
        batch: int = BULK_BATCH,
        read: Callable[[int], None] | None = None,
    ) -> int:
        """Bulk-index every published product into `index`, `batch` at a time; returns how many.
        `read` hears how many products were read so far, batch by batch.

        Raises elasticsearch.helpers.BulkIndexError when a document is refused.
        """
        loaded, _ = await async_bulk(
            self.client,
            self._published(index, pool, batch, read),
            chunk_size=batch,
            stats_only=True,
        )
        return int(loaded)

    async def _published(
        self, index: str, pool: asyncpg.Pool, batch: int, read: Callable[[int], None] | None
    ) -> AsyncIterator[dict[str, Any]]:
        last_id, count = 0, 0
        while True:
            rows = await pool.fetch(SELECT_PUBLISHED_AFTER, last_id, batch)
            for action in bulk_actions(index, rows):
                yield action
            count += len(rows)
            if read is not None:
                read(count)
            if len(rows) < batch:
                return
            last_id = rows[-1]["id"]

    async def copy_products(
        self, index: str, product_ids: Sequence[int], pool: asyncpg.Pool
    ) -> int:
        """Copy these products into `index` (delete the unpublished); returns how many written."""
        if not product_ids:
            return 0
        rows = await pool.fetch(SELECT_DOCUMENTS, list(product_ids))
        written, _ = await async_bulk(
            self.client, bulk_actions(index, rows), stats_only=True, ignore_status=(404, 409)
        )
        return int(written)

    async def swap_alias(self, new_index: str, old_indices: Sequence[str]) -> None:
        """Point the alias at `new_index` only, in one atomic update_aliases call."""
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": self.alias}} for old in old_indices
        ]
        actions.append({"add": {"index": new_index, "alias": self.alias}})
        await self.client.indices.update_aliases(actions=actions)

    async def drop_indices(self, names: Sequence[str]) -> None:
        """Delete these concrete indices (the ones a swap left behind)."""
        if names:
            await self.client.indices.delete(index=list(names))
