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
import itertools
import json
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from storage.errors import Conflict

Choice = tuple[str, str, str | None]  # slug, name, swatch
Row = tuple[Any, ...]
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
CURRENCY = "EUR"

ATTRIBUTES: tuple[tuple[str, str, str, str, tuple[Choice, ...]], ...] = (
    ("colour", "Colour", "choice", "", (
        ("black", "Black", "#111111"), ("white", "White", "#ffffff"), ("navy", "Navy", "#1f2a44"),
        ("grey", "Grey", "#8a8d91"), ("red", "Red", "#c0392b"), ("green", "Green", "#2e7d32"),
        ("olive", "Olive", "#6b7b3a"), ("sand", "Sand", "#d8c3a5"), ("blue", "Blue", "#2f6db5"),
        ("pink", "Pink", "#e8a0b4"), ("yellow", "Yellow", "#f2c94c"), ("brown", "Brown", "#7b5134"),
    )),
    ("size", "Size", "choice", "", tuple(
        (s.lower(), s, None) for s in ("XS", "S", "M", "L", "XL", "XXL"))),
    ("shoe_size", "Shoe size", "choice", "EU", tuple(
        (str(s), str(s), None) for s in range(36, 47))),
    ("material", "Material", "choice", "", tuple(
        (re.sub(r"\W+", "-", m.lower()), m, None) for m in (
        "Cotton", "Linen", "Wool", "Merino", "Denim", "Leather", "Suede", "Canvas", "Nylon",
        "Polyester", "Stoneware", "Porcelain", "Glass", "Steel", "Cast Iron", "Oak", "Bamboo",
        "Ceramic", "Recycled Plastic", "Velvet", "Rubber"))),
    ("capacity_ml", "Capacity", "number", "ml", ()),
    ("screen_inches", "Screen size", "number", "in", ()),
    ("organic", "Organic", "boolean", "", ()),
    ("waterproof", "Waterproof", "boolean", "", ()),
)  # fmt: skip
CHOICES = {slug: choices for slug, _, _, _, choices in ATTRIBUTES if choices}
OPTIONS: dict[str, tuple[Any, ...]] = {a: tuple(c[0] for c in cs) for a, cs in CHOICES.items()}
CHOICE_NAMES = {(a, c[0]): c[1] for a, choices in CHOICES.items() for c in choices}
MATERIAL_SLUGS = {c[1]: c[0] for c in CHOICES["material"]}

ADJECTIVES = {
    "clothing": ("Breezy", "Classic", "Relaxed", "Everyday", "Heritage", "Slim", "Softwash"),
    "shoes": ("Trail", "Urban", "Featherweight", "Classic", "Court", "Cloud", "Summit"),
    "home": ("Cosy", "Nordic", "Rustic", "Minimal", "Woven", "Calm", "Sunlit"),
    "kitchen": ("Everyday", "Artisan", "Speckled", "Matte", "Bistro", "Handmade"),
    "electronics": ("Compact", "Pro", "Wireless", "Slim", "Max", "Lite", "Active"),
    "outdoors": ("Alpine", "Trail", "Ridge", "Basecamp", "Storm", "Lightweight"),
}
BRANDS = ("Nimbus", "Volt", "Arcwave", "Kestrel", "Lumen", "Orbit", "Fjell", "Tern")
COMPATIBLE = ("iPhone-compatible", "USB-C", "Android-compatible", "Braided USB-C")
FEATURES = {
    "clothing": ("Pre-washed for a soft feel from day one.", "Cut for an easy, relaxed fit.",
                 "Machine washable at 30 degrees.", "Reinforced seams that keep their shape."),
    "shoes": ("Cushioned footbed for all-day comfort.", "Grippy rubber outsole.",
              "Runs true to size.", "Removable insole."),
    "home": ("Adds warmth to any room.", "Made in a small family workshop.",
             "Pairs well with natural wood and linen.", "Easy to care for."),
    "kitchen": ("Dishwasher safe.", "Microwave safe.", "Stacks neatly in the cupboard.",
                "Food-safe and free of BPA."),
    "electronics": ("Two-year warranty.", "Charges fully in under two hours.",
                    "Works with phones, tablets and laptops.", "Firmware updates over the air."),
    "outdoors": ("Packs down small.", "Tested on long trails in wet weather.",
                 "Repairable, with spare parts available.", "Light enough for fast hikes."),
}  # fmt: skip
CLOSERS = ("Free returns within 30 days.", "Ships in recyclable packaging.", "")
ARTICLE = re.compile(r"\b([Aa]) ([aeiou]|8|11)")  # "a oak lamp" -> "an oak lamp"


