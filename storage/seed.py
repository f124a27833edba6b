"""A large, realistic, deterministic catalog for `aioshop seed --products N` (demos and benchmarks).

The taxonomy is upserted first (storage.seed_taxonomy), so a second run reuses it and adds
products only: ids continue after the current ones, and slugs and SKUs carry the new product ids,
so they never collide with earlier runs. The rows come from storage.seed_data's Generator.
Products and variants go in with COPY, one transaction per batch (a product always commits with
its variants). The products carry price_min/price_max/currency/in_stock already, so the variants'
insert trigger skips its UPDATE (migration 0009): each product is written by COPY and then once
more by its search document, search_index_products() (migration 0006, as INDEX_PRODUCT does for
one product: the one definition of search_vector, search_facets and search_terms).
Into a non-empty catalog each batch commits on its own and a second connection indexes it while
the next one loads. An empty catalog is loaded in ONE transaction that holds products and
variants locked (other sessions wait until it commits), drops their secondary indexes, indexes
each batch right after its copy and builds the indexes again at the end: several times cheaper
than maintaining them row by row, and a failure rolls everything back, indexes included.
The catalog is then vacuumed and analysed.
The same `products` and `seed` on a fresh database give byte-identical rows (only indexed_at
is the clock's): everything comes from one `random.Random(seed)`, and created_at counts back
one minute per product from a fixed instant.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import asyncpg

from storage.seed_data import Generator, Row
from storage.seed_taxonomy import SeedConflict, upsert_taxonomy

# Product ids are drawn from the identity's sequence before the COPY, so variants can name their
# product without a round trip per row. nextval is concurrency-safe: the ids are ours even if
# other sessions insert products meanwhile (they may then interleave, which nothing relies on).
# COPY writes the id column of a GENERATED ALWAYS identity as given, as pg_dump's output does.
RESERVE_PRODUCT_IDS = """
    SELECT nextval(pg_get_serial_sequence('products', 'id')) FROM generate_series(1, $1)
"""
SKIP_AGGREGATES_TRIGGER = "SET LOCAL aioshop.product_aggregates = 'written'"
LIST_TAKEN_SLUGS = "SELECT slug FROM products WHERE slug = ANY($1::text[])"
PRODUCT_COLUMNS = (
    "id", "slug", "name", "description", "is_published", "created_at", "updated_at",
    "category_id", "product_type_id", "attributes", "price_min", "price_max", "currency",
    "in_stock",
)  # fmt: skip
VARIANT_COLUMNS = (
    "product_id", "sku", "name", "price_amount", "currency", "stock_on_hand", "attributes",
    "position", "created_at", "updated_at",
)  # fmt: skip
# What storage/products.py's INDEX_PRODUCT does for one product (the search actor, on every later
# change), for a range of ids at once: migration 0006's search_index_products() is the one
# definition of the search document (tsvector, search_facets, search_terms). One outbox event
# per seeded product would flood the queue instead.
INDEX_PRODUCT_RANGE = """
    SELECT count(*) FROM search_index_products(ARRAY(
        SELECT id FROM products WHERE id BETWEEN $1 AND $2 AND search_vector IS NULL))
"""
CATALOG_IS_EMPTY = "SELECT NOT EXISTS (SELECT FROM products)"
# Taken before the emptiness is checked again: no other session adds or reads products until the
# load commits (DROP INDEX would take the same lock anyway, one table at a time).
LOCK_CATALOG = "LOCK TABLE products, variants IN ACCESS EXCLUSIVE MODE"
# What an empty catalog's load drops and builds again (see _load_empty): every index of products
# and variants but those behind constraints (primary keys, unique slugs and SKUs: the load counts
# on their checks) and variants_product, through which search_index_products reads the variants.
# pg_get_indexdef gives the index as created, storage parameters and predicate included.
LIST_REBUILT_INDEXES = """
    SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
    FROM pg_index i
    WHERE i.indrelid IN ('products'::regclass, 'variants'::regclass)
      AND i.indexrelid <> 'variants_product'::regclass
      AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    ORDER BY 1
"""
INDEX_BUILD_MEMORY = "SET LOCAL maintenance_work_mem = '256MB'"
# VACUUM too: the search update leaves a dead version of each product, and a seeded catalog is
# often benchmarked at once (autovacuum may be off, or not there yet).
VACUUM_CATALOG = """
    VACUUM (ANALYZE) categories, attributes, attribute_choices, product_types,
                     product_type_attributes, products, variants
