"""A large, realistic, deterministic catalog for `aioshop seed --products N` (demos and benchmarks).

The taxonomy (categories, attributes with their choices, product types) is upserted by slug with
plain INSERTs, so a second run reuses it and adds products only: ids continue after the current
ones, and slugs and SKUs carry the new product ids, so they never collide with earlier runs. A
type whose attributes are declared at other levels than the seed's raises SeedConflict.
Products and variants then go in with COPY, one transaction per batch (a product always commits
with its variants); the variants' statement-level triggers fill price_min/price_max/in_stock.
Each committed batch is indexed for search in bulk (search_index_products, as INDEX_PRODUCT does
for one product) and the catalog is vacuumed and analysed at the end.
The same `products` and `seed` on a fresh database give byte-identical rows (only indexed_at
is the clock's): everything comes from one `random.Random(seed)`, and created_at counts back
one minute per product from a fixed instant.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import asyncpg

from storage.errors import Conflict
from storage.seed_data import (
    ATTRIBUTES,
    CATEGORIES,
    CHOICES,
    TYPES,
    Generator,
    Node,
    Row,
    Taxonomy,
    TypeSpec,
)

UPSERT_ATTRIBUTE = """
    INSERT INTO attributes (slug, name, kind, unit) VALUES ($1, $2, $3, $4)
    ON CONFLICT (slug) DO NOTHING
"""
UPSERT_CHOICE = """
    INSERT INTO attribute_choices (attribute_id, slug, name, swatch, position)
    SELECT id, $2, $3, $4, $5 FROM attributes WHERE slug = $1
    ON CONFLICT (attribute_id, slug) DO NOTHING
"""
UPSERT_TYPE = "INSERT INTO product_types (slug, name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING"
UPSERT_TYPE_ATTRIBUTE = """
    INSERT INTO product_type_attributes (product_type_id, attribute_id, level, position)
    SELECT t.id, a.id, $3, $4 FROM product_types t, attributes a WHERE t.slug = $1 AND a.slug = $2
    ON CONFLICT (product_type_id, attribute_id) DO NOTHING
"""
LIST_TYPE_LEVELS = """
    SELECT t.slug AS type, a.slug AS attribute, pta.level
    FROM product_type_attributes pta
    JOIN product_types t ON t.id = pta.product_type_id
    JOIN attributes a ON a.id = pta.attribute_id
    WHERE t.slug = ANY($1::text[])
"""
LIST_TYPE_IDS = "SELECT slug, id FROM product_types WHERE slug = ANY($1::text[])"
# The path ends with the row's own id (a CHECK), so the id is drawn first from the identity's
# own sequence; ON CONFLICT leaves an existing category (wherever staff moved it) alone.
INSERT_CATEGORY = """
    INSERT INTO categories (id, parent_id, slug, name, path, position) OVERRIDING SYSTEM VALUE
    SELECT n.id, $1::bigint, $2, $3,
           coalesce((SELECT path FROM categories WHERE id = $1), '{}') || n.id, $4
    FROM (SELECT nextval(pg_get_serial_sequence('categories', 'id')) AS id) AS n
    ON CONFLICT (slug) DO NOTHING
    RETURNING id
"""
GET_CATEGORY_ID = "SELECT id FROM categories WHERE slug = $1"
# Product ids are drawn from the identity's sequence before the COPY, so variants can name their
# product without a round trip per row. nextval is concurrency-safe: the ids are ours even if
# other sessions insert products meanwhile (they may then interleave, which nothing relies on).
# COPY writes the id column of a GENERATED ALWAYS identity as given, as pg_dump's output does.
RESERVE_PRODUCT_IDS = """
    SELECT nextval(pg_get_serial_sequence('products', 'id')) FROM generate_series(1, $1)
"""
LIST_TAKEN_SLUGS = "SELECT slug FROM products WHERE slug = ANY($1::text[])"
PRODUCT_COLUMNS = (
    "id", "slug", "name", "description", "is_published", "created_at", "updated_at",
    "category_id", "product_type_id", "attributes",
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
# VACUUM too: the trigger and the search update leave two dead versions of each product, and a
# seeded catalog is often benchmarked at once (autovacuum may be off, or not there yet).
VACUUM_CATALOG = """
    VACUUM (ANALYZE) categories, attributes, attribute_choices, product_types,
                     product_type_attributes, products, variants