@dataclass(frozen=True)
class TypeSpec:
    """A product type: its attribute levels, and the word lists its products are made from."""

    slug: str
    name: str
    department: str
    product_attributes: tuple[str, ...]
    variant_attributes: tuple[str, ...]
    names: tuple[str, ...]  # templates: {adjective} {material} {noun} {brand} {compat} {capacity}
    nouns: tuple[str, ...]
    blurbs: tuple[str, ...]  # first sentence of the description; same fields, lower-cased
    euros: tuple[int, int]
    materials: tuple[str, ...] = ()
    capacities: tuple[int, ...] = ()
    screens: tuple[float, ...] = ()


WEAR = "{adjective} {material} {noun}"  # "Breezy Linen Shirt"
TYPES = {t.slug: t for t in (
    TypeSpec("t-shirt", "T-shirt", "clothing", ("material", "organic"), ("colour", "size"),
             (WEAR,), ("T-Shirt", "Tee", "Crew Tee"), ("A {adjective} {noun} in soft {material}.",),
             (15, 45), ("Cotton", "Linen", "Merino")),
    TypeSpec("shirt", "Shirt", "clothing", ("material",), ("colour", "size"), (WEAR,),
             ("Shirt", "Overshirt", "Oxford Shirt"), ("A {adjective} {noun} in {material}.",),
             (35, 95), ("Cotton", "Linen", "Denim")),
    TypeSpec("knitwear", "Knitwear", "clothing", ("material",), ("colour", "size"), (WEAR,),
             ("Jumper", "Cardigan", "Sweater"), ("A warm {noun} knitted from {material}.",),
             (45, 140), ("Wool", "Merino", "Cotton")),
    TypeSpec("jacket", "Jacket", "clothing", ("material", "waterproof"), ("colour", "size"),
             (WEAR,), ("Jacket", "Parka", "Shell Jacket"),
             ("A {adjective} {noun} for every season.",
              "A {material} {noun} that shrugs off wind and rain."), (80, 320),
             ("Nylon", "Polyester", "Wool", "Denim")),
    TypeSpec("trousers", "Trousers", "clothing", ("material",), ("colour", "size"), (WEAR,),
             ("Chinos", "Trousers", "Joggers"), ("{adjective} {noun} in {material}.",), (45, 130),
             ("Cotton", "Linen", "Denim", "Wool")),
    TypeSpec("hat", "Hat", "clothing", ("material",), ("colour",), (WEAR,),
             ("Beanie", "Cap", "Bucket Hat"), ("A {material} {noun}, one size fits most.",),
             (15, 45), ("Wool", "Cotton", "Merino")),
    TypeSpec("socks", "Socks", "clothing", ("material", "organic"), ("colour", "size"), (WEAR,),
             ("Socks", "Ankle Socks", "Hiking Socks"), ("{adjective} {noun} in {material}.",),
             (8, 25), ("Cotton", "Merino", "Bamboo")),
    TypeSpec("sneaker", "Sneaker", "shoes", ("material",), ("colour", "shoe_size"), (WEAR,),
             ("Sneaker", "Trainer", "Low-Top"), ("A {adjective} {noun} with a {material} upper.",),
             (60, 180), ("Leather", "Canvas", "Suede")),
    TypeSpec("running-shoe", "Running shoe", "shoes", ("waterproof",), ("colour", "shoe_size"),
             ("{adjective} Runner Shoe", "{brand} {noun}"), ("Running Shoe", "Road Runner"),
             ("A light, responsive shoe for road and trail.",), (80, 200)),
    TypeSpec("boot", "Boot", "shoes", ("material", "waterproof"), ("shoe_size",), (WEAR,),
             ("Boot", "Chelsea Boot", "Hiking Boot"), ("A sturdy {noun} in {material}.",),
             (90, 260), ("Leather", "Suede")),
    TypeSpec("sandal", "Sandal", "shoes", ("material",), ("shoe_size",), (WEAR,),
             ("Sandal", "Slide", "Trek Sandal"), ("{adjective} {noun}s for warm days.",),
             (30, 90), ("Leather", "Rubber")),
    TypeSpec("cushion", "Cushion", "home", ("material", "organic"), ("colour",), (WEAR,),
             ("Cushion", "Cushion Cover", "Floor Cushion"), ("A {material} {noun} to sink into.",),
             (20, 60), ("Linen", "Cotton", "Wool", "Velvet")),
    TypeSpec("throw", "Throw", "home", ("material",), ("colour",), (WEAR,), ("Throw", "Blanket"),
             ("A {adjective} {noun} woven from {material}.",), (40, 180),
             ("Wool", "Cotton", "Merino")),
    TypeSpec("lamp", "Lamp", "home", ("material",), ("colour",), (WEAR,),
             ("Table Lamp", "Floor Lamp", "Desk Lamp"), ("A {material} {noun} with a warm glow.",),
             (40, 250), ("Ceramic", "Oak", "Steel", "Glass")),
    TypeSpec("towel", "Towel", "home", ("material", "organic"), ("colour",), (WEAR,),
             ("Bath Towel", "Hand Towel", "Beach Towel"), ("A thirsty {noun} in {material}.",),
             (10, 40), ("Cotton", "Bamboo", "Linen")),
    TypeSpec("mug", "Mug", "kitchen", ("material", "capacity_ml"), ("colour",),
             ("{material} {noun} {capacity} ml", WEAR), ("Mug", "Cup", "Latte Mug"),
             ("A {material} {noun} that holds {capacity} ml.",), (8, 30),
             ("Stoneware", "Porcelain", "Glass"), capacities=(250, 300, 350, 400)),
    TypeSpec("pan", "Pan", "kitchen", ("material",), (), (WEAR,),
             ("Frying Pan", "Skillet", "Saute Pan"), ("A {material} {noun} that heats evenly.",),
             (25, 150), ("Cast Iron", "Steel")),
    TypeSpec("knife", "Knife", "kitchen", ("material",), (), ("{adjective} {noun}",),
             ("Chef Knife", "Bread Knife", "Paring Knife"), ("A {noun} with a {material} blade.",),
             (20, 160), ("Steel",)),
    TypeSpec("bottle", "Bottle", "kitchen", ("material",), ("capacity_ml", "colour"), (WEAR,),
             ("Water Bottle", "Flask", "Bottle"), ("A leak-proof {material} {noun}.",), (12, 45),
             ("Steel", "Glass", "Recycled Plastic"), capacities=(500, 750, 1000)),
    TypeSpec("cable", "Cable", "electronics", (), ("colour",),
             ("{compat} Charging Cable", "{brand} {compat} Cable"), ("Cable",),
             ("A tough {compat} charging cable.",), (8, 30)),
    TypeSpec("charger", "Charger", "electronics", (), (), ("{brand} {compat} Wall Charger",),
             ("Charger",), ("A fast {compat} wall charger.",), (15, 60)),
    TypeSpec("headphones", "Headphones", "electronics", ("waterproof",), ("colour",),
             ("{brand} {adjective} {noun}",), ("Headphones", "Earbuds"),
             ("{adjective} {noun} with rich, clear sound.",), (30, 300)),
    TypeSpec("speaker", "Speaker", "electronics", ("waterproof",), ("colour",),
             ("{brand} {adjective} {noun}",), ("Speaker", "Soundbar"),
             ("A {adjective} {noun} that fills the room.",), (30, 250)),
    TypeSpec("tablet", "Tablet", "electronics", ("screen_inches",), ("colour",),
             ("{brand} {noun} {screen} inch",), ("Tab", "Tablet"),
             ("A {screen}-inch {noun} for reading, drawing and video.",), (150, 900),
             screens=(8.3, 10.1, 11, 12.9, 13.3)),
    TypeSpec("tent", "Tent", "outdoors", ("material", "waterproof"), (), (WEAR,),
             ("Tent", "Dome Tent", "Tunnel Tent"), ("A {material} {noun} that pitches fast.",),
             (90, 600), ("Nylon", "Polyester")),
    TypeSpec("backpack", "Backpack", "outdoors", ("material", "waterproof"), ("colour",), (WEAR,),
             ("Backpack", "Daypack", "Rucksack"), ("A {adjective} {noun} in tough {material}.",),
             (40, 200), ("Nylon", "Canvas", "Polyester")),
    TypeSpec("sleeping-bag", "Sleeping bag", "outdoors", ("material",), ("colour",), (WEAR,),
             ("Sleeping Bag", "Quilt"), ("A {noun} filled for cold nights.",), (60, 350),
             ("Nylon", "Polyester")),
)}  # fmt: skip