"""


# How far a load is: (step, done, total), e.g. ("products", 50_000, 100_000); the caller draws it.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Step:
    name: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class SeedReport:
    """What seed_catalog wrote, step by step, and the wall-clock seconds it took in all.

    Batches are generated while the previous one is copied: `generate` counts only the time the
    load waited for it (the first batch's rows, and any batch slower than a copy). Into a
    non-empty catalog batches are indexed while the next one is copied, and `search` too counts
    only the waiting; an empty catalog's load indexes each batch itself (`search` is that work)
    and adds `indexes`, the building of the indexes it dropped.
    """

    products: int
    variants: int
    steps: tuple[Step, ...]
    seconds: float


async def seed_catalog(
    dsn: str,
    products: int,
    *,
    seed: int = 1,
    batch: int = 50_000,
    progress: Progress | None = None,
) -> SeedReport:
    """Add `products` generated products (and the taxonomy if missing) to the database at dsn.

    Not idempotent: each run adds products (same seed, same names; new ids, slugs and SKUs).
    Raises SeedConflict when the taxonomy contradicts the seed's or a slug or SKU is taken, and
    ValueError when products < 1. Uses its own connections (binary COPY needs its jsonb codec).
    On an empty catalog, products and variants are locked for the whole load (see the module).
    `progress` hears of each batch of products, each index built and the vacuum.
    """
    if products < 1:
        raise ValueError("products must be at least 1")
    say: Progress = progress or (lambda step, done, total: None)
    timer, begun = _Timer(), time.monotonic()
    conn = await _connect(dsn)
    try:
        with timer.step("taxonomy") as counted:
            async with conn.transaction():
                taxonomy, counted.rows = await upsert_taxonomy(conn)
        load = _Load(conn, timer, Generator(taxonomy, seed), say)
        loaded = False
        if await conn.fetchval(CATALOG_IS_EMPTY):
            async with conn.transaction():
                await conn.execute(LOCK_CATALOG)
                if await conn.fetchval(CATALOG_IS_EMPTY):  # still, now that no one can add
                    await _load_empty(load, products, batch)
                    loaded = True
        if not loaded:
            indexer = _Indexer(await _connect(dsn))
            try:
                await load.run(products, batch, indexer)
            finally:
                await indexer.close()
        say("vacuum", 0, 1)
        with timer.step("vacuum"):
            await conn.execute(VACUUM_CATALOG)
        say("vacuum", 1, 1)
    finally:
        await conn.close()
    seconds = time.monotonic() - begun
    return SeedReport(products, load.variants, tuple(timer.steps.values()), seconds)


async def _load_empty(load: _Load, products: int, batch: int) -> None:
    """The whole load in the caller's transaction, with the indexes built once at the end.

    Building an index over loaded rows costs a fraction of inserting each row into it (the GIN
    indexes above all), and the search update of each batch then rewrites rows that no index
    but the unique ones points at. The transaction keeps it safe: a failure restores the
    indexes with everything else. Only for an empty catalog: there is nothing to re-index.
    """
    conn = load.conn
    indexes = await conn.fetch(LIST_REBUILT_INDEXES)
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    await load.run(products, batch, None)
    with load.timer.step("indexes") as counted:
        await conn.execute(INDEX_BUILD_MEMORY)
        load.say("indexes", 0, len(indexes))
        for built, index in enumerate(indexes, 1):
            await conn.execute(index["definition"])
            load.say("indexes", built, len(indexes))
        counted.rows = len(indexes)


class _Load:
    """Generates and copies the products batch by batch, and has each batch indexed."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        timer: _Timer,
        generator: Generator,
        say: Progress,
    ) -> None:
        self.conn, self.timer, self.generator, self.say = conn, timer, generator, say
        self.variants = 0

    async def run(self, products: int, batch: int, indexer: _Indexer | None) -> None:
        """Load `products` products: each batch commits on its own and `indexer` indexes it
        meanwhile, or (indexer None) each batch is indexed right after its copy, in the
        caller's transaction."""
        conn, timer, generator = self.conn, self.timer, self.generator
        self.say("products", 0, products)
        with timer.step("generate"):
            ids = await _reserve_ids(conn, min(batch, products))
            rows, variant_rows = await generator.batch(0, ids)
        for start in range(0, products, batch):
            following = start + batch
            with timer.step("generate") as counted:
                await _settle_slugs(conn, generator, rows)
                ids = await _reserve_ids(conn, max(0, min(batch, products - following)))
                counted.rows = len(rows)
            # The database is the bottleneck: the next batch is generated while this one is
            # copied (COPY and triggers run server-side; generation yields to the loop often).
            copying = asyncio.ensure_future(
                _copy_batch(conn, timer, rows, variant_rows, index=indexer is None)
            )
            try:
                upcoming = await generator.batch(following, ids)
                generated = time.monotonic()
            finally:
                copied = await copying
            timer.add("generate", max(0.0, generated - copied))  # how long the copy waited
            self.variants += len(variant_rows)
            self.say("products", start + len(rows), products)
            if indexer is not None:
                with timer.step("search"):  # how long loading waited for the previous batch
                    indexed = await indexer.wait()
                indexer.start(min(row[0] for row in rows), max(row[0] for row in rows))
                self.say("search", indexed, products)
            rows, variant_rows = upcoming
        if indexer is not None:
            with timer.step("search") as counted:
                counted.rows = await indexer.wait()
            self.say("search", counted.rows, products)