"""


class SeedConflict(Conflict):
    """The database holds catalog data the seed cannot add to without contradicting it."""


@dataclass(frozen=True)
class Step:
    name: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class SeedReport:
    """What seed_catalog wrote, step by step, and the wall-clock seconds it took in all.

    Batches are generated while the previous one is copied, and indexed while the next one is:
    `generate` and `search` count only the time the load waited for them (the first batch's
    rows, the last batch's index, and any batch slower than a copy).
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
    progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """Add `products` generated products (and the taxonomy if missing) to the database at dsn.

    Not idempotent: each run adds products (same seed, same names; new ids, slugs and SKUs).
    Raises SeedConflict when the taxonomy contradicts the seed's or a slug or SKU is taken, and
    ValueError when products < 1. Uses its own connection (binary COPY needs its jsonb codec).
    """
    if products < 1:
        raise ValueError("products must be at least 1")
    say = progress or (lambda _: None)
    timer, begun = _Timer(), time.monotonic()
    conn = await _connect(dsn)
    indexer = _Indexer(await _connect(dsn))
    try:
        with timer.step("taxonomy") as counted:
            async with conn.transaction():
                taxonomy, counted.rows = await _upsert_taxonomy(conn)
        say(f"taxonomy: {counted.rows} rows")
        generator = Generator(taxonomy, seed)
        variants_total = 0
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
            copying = asyncio.ensure_future(_copy_batch(conn, timer, rows, variant_rows))
            try:
                upcoming = await generator.batch(following, ids)
                generated = time.monotonic()
            finally:
                copied = await copying
            timer.add("generate", max(0.0, generated - copied))  # how long the copy waited
            variants_total += len(variant_rows)
            say(f"products: {start + len(rows)}/{products} ({variants_total} variants)")
            with timer.step("search"):  # how long loading waited for the previous batch's index
                indexed = await indexer.wait()
            indexer.start(min(row[0] for row in rows), max(row[0] for row in rows))
            if indexed:
                say(f"search: {indexed} products")
            rows, variant_rows = upcoming
        with timer.step("search") as counted:
            counted.rows = await indexer.wait()
        say(f"search: {counted.rows} products")
        with timer.step("vacuum"):
            await conn.execute(VACUUM_CATALOG)
    finally:
        await indexer.close()
        await conn.close()
    seconds = time.monotonic() - begun
    return SeedReport(products, variants_total, tuple(timer.steps.values()), seconds)


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
    conn: asyncpg.Connection, timer: _Timer, products: list[list[Any]], variants: list[Row]
) -> float:
    """One transaction: a product always commits with its variants; returns when it committed.

    Raises SeedConflict.
    """
    try:
        async with conn.transaction():
            with timer.step("products") as counted:
                await conn.copy_records_to_table(
                    "products", records=products, columns=PRODUCT_COLUMNS
                )
                counted.rows = len(products)
            with timer.step("variants") as counted:  # with the trigger that fills price_min...
                await conn.copy_records_to_table(
                    "variants", records=variants, columns=VARIANT_COLUMNS
                )
                counted.rows = len(variants)
    except asyncpg.UniqueViolationError as exc:
        raise SeedConflict(f"the seed collided with existing data: {exc.detail}") from None
    return time.monotonic()


async def _upsert_taxonomy(conn: asyncpg.Connection) -> tuple[Taxonomy, int]:
    """Create what is missing of the taxonomy; returns its ids and how many rows it declares."""
    await conn.executemany(UPSERT_ATTRIBUTE, [a[:4] for a in ATTRIBUTES])
    await conn.executemany(UPSERT_CHOICE, [
        (attribute, *choice, position)
        for attribute, choices in CHOICES.items() for position, choice in enumerate(choices)
    ])  # fmt: skip
    await conn.executemany(UPSERT_TYPE, [(t.slug, t.name) for t in TYPES.values()])
    declared = [
        (t.slug, attribute, level, position)
        for t in TYPES.values()
        for position, (attribute, level) in enumerate(
            [(a, "product") for a in t.product_attributes]
            + [(a, "variant") for a in t.variant_attributes]
        )
    ]
    await conn.executemany(UPSERT_TYPE_ATTRIBUTE, declared)
    levels = {(r["type"], r["attribute"]): r["level"] for r in await conn.fetch(
        LIST_TYPE_LEVELS, list(TYPES))}  # fmt: skip
    for type_slug, attribute, level, _ in declared:
        if levels.get((type_slug, attribute)) != level:
            raise SeedConflict(
                f"product type {type_slug!r} declares {attribute!r} at the "
                f"{levels.get((type_slug, attribute))} level, the seed needs {level}"
            )
    type_ids = {r["slug"]: r["id"] for r in await conn.fetch(LIST_TYPE_IDS, list(TYPES))}
    leaves: list[tuple[int, TypeSpec]] = []

    async def insert(nodes: Sequence[Node], parent: int | None) -> int:
        count = 0
        for position, (slug, name, type_slug, children) in enumerate(nodes):
            category_id = await conn.fetchval(INSERT_CATEGORY, parent, slug, name, position)
            category_id = category_id or await conn.fetchval(GET_CATEGORY_ID, slug)
            if type_slug is not None:
                leaves.append((category_id, TYPES[type_slug]))
            count += 1 + await insert(children, category_id)
        return count

    categories = await insert(CATEGORIES, None)
    rows = len(ATTRIBUTES) + sum(map(len, CHOICES.values())) + len(TYPES) + len(declared)
    return Taxonomy(tuple(leaves), type_ids), rows + categories


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