# (slug, name, the type of its products (leaves only), children)
Node = tuple[str, str, str | None, tuple[Any, ...]]
CATEGORIES: tuple[Node, ...] = (
    ("clothing", "Clothing", None, (
        ("tops", "Tops", None, (("t-shirts", "T-shirts", "t-shirt", ()),
                                ("shirts", "Shirts", "shirt", ()),
                                ("knitwear", "Knitwear", "knitwear", ()))),
        ("outerwear", "Outerwear", "jacket", ()),
        ("trousers", "Trousers", "trousers", ()),
        ("clothing-accessories", "Accessories", None, (("hats", "Hats", "hat", ()),
                                                       ("socks", "Socks", "socks", ()))))),
    ("shoes", "Shoes", None, (
        ("sneakers", "Sneakers", "sneaker", ()), ("running-shoes", "Running", "running-shoe", ()),
        ("boots", "Boots", "boot", ()), ("sandals", "Sandals", "sandal", ()))),
    ("home", "Home", None, (
        ("textiles", "Textiles", None, (("cushions", "Cushions", "cushion", ()),
                                        ("throws", "Throws & blankets", "throw", ()))),
        ("lighting", "Lighting", "lamp", ()), ("bath", "Bath", "towel", ()))),
    ("kitchen", "Kitchen", None, (
        ("tableware", "Tableware", "mug", ()), ("cookware", "Cookware", "pan", ()),
        ("knives", "Knives", "knife", ()), ("drinkware", "Drinkware", "bottle", ()))),
    ("electronics", "Electronics", None, (
        ("audio", "Audio", None, (("headphones", "Headphones", "headphones", ()),
                                  ("speakers", "Speakers", "speaker", ()))),
        ("tablets", "Tablets", "tablet", ()),
        ("charging", "Charging", None, (("cables", "Cables", "cable", ()),
                                        ("chargers", "Chargers", "charger", ()))))),
    ("outdoors", "Outdoors", None, (
        ("camping", "Camping", None, (("tents", "Tents", "tent", ()),
                                      ("sleeping-bags", "Sleeping bags", "sleeping-bag", ()))),
        ("backpacks", "Backpacks", "backpack", ()), ("rainwear", "Rainwear", "jacket", ()),
        ("trail-bottles", "Bottles", "bottle", ()))),
)  # fmt: skip

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


