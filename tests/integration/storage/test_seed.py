"""`seed_catalog` and `aioshop seed --products`: a realistic catalog, COPY-loaded, reproducible."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import redis

from storage.cache import VERSION_KEY
from storage.database import connect
from storage.seed import SeedConflict, SeedReport, seed_catalog
from tests.conftest import ADMIN_DSN, SERVICE_VARIABLES, TEST_SECRET, Template, dsn_for

PRODUCTS = 2_000
SEED = 7
SKU = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")

PRODUCTS_CHECKSUM = """
    SELECT md5(string_agg(row(id, slug, name, description, is_published, created_at, updated_at,
                              category_id, product_type_id, attributes, price_min, price_max,
                              currency, in_stock, search_vector, index_version)::text,
                          '|' ORDER BY id))
    FROM products
"""
VARIANTS_CHECKSUM = "SELECT md5(string_agg(v::text, '|' ORDER BY id)) FROM variants v"
CATEGORIES_CHECKSUM = "SELECT md5(string_agg(c::text, '|' ORDER BY id)) FROM categories c"


@dataclass(frozen=True)
class Seeded:
    dsn: str
    report: SeedReport


@pytest.fixture(scope="module")
def seeded(template: Template) -> Iterator[Seeded]:
    """One database seeded with PRODUCTS products, in batches small enough to need several."""
    name = asyncio.run(template.clone())
    dsn = dsn_for(ADMIN_DSN, name)
    report = asyncio.run(seed_catalog(dsn, PRODUCTS, seed=SEED, batch=700))
    yield Seeded(dsn, report)
    asyncio.run(template.drop(name))


@pytest.fixture
async def other_db(template: Template) -> AsyncIterator[str]:
    """A second fresh database, for comparing two runs."""
    name = await template.clone()
    yield dsn_for(ADMIN_DSN, name)
    await template.drop(name)


async def test_seed_writes_the_products_with_one_to_six_variants_each(seeded: Seeded) -> None:
    conn = await connect(seeded.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM products") == PRODUCTS
        counts = await conn.fetch(
            "SELECT p.id, count(v.id) AS n FROM products p"
            " LEFT JOIN variants v ON v.product_id = p.id GROUP BY p.id"
        )
        total = await conn.fetchval("SELECT count(*) FROM variants")
    finally:
        await conn.close()
    assert {row["n"] for row in counts} == {1, 2, 3, 4, 5, 6}
    assert seeded.report.products == PRODUCTS and seeded.report.variants == total
    steps = {step.name: step.rows for step in seeded.report.steps}
    assert steps["products"] == PRODUCTS and steps["variants"] == total
    assert steps["search"] == PRODUCTS


async def test_skus_are_unique_and_well_formed(seeded: Seeded) -> None:
    conn = await connect(seeded.dsn)
    try:
        skus = [row["sku"] for row in await conn.fetch("SELECT sku FROM variants")]
    finally:
        await conn.close()
    assert len(skus) == len(set(skus))
    assert all(SKU.match(sku) for sku in skus)


async def test_slugs_are_unique_and_mostly_bare_for_first_names(seeded: Seeded) -> None:
    conn = await connect(seeded.dsn)
    try:
        slugs = [row["slug"] for row in await conn.fetch("SELECT slug FROM products")]
    finally:
        await conn.close()
    assert len(slugs) == len(set(slugs))
    assert any(not re.search(r"-\d+$", slug) for slug in slugs)


async def test_product_price_range_follows_its_variants_after_copy(seeded: Seeded) -> None:
    conn = await connect(seeded.dsn)
    try:
        wrong = await conn.fetch(
            """
            SELECT p.id FROM products p JOIN variants v ON v.product_id = p.id
            GROUP BY p.id
            HAVING p.price_min IS DISTINCT FROM min(v.price_amount)
                OR p.price_max IS DISTINCT FROM max(v.price_amount)
                OR p.currency IS DISTINCT FROM min(v.currency)
                OR p.in_stock IS DISTINCT FROM bool_or(v.stock_on_hand > 0)
            """
        )
        prices = await conn.fetchrow(
            "SELECT bool_and(price_amount % 100 IN (0, 99)) AS endings,"
            " bool_and(stock_on_hand BETWEEN 0 AND 200) AS stock,"
            " avg((stock_on_hand = 0)::int)::float AS out_of_stock,"
            " bool_and(currency = 'EUR') AS euros FROM variants"
        )
        published = await conn.fetchval("SELECT avg(is_published::int)::float FROM products")
    finally:
        await conn.close()
    assert wrong == []
    assert prices["endings"] and prices["stock"] and prices["euros"]
    assert 0.05 < prices["out_of_stock"] < 0.15
    assert 0.9 < published < 0.99


async def test_category_paths_are_the_parent_path_and_own_id(seeded: Seeded) -> None:
    conn = await connect(seeded.dsn)
    try:
        wrong = await conn.fetch(
            """
            SELECT c.slug FROM categories c LEFT JOIN categories parent ON parent.id = c.parent_id
            WHERE c.path <> coalesce(parent.path, '{}') || c.id
            """
        )
        depths = await conn.fetch("SELECT DISTINCT array_length(path, 1) AS depth FROM categories")
        departments = await conn.fetchval("SELECT count(*) FROM categories WHERE parent_id IS NULL")
        misplaced = await conn.fetchval(
            "SELECT count(*) FROM products p WHERE EXISTS"
            " (SELECT FROM categories c WHERE c.parent_id = p.category_id)"
        )
    finally:
        await conn.close()
    assert wrong == []
    assert {row["depth"] for row in depths} == {1, 2, 3}
    assert departments == 6
    assert misplaced == 0  # products sit in leaf categories


async def test_attribute_values_follow_the_type_declarations(seeded: Seeded) -> None:
    conn = await connect(seeded.dsn)
    try:
        # Each value's attribute is declared at the level that carries it, for the product's type;
        # choice values exist; and every variant carries all of its type's variant attributes.
        undeclared = await conn.fetch(
            """
            SELECT level, owner, key FROM (
                SELECT 'variant' AS level, v.sku AS owner, p.product_type_id, e.key, e.value
                FROM variants v JOIN products p ON p.id = v.product_id,
                     jsonb_each(v.attributes) e
                UNION ALL
                SELECT 'product', p.slug, p.product_type_id, e.key, e.value
                FROM products p, jsonb_each(p.attributes) e
            ) x
            WHERE NOT EXISTS (
                SELECT FROM product_type_attributes pta JOIN attributes a ON a.id = pta.attribute_id
                WHERE pta.product_type_id = x.product_type_id AND a.slug = x.key
                  AND pta.level = x.level
                  AND (a.kind <> 'choice' OR EXISTS (
                      SELECT FROM attribute_choices c
                      WHERE c.attribute_id = a.id AND c.slug = x.value #>> '{}'))
                  AND jsonb_typeof(x.value) = CASE a.kind WHEN 'number' THEN 'number'
                                                          WHEN 'boolean' THEN 'boolean'
                                                          ELSE 'string' END)
            """
        )
        incomplete = await conn.fetchval(
            """
            SELECT count(*) FROM variants v JOIN products p ON p.id = v.product_id
            WHERE (SELECT count(*) FROM jsonb_object_keys(v.attributes))
               <> (SELECT count(*) FROM product_type_attributes pta
                   WHERE pta.product_type_id = p.product_type_id AND pta.level = 'variant')
            """
        )
        repeated = await conn.fetchval(
            "SELECT count(*) FROM (SELECT product_id, attributes FROM variants"
            " GROUP BY 1, 2 HAVING count(*) > 1) x"
        )
        sample = await conn.fetchval(
            "SELECT attributes FROM variants WHERE attributes ? 'size' AND attributes ? 'colour'"
            " LIMIT 1"
        )
    finally:
        await conn.close()
    assert undeclared == []
    assert incomplete == 0 and repeated == 0
    assert set(sample) == {"colour", "size"}


async def test_every_product_is_indexed_for_search(seeded: Seeded) -> None:
    conn = await connect(seeded.dsn)
    try:
        missing = await conn.fetchval(
            "SELECT count(*) FROM products"
            " WHERE search_vector IS NULL OR indexed_at IS NULL OR index_version <> 1"
        )
        without_facets = await conn.fetchval(
            "SELECT count(*) FROM products p WHERE search_facets = '{}' AND (attributes <> '{}'"
            " OR EXISTS (SELECT FROM variants v WHERE v.product_id = p.id"
            " AND v.attributes <> '{}'))"
        )
        found = await conn.fetchval(
            "SELECT count(*) FROM products"
            " WHERE search_vector @@ websearch_to_tsquery('english', 'linen')"
        )
    finally:
        await conn.close()
    assert missing == 0 and without_facets == 0
    assert found > 0


async def test_seeded_documents_are_what_search_index_products_makes(seeded: Seeded) -> None:
    # The seed's bulk path must give the documents the search actor would (migration 0006's
    # functions are their one definition): reindexing every product and rebuilding the
    # vocabulary changes nothing.
    await assert_documents_as_indexed(seeded.dsn, PRODUCTS)


async def assert_documents_as_indexed(dsn: str, products: int) -> None:
    """Reindex every product and rebuild search_terms, compare, and roll back (other tests
    read the seeded rows)."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE seeded_documents ON COMMIT DROP AS"
                " SELECT id, search_vector, search_facets FROM products;"
                " CREATE TEMP TABLE seeded_terms ON COMMIT DROP AS SELECT * FROM search_terms"
            )
            reindexed = await conn.fetchval(
                "SELECT count(*) FROM search_index_products(ARRAY(SELECT id FROM products))"
            )
            await conn.execute("SELECT search_rebuild_terms()")
            changed = await conn.fetch(
                "SELECT id FROM products p JOIN seeded_documents s USING (id)"
                " WHERE p.search_vector IS DISTINCT FROM s.search_vector"
                " OR p.search_facets IS DISTINCT FROM s.search_facets ORDER BY id LIMIT 5"
            )
            terms = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM search_terms) AS rebuilt,"
                " (SELECT count(*) FROM seeded_terms) AS seeded,"
                " (SELECT count(*) FROM (SELECT * FROM search_terms"
                " EXCEPT SELECT * FROM seeded_terms) d) AS missing,"
                " (SELECT count(*) FROM (SELECT * FROM seeded_terms"
                " EXCEPT SELECT * FROM search_terms) d) AS extra"
            )
            raise _RollBack
    except _RollBack:
        pass
    finally:
        await conn.close()
    assert reindexed == products
    assert changed == []
    assert terms["rebuilt"] == terms["seeded"] > 0
    assert terms["missing"] == terms["extra"] == 0