class _Indexer:
    """Indexes each committed batch on a second connection while the next batch is loaded.

    Disjoint rows: the loader's triggers update the new batch, the indexer the previous one. The
    search step is the slowest, so overlapping it with loading saves most of it.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.running: asyncio.Future[int] | None = None
        self.indexed = 0

    def start(self, low: int, high: int) -> None:
        """Index the products with ids low..high that are not yet; call wait() first."""
        self.running = asyncio.ensure_future(self.conn.fetchval(INDEX_PRODUCT_RANGE, low, high))

    async def wait(self) -> int:
        """Finish the range being indexed; returns how many products were indexed in all."""
        if self.running is not None:
            running, self.running = self.running, None
            self.indexed += await running
        return self.indexed

    async def close(self) -> None:
        if self.running is not None:
            self.running.cancel()
            with suppress(asyncio.CancelledError, asyncpg.PostgresError):
                await self.running
        await self.conn.close()


async def _reserve_ids(conn: asyncpg.Connection, count: int) -> list[int]:
    return [row[0] for row in await conn.fetch(RESERVE_PRODUCT_IDS, count)] if count else []


async def _copy_batch(
    conn: asyncpg.Connection,
    timer: _Timer,
    products: list[list[Any]],
    variants: list[Row],
    *,
    index: bool,
) -> float:
    """One transaction (a savepoint within the caller's): a product always commits with its
    variants, and, if `index`, its search document. Returns when it committed.

    Raises SeedConflict.
    """
    try:
        async with conn.transaction():
            with timer.step("products") as counted:
                await conn.copy_records_to_table(
                    "products", records=products, columns=PRODUCT_COLUMNS
                )
                counted.rows = len(products)
            with timer.step("variants") as counted:
                # The products carry their aggregates already (Generator.product): migration
                # 0009 lets the insert trigger skip rewriting them, for this transaction only.
                await conn.execute(SKIP_AGGREGATES_TRIGGER)
                await conn.copy_records_to_table(
                    "variants", records=variants, columns=VARIANT_COLUMNS
                )
                counted.rows = len(variants)
            if index:
                with timer.step("search") as counted:
                    counted.rows = await conn.fetchval(
                        INDEX_PRODUCT_RANGE, products[0][0], products[-1][0]
                    )
    except asyncpg.UniqueViolationError as exc:
        raise SeedConflict(f"the seed collided with existing data: {exc.detail}") from None
    return time.monotonic()


async def _connect(dsn: str) -> asyncpg.Connection:
    """A connection whose jsonb codec is binary: COPY (binary) refuses the pools' text codec."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=lambda value: b"\x01" + json.dumps(value, separators=(",", ":")).encode(),
        decoder=lambda data: json.loads(data[1:]),  # 1: the jsonb binary format's version
    )
    return conn


async def _settle_slugs(
    conn: asyncpg.Connection, generator: Generator, rows: list[list[Any]]
) -> None:
    """The first product with a name gets the bare slug, the others `<slug>-<product id>`.

    A bare slug never ends in a number (those always get the id), so it cannot equal another
    product's `<slug>-<id>`; bare slugs already in the database (an earlier run) get the id too.
    """
    fresh = {
        row[1] for row in rows if row[1] not in generator.seen_slugs and not row[1][-1].isdigit()
    }
    taken = {r[0] for r in await conn.fetch(LIST_TAKEN_SLUGS, sorted(fresh))} if fresh else set()
    for row in rows:
        slug = row[1]
        if slug in generator.seen_slugs or slug in taken or slug[-1].isdigit():
            row[1] = f"{slug}-{row[0]}"
        generator.seen_slugs.add(slug)


class _Counted:
    rows = 0


class _Timer:
    """Seconds and rows per named step, summed over batches."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[_Counted]:
        counted, begun = _Counted(), time.monotonic()
        yield counted
        self.add(name, time.monotonic() - begun, counted.rows)

    def add(self, name: str, seconds: float, rows: int = 0) -> None:
        before = self.steps.get(name, Step(name, 0, 0.0))
        self.steps[name] = Step(name, before.rows + rows, before.seconds + seconds)
