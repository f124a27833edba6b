"""`aioshop reindex`: rebuild every search document, with no downtime.

PostgreSQL: every published product's document again (search_index_products, in batches, each
its own short transaction so indexing actors are never blocked for long), then the vocabulary
(search_rebuild_terms). With ELASTICSEARCH_URL also Elasticsearch: a new concrete index is
created and bulk-loaded while the alias still serves the old one; one update_aliases call then
moves the alias (remove old + add new, atomic) and the old index is deleted; then products
indexed meanwhile (their indexed_at is after the load began: the actor wrote them to the old
index) are copied again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from elasticsearch import AsyncElasticsearch

from search.elastic import BULK_BATCH, ElasticsearchSearch
from search.elastic_documents import ALIAS, SELECT_INDEXED_SINCE
from search.postgres import PostgresSearch
from storage import products
from storage.database import create_pool

BATCH = 1000
# Bulk requests of a few hundred documents take longer than the short timeout searches use.
BULK_REQUEST_TIMEOUT_SECONDS = 120.0
COUNT_PUBLISHED = "SELECT count(*) FROM products WHERE is_published"
LIST_PUBLISHED_AFTER = """
    SELECT id FROM products WHERE is_published AND id > $1 ORDER BY id LIMIT $2
"""
# When the load starts, less a margin: an actor's transaction that began a little earlier may
# commit (and write to the old index) after the load read the product.
GET_LOAD_START = "SELECT now() - interval '1 minute'"


# How far a long step is: (step, done, total), e.g. ("postgres", 3000, 100_000); caller draws.
Advance = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Step:
    """One thing reindex did: what, how many (products, words, indices), how long."""

    name: str
    count: int
    seconds: float
    detail: str = ""


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0


class Timer:
    """Appends a Step to the report for each `done` call, timed since the previous one."""

    def __init__(self, report: Report, progress: Callable[[Step], None] | None) -> None:
        self.report, self.progress = report, progress
        self.started = self.last = time.monotonic()

    def done(self, name: str, count: int, detail: str = "") -> None:
        now = time.monotonic()
        step = Step(name, count, now - self.last, detail)
        self.last = now
        self.report.steps.append(step)
        self.report.seconds = now - self.started
        if self.progress is not None:
            self.progress(step)


async def reindex_postgres(
    pool: asyncpg.Pool, timer: Timer, batch: int = BATCH, advance: Advance | None = None
) -> int:
    """Rebuild every published product's PostgreSQL document, then search_terms; returns the
    number of products. `advance` hears of each batch."""
    total: int = await pool.fetchval(COUNT_PUBLISHED) if advance is not None else 0
    if advance is not None:
        advance("postgres", 0, total)
    indexed, last_id = 0, 0
    while True:
        ids = [row["id"] for row in await pool.fetch(LIST_PUBLISHED_AFTER, last_id, batch)]
        if not ids:
            break
        indexed += await products.index_many(pool, ids)
        last_id = ids[-1]
        if advance is not None:
            advance("postgres", indexed, max(total, indexed))  # some may be published meanwhile
    timer.done("postgres", indexed, "documents rebuilt")
    words = await PostgresSearch(pool, pool).rebuild_terms()
    timer.done("terms", words, "words in search_terms")
    return indexed


async def reindex_elastic(
    client: AsyncElasticsearch,
    pool: asyncpg.Pool,
    timer: Timer,
    batch: int = BULK_BATCH,
    *,
    alias: str = ALIAS,
    advance: Advance | None = None,
) -> str:
    """Load a new index and move the alias to it; returns the new index's name.

    A failure before the swap deletes the new index and raises: the alias still serves the old.
    """
    elastic = ElasticsearchSearch(client, pool, alias=alias)
    started: datetime = await pool.fetchval(GET_LOAD_START)
    total: int = await pool.fetchval(COUNT_PUBLISHED) if advance is not None else 0
    read = None if advance is None else (lambda n: advance("elastic", n, max(total, n)))
    if read is not None:
        read(0)
    new_index = await elastic.create_index()
    try:
        loaded = await elastic.load(new_index, pool, batch, read)
        timer.done("elastic", loaded, f"documents loaded into {new_index}")
        old_indices = [name for name in await elastic.aliased_indices() if name != new_index]
        await elastic.swap_alias(new_index, old_indices)
    except BaseException:
        with suppress(Exception):  # the original error says more than a failed clean-up
            await elastic.drop_indices([new_index])
        raise
    # Nothing points at the old indices any more: drop them before a catch-up that may fail.
    await elastic.drop_indices(old_indices)
    timer.done(
        "alias", 1, f"{elastic.alias} -> {new_index}; dropped {', '.join(old_indices) or '-'}"
    )
    # Written by the search actor to the old index while we loaded: copy them again.
    changed = [row["id"] for row in await pool.fetch(SELECT_INDEXED_SINCE, started)]
    copied = await elastic.copy_products(new_index, changed, pool)
    timer.done("catch-up", copied, "documents recopied")
    return new_index


async def reindex(
    database_url: str,
    elasticsearch_url: str | None,
    *,
    batch: int = BATCH,
    progress: Callable[[Step], None] | None = None,
    advance: Advance | None = None,
) -> Report:
    """Rebuild PostgreSQL's documents and, with a URL, Elasticsearch's index; see the module.
    `progress` hears of each step when it is done, `advance` of each batch of the long ones."""
    report = Report()
    timer = Timer(report, progress)
    pool = await create_pool(database_url, 2)
    try:
        await reindex_postgres(pool, timer, batch, advance)
        if elasticsearch_url is not None:
            client = AsyncElasticsearch(
                elasticsearch_url, request_timeout=BULK_REQUEST_TIMEOUT_SECONDS
            )
            try:
                await reindex_elastic(client, pool, timer, min(batch, BULK_BATCH), advance=advance)
            finally:
                await client.close()
    finally:
        await pool.close()
    return report