class _RollBack(Exception):
    pass


async def test_same_seed_gives_identical_catalogs(seeded: Seeded, other_db: str) -> None:
    await seed_catalog(other_db, PRODUCTS, seed=SEED)  # another batch size than `seeded`
    checksums = []
    for dsn in (seeded.dsn, other_db):
        conn = await connect(dsn)
        try:
            checksums.append(
                [
                    await conn.fetchval(query)
                    for query in (PRODUCTS_CHECKSUM, VARIANTS_CHECKSUM, CATEGORIES_CHECKSUM)
                ]
            )
        finally:
            await conn.close()
    assert checksums[0] == checksums[1]
    assert None not in checksums[0]


async def test_another_seed_gives_another_catalog(seeded: Seeded, other_db: str) -> None:
    await seed_catalog(other_db, PRODUCTS, seed=SEED + 1)
    sums = []
    for dsn in (seeded.dsn, other_db):
        conn = await connect(dsn)
        try:
            sums.append(await conn.fetchval(PRODUCTS_CHECKSUM))
        finally:
            await conn.close()
    assert sums[0] != sums[1]


async def test_second_run_adds_products_and_reuses_the_taxonomy(fresh_db: str) -> None:
    await seed_catalog(fresh_db, 300)  # an empty catalog: one transaction
    conn = await connect(fresh_db)
    try:
        taxonomy = "SELECT (SELECT count(*) FROM categories), (SELECT count(*) FROM attributes),"
        taxonomy += (
            " (SELECT count(*) FROM attribute_choices), (SELECT count(*) FROM product_types)"
        )
        before = await conn.fetchrow(taxonomy)
        await seed_catalog(fresh_db, 300)  # the same seed: the same names, new slugs and SKUs
        after = await conn.fetchrow(taxonomy)
        counts = await conn.fetchrow(
            "SELECT count(*) AS products, count(DISTINCT slug) AS slugs,"
            " count(*) FILTER (WHERE search_vector IS NULL) AS unindexed FROM products"
        )
    finally:
        await conn.close()
    assert tuple(before) == tuple(after)
    assert counts["products"] == counts["slugs"] == 600
    assert counts["unindexed"] == 0
    await assert_documents_as_indexed(fresh_db, 600)  # the second run: batch by batch