@dataclass(frozen=True)
class Taxonomy:
    """Database ids of what the seed's products point at."""

    leaves: tuple[tuple[int, TypeSpec], ...]  # (category id, type) per leaf category
    type_ids: dict[str, int]


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
        generator = _Generator(taxonomy, seed)
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


class _Generator:
    """Products from one random stream: the i-th product depends only on the seed and i."""

    def __init__(self, taxonomy: Taxonomy, seed: int) -> None:
        self.taxonomy = taxonomy
        # random() only, scaled by hand: several times faster than choice() and randint().
        self.random = random.Random(seed).random  # noqa: S311 - test data, not secrets
        self.seen_slugs: set[str] = set()  # bounded: names are combinations of short word lists

    async def batch(self, start: int, ids: Sequence[int]) -> tuple[list[list[Any]], list[Row]]:
        """The products (the i-th is `start + i`) with these ids, and their variants."""
        products: list[list[Any]] = []
        variants: list[Row] = []
        for offset, product_id in enumerate(ids):
            if offset % 250 == 0:
                await asyncio.sleep(0)  # let a running COPY send its rows meanwhile
            created_at = EPOCH - timedelta(minutes=start + offset)
            product, product_variants = self.product(product_id, created_at)
            products.append(product)
            variants.extend(product_variants)
        return products, variants

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.random() * len(options))]

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def product(self, product_id: int, created_at: datetime) -> tuple[list[Any], list[Row]]:
        pick, chance = self.pick, self.random
        category_id, spec = pick(self.taxonomy.leaves)
        words: dict[str, Any] = {
            "adjective": pick(ADJECTIVES[spec.department]),
            "noun": pick(spec.nouns),
            "material": pick(spec.materials) if spec.materials else "",
            "brand": pick(BRANDS),
            "compat": pick(COMPATIBLE),
            "capacity": pick(spec.capacities) if spec.capacities else "",
            "screen": pick(spec.screens) if spec.screens else "",
        }
        attributes: dict[str, Any] = {}
        for attribute in spec.product_attributes:
            if attribute == "material":
                attributes[attribute] = MATERIAL_SLUGS[words["material"]]
            elif attribute == "capacity_ml":
                attributes[attribute] = words["capacity"]
            elif attribute == "screen_inches":
                attributes[attribute] = words["screen"]
            else:  # the booleans
                attributes[attribute] = chance() < (0.3 if attribute == "organic" else 0.5)
        name = pick(spec.names).format_map(words)
        for key in ("adjective", "noun", "material"):
            words[key] = words[key].lower()
        first = ARTICLE.sub(r"\1n \2", pick(spec.blurbs).format_map(words))
        sentences = [first[0].upper() + first[1:]]
        features = list(FEATURES[spec.department])
        for _ in range(int(chance() * 3)):
            sentences.append(features.pop(int(chance() * len(features))))
        if len(sentences) < 3:
            sentences.append(pick(CLOSERS))
        published = chance() < 0.95
        price = self.between(*spec.euros) * 100 - (1 if chance() < 0.7 else 0)  # 4899 or 4900
        variants = []
        for position, combination in enumerate(self.combinations(spec)):
            premium = sum(_premium(a, v, spec) for a, v in combination)
            stock = 0 if chance() < 0.1 else self.between(1, 200)
            label = " / ".join(_label(a, v) for a, v in combination)
            variants.append((
                product_id, f"P{product_id:07d}-{position + 1}", label, price + premium,
                CURRENCY, stock, dict(combination), position, created_at, created_at,
            ))  # fmt: skip
        product = [
            product_id, _slugify(name), name, " ".join(s for s in sentences if s), published,
            created_at, created_at, category_id, self.taxonomy.type_ids[spec.slug], attributes,
        ]  # fmt: skip  # the slug is settled per batch, by _settle_slugs
        return product, variants

    def combinations(self, spec: TypeSpec) -> list[tuple[tuple[str, Any], ...]]:
        """1 to 6 variant-level value combinations, in a stable order."""
        if not spec.variant_attributes:
            return [()]
        axes = []
        room = 6
        for index, attribute in enumerate(spec.variant_attributes):
            options = OPTIONS.get(attribute, spec.capacities)
            most = min(room, len(options), 3 if index + 1 < len(spec.variant_attributes) else 6)
            count = self.between(1, most)
            if attribute == "colour":  # any few colours, in the list's order; sizes in a run
                left = list(range(len(options)))
                drawn = [left.pop(int(self.random() * len(left))) for _ in range(count)]
                picked = [options[i] for i in sorted(drawn)]
            else:
                first = int(self.random() * (len(options) - count + 1))
                picked = list(options[first : first + count])
            axes.append([(attribute, value) for value in picked])
            room //= count
        return list(itertools.product(*axes))


def _premium(attribute: str, value: Any, spec: TypeSpec) -> int:
    """What a bigger variant adds to the price, in whole euros so prices keep their ending."""
    if attribute == "size" and value == "xxl":
        return 500
    if attribute == "capacity_ml":
        return spec.capacities.index(value) * 500
    return 0


def _label(attribute: str, value: Any) -> str:
    return f"{value} ml" if attribute == "capacity_ml" else CHOICE_NAMES[(attribute, value)]


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


async def _settle_slugs(
    conn: asyncpg.Connection, generator: _Generator, rows: list[list[Any]]
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