async def test_a_type_declared_otherwise_is_refused(fresh_db: str) -> None:
    conn = await connect(fresh_db)
    try:
        await conn.execute(
            """
            INSERT INTO attributes (slug, name, kind) VALUES ('size', 'Size', 'choice');
            INSERT INTO product_types (slug, name) VALUES ('t-shirt', 'T-shirt');
            INSERT INTO product_type_attributes (product_type_id, attribute_id, level)
            SELECT t.id, a.id, 'product' FROM product_types t, attributes a;
            """
        )
    finally:
        await conn.close()
    with pytest.raises(SeedConflict, match="'t-shirt' declares 'size' at the product level"):
        await seed_catalog(fresh_db, 10)


def test_cli_seeds_products_and_prints_one_line_per_step(
    fresh_db: str, redis_url: str, broker_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env |= {
        "DATABASE_URL": fresh_db,
        "REDIS_URL": redis_url,
        "BROKER_URL": broker_url,
        "SECRET_KEY": TEST_SECRET,
    }
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "seed", "--products", "120", "--seed", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [line.split()[0] for line in lines]
    # An empty catalog: its indexes are built once, after the load ("indexes").
    steps = ["taxonomy", "generate", "products", "variants", "search", "indexes", "vacuum"]
    assert names == [*steps, "total"]
    assert re.match(r"^products\s+120 rows\s+\d+\.\d\d s$", lines[2])
    assert lines[-1].startswith("total     120 products, ")
    # The seed told the catalog cache: pages cached before it are not served after it.
    with redis.Redis.from_url(redis_url) as client:
        assert client.get(VERSION_KEY) is not None


def test_cli_refuses_seed_without_products() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "seed", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "aioshop: --seed needs --products"


async def test_progress_hears_each_batch_each_index_and_the_vacuum(fresh_db: str) -> None:
    heard: list[tuple[str, int, int]] = []
    await seed_catalog(fresh_db, 250, batch=100, progress=lambda *report: heard.append(report))
    steps = [step for step, _, _ in heard]
    assert [r for r in heard if r[0] == "products"] == [
        ("products", 0, 250),
        ("products", 100, 250),
        ("products", 200, 250),
        ("products", 250, 250),
    ]
    indexes = [r for r in heard if r[0] == "indexes"]
    assert indexes[0][1] == 0 and indexes[-1][1] == indexes[-1][2] > 0
    assert [done for _, done, _ in indexes] == list(range(len(indexes)))
    assert heard[-2:] == [("vacuum", 0, 1), ("vacuum", 1, 1)]
    assert steps.index("indexes") > steps.index("products")  # built after the load

    heard.clear()  # into a catalog with products: batches are indexed beside the load
    await seed_catalog(fresh_db, 150, batch=100, progress=lambda *report: heard.append(report))
    assert [r for r in heard if r[0] == "products"][-1] == ("products", 150, 150)
    assert [r for r in heard if r[0] == "search"][-1] == ("search", 150, 150)
    assert "indexes" not in {step for step, _, _ in heard}
