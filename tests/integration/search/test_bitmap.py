"""The in-process index (search.bitmap) against the SQL path on a seeded catalog: the same answers
over generated queries, changes that show once the refresh ran, and the fallbacks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import orjson
import pytest

from configs.settings import Settings
from search.backend import SORTS, SearchQuery, SearchResult
from search.bitmap import QUERIES, REFRESH_ERRORS, BitmapSearch, CatalogReference
from storage.catalog_reads import first_images
from storage.database import Executor, create_pool, statement_pool
from storage.seed import seed_catalog
from tests.conftest import ADMIN_DSN, Template, dsn_for
from tests.support.catalog import build_catalog
from web import catalog as web_catalog
from web.app import create_app
from web.keys import SEARCH

PRODUCTS = 2_000


@pytest.fixture(scope="module")
def catalog_db(template: Template) -> Iterator[str]:
    """One seeded catalog for the module (seeding is the slow part), with some products
    unpublished and out of stock so every filter has something to do."""
    name = asyncio.run(template.clone())
    dsn = dsn_for(ADMIN_DSN, name)

    async def seed() -> None:
        await seed_catalog(dsn, PRODUCTS, seed=3)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("UPDATE products SET is_published = false WHERE id % 17 = 0")
            await conn.execute("UPDATE variants SET stock_on_hand = 0 WHERE product_id % 5 = 0")
            # images for some products (two: the first by position), so a page's thumbnails
            # (read in the index's page statement) are compared too
            await conn.execute(
                "INSERT INTO product_images (product_id, position, path, width, height, alt)"
                " SELECT id, 1 - n, 'p/' || id || '-' || n || '.jpg', 100 + n, 80, 'alt ' || n"
                " FROM products, generate_series(0, 1) n WHERE id % 3 = 0"
            )
        finally:
            await conn.close()

    asyncio.run(seed())
    yield dsn
    asyncio.run(template.drop(name))


@pytest.fixture
async def search(catalog_db: str) -> AsyncIterator[BitmapSearch]:
    primary = await create_pool(catalog_db, 3)
    replica = statement_pool(catalog_db, 3)
    backend = BitmapSearch(replica, primary, refresh_seconds=0.05)
    try:
        await backend.build()
        yield backend
    finally:
        await replica.close()
        await primary.close()


async def vocabulary(dsn: str) -> dict[str, list[Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "terms": [
                r[0] for r in await conn.fetch("SELECT term FROM search_terms ORDER BY term")
            ],
            "skus": [
                r[0] for r in await conn.fetch("SELECT sku FROM variants ORDER BY id LIMIT 300")
            ],
            "categories": [
                (r[0], r[1])
                for r in await conn.fetch("SELECT id, slug FROM categories ORDER BY id")
            ],
            "facets": [
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT f FROM products, unnest(search_facets) f ORDER BY f"
                )
            ],
        }
    finally:
        await conn.close()


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(len(word) - 1)
    kind = rng.random()
    if kind < 0.4:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind < 0.7:
        return word[:i] + word[i + 1 :]
    return word[:i] + rng.choice("aeioustr") + word[i + 1 :]


def generated_text(rng: random.Random, vocab: dict[str, list[Any]]) -> str:
    terms: list[str] = vocab["terms"]
    kind = rng.random()
    word = rng.choice(terms)
    if kind < 0.1:
        return ""
    if kind < 0.3:
        return word
    if kind < 0.45:
        return typo(rng, word)
    if kind < 0.6:
        return word[: rng.randint(2, max(2, len(word) - 1))]
    if kind < 0.75:
        return f"{rng.choice(terms)} {word}"
    if kind < 0.82:
        sku: str = rng.choice(vocab["skus"])
        return sku if rng.random() < 0.5 else sku[: rng.randint(3, len(sku))].lower()
    if kind < 0.88:
        return f"{typo(rng, rng.choice(terms))} {word[:3]}"
    if kind < 0.92:
        return f"the {word}"
    if kind < 0.95:
        return f'"{word}"'  # websearch syntax: the SQL path
    odd: list[str] = ["zzzqx", "a", "unknownword", "running shoes", word.upper()]
    return rng.choice(odd)


def generated_query(rng: random.Random, vocab: dict[str, list[Any]]) -> SearchQuery:
    text = generated_text(rng, vocab)
    category = None
    category_ids = None
    if rng.random() < 0.3:
        category = rng.choice(vocab["categories"])[1]
    elif rng.random() < 0.1:
        category_ids = tuple(c[0] for c in rng.sample(vocab["categories"], 3))
    attributes: dict[str, tuple[str, ...]] = {}
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        slug, _, value = rng.choice(vocab["facets"]).partition("=")
        attributes[slug] = (*attributes.get(slug, ()), value)
    price_min = price_max = None
    if rng.random() < 0.25:
        price_min = rng.choice([None, 0, 500, 1000, 2499, 2500, 7000])
        price_max = rng.choice([None, 999, 2500, 4999, 20000, 100000])
    sorts = [s for s in SORTS if text or s != "relevance"] or ["newest"]
    return SearchQuery(
        text=text,
        category=category,
        category_ids=category_ids,
        attributes=attributes,
        price_min=price_min,
        price_max=price_max,
        in_stock=rng.choice([None, None, True, False]),
        sort=rng.choice(sorts if rng.random() < 0.6 else ["relevance", *sorts]),
        limit=rng.choice([3, 10, 24]),
    )


async def same(bitmap: SearchResult, sql: SearchResult, reader: Executor) -> bool:
    """The same answer: the index's hits carry their first image (SearchResult.images), the SQL
    path's search leaves them to storage.catalog_reads.first_images."""
    if bitmap.backend == "bitmap":
        assert bitmap.images
        images = await first_images(reader, [hit.product_id for hit in sql.hits])
        sql = replace(
            sql,
            hits=[hit._replace(image=images.get(hit.product_id)) for hit in sql.hits],
            images=True,
        )
    return replace(bitmap, backend=sql.backend) == sql


async def compare_pages(
    search: BitmapSearch, query: SearchQuery, answered: dict[str, int], pages: int = 3
) -> list[SearchResult]:
    """Up to `pages` pages of `query` (by their cursors) from the index's backend and the SQL
    path, asserted the same (or both failing alike); the index's pages, counted in `answered`
    by the backend that answered."""
    found_pages: list[SearchResult] = []
    for _page in range(pages):
        try:
            sql = await PostgresSearchPath.search(search, query)
        except Exception as exc:
            with pytest.raises(type(exc)):
                await search.search(query)
            break
        found = await search.search(query)
        answered[found.backend] += 1
        assert await same(found, sql, search.reader), (query, found, sql)
        found_pages.append(found)
        if found.next_after is None:
            break
        query = replace(query, after=found.next_after)
    return found_pages


# How the index counts facets and ranks (search.bitmap_index): as configured, every part from its
# products (search.bitmap_facets), every part by bitmap intersections, the counts of every
# text's base kept and reused (CountsMemo), nothing kept between searches (keep: False), or
# nothing kept and every text base's counts from a lexeme's and the difference, however large.
COUNTING: dict[str, dict[str, Any]] = {
    "configured": {},
    "by products": {"sparse": 0},
    "by bitmaps": {"sparse": 10**12},
    "kept": {"keep_min": 0, "keep_from": 10**12},
    "nothing kept": {"keep": False},
    "by lexemes": {"keep": False, "lexeme_share": 10**12, "lexeme_apart": 0},
}


def count_facets(how: str, search: BitmapSearch) -> None:
    """Set the fixture's own index (built for this test) to count `how`."""
    assert search.index is not None
    for name, value in COUNTING[how].items():
        setattr(search.index, name, value)


@pytest.mark.parametrize("counting", COUNTING)
async def test_the_index_answers_as_the_sql_path(
    search: BitmapSearch, catalog_db: str, counting: str
) -> None:
    count_facets(counting, search)
    vocab = await vocabulary(catalog_db)
    rng = random.Random(20261207)
    answered = {"bitmap": 0, "postgres": 0}
    pages = thumbnails = 0
    for _ in range(1_500 if counting == "configured" else 500):
        for found in await compare_pages(search, generated_query(rng, vocab), answered):
            thumbnails += sum(hit.image is not None for hit in found.hits)
            pages += 1
    print(f"pages compared: {pages}, answered by {answered}")
    assert answered["bitmap"] > 0.8 * pages, answered
    assert thumbnails > pages, thumbnails  # the pages' first images were compared too


def generated_list(rng: random.Random, vocab: dict[str, list[Any]]) -> SearchQuery:
    """A product list (no text, no facets, a sort other than relevance): what the index pages
    and answers from its cards."""
    query = generated_query(rng, vocab)
    sort = rng.choice([s for s in SORTS if s != "relevance"])
    return replace(query, text="", facets=False, sort=sort)


async def test_lists_from_the_index_answer_as_the_sql_path(
    search: BitmapSearch, catalog_db: str
) -> None:
    """Product lists over generated filters, three pages each by their cursors: the same hits,
    order, first images and cursors as the SQL path's LIST, from kept cards or read ones."""
    vocab = await vocabulary(catalog_db)
    answered = {"bitmap": 0, "postgres": 0}
    pages = 0
    for _round in range(2):  # the second round reads the cards kept by the first
        rng = random.Random(20261208)
        for _ in range(400):
            pages += len(await compare_pages(search, generated_list(rng, vocab), answered))
    print(f"list pages compared: {pages}, answered by {answered}, cards kept {len(search.cards)}")
    assert answered["bitmap"] > 0.9 * pages, answered
    assert len(search.cards) > 0


async def test_a_kept_card_follows_its_product(search: BitmapSearch, catalog_db: str) -> None:
    """A list answered twice reads its cards once; a change to a shown product (name, price,
    stock, images) shows in the next list once the refresh ran, as the SQL path reads it."""
    query = SearchQuery(text="", sort="newest", limit=5, facets=False)
    counting = CountingReader(search.reader)
    search.reader = counting
    conn = await asyncpg.connect(catalog_db)
    restore: list[tuple[Any, ...]] = []
    try:
        first = await search.search(query)
        assert first.backend == "bitmap" and len(counting.statements) == 1
        again = await search.search(query)
        assert again == first and len(counting.statements) == 1  # from the kept cards
        pid = first.hits[0].product_id
        second = first.hits[1].product_id
        restore += [
            ("UPDATE products SET name = $2 WHERE id = $1", pid, first.hits[0].name),
            *[
                ("UPDATE variants SET stock_on_hand = $2 WHERE id = $1", v["id"], v["stock"])
                for v in await conn.fetch(
                    "SELECT id, stock_on_hand AS stock FROM variants WHERE product_id = $1",
                    second,
                )
            ],
        ]
        in_stock = SearchQuery(text="", in_stock=True, limit=5)  # with facets: kept counts
        counted = await search.search(in_stock)
        assert counted.backend == "bitmap" and counted.facets is not None
        await conn.execute("UPDATE products SET name = 'Renamed Thing' WHERE id = $1", pid)
        await conn.execute("UPDATE variants SET stock_on_hand = 0 WHERE product_id = $1", second)
        await conn.execute(
            "INSERT INTO product_images (product_id, position, path, width, height, alt)"
            " VALUES ($1, -5, 'p/new.jpg', 10, 10, 'new first')",
            second,
        )
        await search.refresh()
        changed = await search.search(query)
        assert await same(changed, await PostgresSearchPath.search(search, query), search.reader)
        assert changed.hits[0].name == "Renamed Thing"
        recounted = await search.search(in_stock)  # one product fewer in stock: counted again
        assert recounted.total == (counted.total or 0) - 1
        assert await same(
            recounted, await PostgresSearchPath.search(search, in_stock), search.reader
        )
        assert changed.hits[1].in_stock is False and changed.hits[1].image is not None
        assert changed.hits[1].image.path == "p/new.jpg"
        # an image's alt text alone (an UPDATE of product_images)
        await conn.execute("UPDATE product_images SET alt = 'changed alt' WHERE path = 'p/new.jpg'")
        await search.refresh()
        altered = await search.search(query)
        assert altered.hits[1].image is not None and altered.hits[1].image.alt == "changed alt"
        await conn.execute("DELETE FROM product_images WHERE path = 'p/new.jpg'")
        await search.refresh()
        assert await same(
            await search.search(query),
            await PostgresSearchPath.search(search, query),
            search.reader,
        )
    finally:
        for statement, *args in restore:  # the module's other tests read this catalog
            await conn.execute(statement, *args)
        await conn.close()


class PostgresSearchPath:
    """The SQL path of a BitmapSearch (its PostgresSearch.search)."""

    @staticmethod
    async def search(backend: BitmapSearch, query: SearchQuery) -> SearchResult:
        from search.postgres import PostgresSearch

        return await PostgresSearch.search(backend, query)


async def test_a_change_shows_once_the_refresh_ran(search: BitmapSearch, catalog_db: str) -> None:
    conn = await asyncpg.connect(catalog_db)
    try:
        product = await conn.fetchrow(
            "SELECT id, name FROM products WHERE is_published AND in_stock ORDER BY id LIMIT 1"
        )
        word = product["name"].split()[0].lower()
        query = SearchQuery(text=word, in_stock=True, limit=100)
        before = await search.search(query)
        assert before.backend == "bitmap"
        # as the search actor would: stock gone (trigger), unpublished, a new price
        await conn.execute(
            "UPDATE variants SET stock_on_hand = 0 WHERE product_id = $1", product["id"]
        )
        await search.refresh()
        after = await search.search(query)
        assert after.backend == "bitmap" and after.total == (before.total or 0) - 1
        assert await same(after, await PostgresSearchPath.search(search, query), search.reader)
        await conn.execute("UPDATE products SET is_published = false WHERE id = $1", product["id"])
        await conn.execute(
            "UPDATE variants SET price_amount = 123456 WHERE product_id = $1", product["id"]
        )
        await search.refresh()
        everything = SearchQuery(text=word, price_min=123456, limit=100)
        assert (await search.search(everything)).total == 0
        await conn.execute("UPDATE products SET is_published = true WHERE id = $1", product["id"])
        await search.refresh()
        found = await search.search(everything)
        pid = product["id"]
        assert found.backend == "bitmap" and [h.product_id for h in found.hits] == [pid]
        # an attribute value: the search actor rebuilds the document (new postings)
        slug = await conn.fetchval("SELECT search_facets[1] FROM products WHERE id = $1", pid)
        slug = slug.split("=", 1)[0]
        await conn.execute(
            "UPDATE products SET attributes = attributes || jsonb_build_object($2::text, 'zz9')"
            " WHERE id = $1",
            pid,
            slug,
        )
        await conn.execute("SELECT search_index_products(ARRAY[$1::bigint])", pid)
        await search.refresh()
        by_value = SearchQuery(text=word, attributes={slug: ("zz9",)}, limit=100)
        valued = await search.search(by_value)
        assert valued.backend == "bitmap" and [h.product_id for h in valued.hits] == [pid]
        assert await same(valued, await PostgresSearchPath.search(search, by_value), search.reader)
        # a query that needs a newer commit than the index holds: the SQL path
        lsn = int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
        ahead = await search.search(replace(everything, fresh_for=lsn + 10_000_000))
        assert ahead.backend == "postgres" and ahead.hits == found.hits
    finally:
        await conn.close()


@pytest.mark.parametrize("counting", ["kept", "by lexemes"])
async def test_kept_facet_counts_follow_changes(
    search: BitmapSearch, catalog_db: str, counting: str
) -> None:
    """The facet counts kept for a text's base and its tiers' rank levels (every one kept
    here), or a lexeme's counts (every text base's counts from them), follow products that go
    out of stock, are unpublished, change price bucket or category, and a changed document: the
    same answers as the SQL path's after each refresh."""
    count_facets(counting, search)
    assert search.index is not None
    memo = search.index._kept_counts if counting == "kept" else search.index._lexeme_counts
    conn = await asyncpg.connect(catalog_db)
    try:
        word = await conn.fetchval(
            "SELECT term FROM search_terms t WHERE length(term) > 3 ORDER BY"
            " (SELECT count(*) FROM products p WHERE p.search_vector @@ to_tsquery('english',"
            " t.term)) DESC, term LIMIT 1"
        )
        ids = [
            r[0]
            for r in await conn.fetch(
                "SELECT id FROM products WHERE is_published AND in_stock"
                " AND search_vector @@ to_tsquery('english', $1) ORDER BY id LIMIT 8",
                word,
            )
        ]
        slug = await conn.fetchval("SELECT search_facets[1] FROM products WHERE id = $1", ids[0])
        slug = slug.split("=", 1)[0]
        queries = [
            SearchQuery(text=word, in_stock=in_stock, attributes=attributes, limit=5)
            for in_stock in (None, True, False)
            for attributes in ({}, {slug: ("zz9",)})
        ]

        async def check() -> None:
            for query in queries:
                found = await search.search(query)
                assert found.backend == "bitmap"
                sql = await PostgresSearchPath.search(search, query)
                assert await same(found, sql, search.reader), query

        await check()  # every base's counts kept, or its lexeme's
        kept = len(memo)
        assert kept >= 3 if counting == "kept" else kept >= 2, kept
        other_category = await conn.fetchval(
            "SELECT id FROM categories WHERE id <> (SELECT category_id FROM products"
            " WHERE id = $1) ORDER BY id LIMIT 1",
            ids[3],
        )
        await conn.execute("UPDATE variants SET stock_on_hand = 0 WHERE product_id = $1", ids[0])
        await conn.execute("UPDATE products SET is_published = false WHERE id = $1", ids[1])
        await conn.execute(
            "UPDATE variants SET price_amount = price_amount + 25000 WHERE product_id = $1", ids[2]
        )
        await conn.execute(
            "UPDATE products SET category_id = $2 WHERE id = $1", ids[3], other_category
        )
        await conn.execute("UPDATE variants SET stock_on_hand = 0 WHERE product_id = $1", ids[4])
        await conn.execute("UPDATE variants SET stock_on_hand = 7 WHERE product_id = $1", ids[4])
        await search.refresh()
        assert len(memo) == kept  # moved
        await check()
        # a document changes (an attribute value): the kept counts are made again
        await conn.execute(
            "UPDATE products SET attributes = attributes || jsonb_build_object($2::text, 'zz9')"
            " WHERE id = $1",
            ids[5],
            slug,
        )
        # ... and a product without the word gets it in its name: the best of its tier now
        newcomer = await conn.fetchval(
            "SELECT id FROM products WHERE is_published AND in_stock"
            " AND NOT search_vector @@ to_tsquery('english', $1) ORDER BY id LIMIT 1",
            word,
        )
        await conn.execute(
            "UPDATE products SET name = $2 WHERE id = $1", newcomer, f"{word} {word} {word}"
        )
        await conn.execute("SELECT search_index_products(ARRAY[$1::bigint, $2])", ids[5], newcomer)
        await search.refresh()
        assert newcomer in [h.product_id for h in (await search.search(queries[0])).hits]
        await check()
    finally:
        await conn.close()


async def test_the_refresh_loop_survives_an_exception(
    search: BitmapSearch, catalog_db: str
) -> None:
    """A real failure of the refresh (its change log gone for a moment: PostgreSQL answers
    UndefinedTable) is counted, and the loop goes on: once the table is back, it catches up."""
    before = REFRESH_ERRORS._value.get()
    conn = await asyncpg.connect(catalog_db)
    search.refresh_seconds = 0.01
    task = asyncio.create_task(search.run())
    try:
        async with asyncio.timeout(30):
            while search.index is None:  # built first (the fixture's index or a new one)
                await asyncio.sleep(0.02)
            await conn.execute("ALTER TABLE search_changes RENAME TO search_changes_away")
            while REFRESH_ERRORS._value.get() < before + 2:  # failed, and failed again
                await asyncio.sleep(0.02)
            await conn.execute("ALTER TABLE search_changes_away RENAME TO search_changes")
            now = int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'"))
            while search.lsn < now:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await conn.execute("ALTER TABLE IF EXISTS search_changes_away RENAME TO search_changes")
        await conn.close()
    assert search.index is not None


async def test_the_web_app_answers_from_its_index(
    aiohttp_client: Any, settings_for: Callable[..., Settings], fresh_db: str
) -> None:
    await build_catalog(fresh_db)
    app = create_app(settings_for(fresh_db, search_index="bitmap", catalog_cache_seconds=0))
    client = await aiohttp_client(app)
    try:
        backend = app[SEARCH]
        assert isinstance(backend, BitmapSearch)
        async with asyncio.timeout(60):
            while backend.index is None:
                await asyncio.sleep(0.05)
        answered = QUERIES.labels("bitmap")._value.get()
        resp = await client.get("/api/v1/search", params={"q": "shoe", "attr.colour": "red"})
        body = await resp.json()
        assert resp.status == 200, body
        assert {item["slug"] for item in body["items"]} == {"run-shoe", "office-shoe"}
        assert body["total"] == 2
        assert QUERIES.labels("bitmap")._value.get() == answered + 1
    finally:
        await client.close()


class CountingReader:
    """An Executor that counts the statements run through it (the fill's reader)."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.statements: list[str] = []

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        self.statements.append(query)
        return await self.inner.fetch(query, *args, timeout=timeout)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        self.statements.append(query)
        return await self.inner.fetchrow(query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        self.statements.append(query)
        return await self.inner.fetchval(query, *args, timeout=timeout)


async def test_a_search_from_the_index_reads_no_statement_with_current_labels(
    aiohttp_client: Any,
    settings_for: Callable[..., Settings],
    fresh_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once its words are resolved and its cards kept, a search with facets from the index reads
    nothing (ranked by the index, hits from the cards); the attribute and category names it is
    labelled with come from the index's vocabulary, follow staff changes once the refresh ran,
    and the body is the SQL path's."""
    await build_catalog(fresh_db)
    conn = await asyncpg.connect(fresh_db)
    app = create_app(settings_for(fresh_db, search_index="bitmap", catalog_cache_seconds=0))
    client = await aiohttp_client(app)
    sql_client = await aiohttp_client(
        create_app(settings_for(fresh_db, search_index="sql", catalog_cache_seconds=0))
    )
    readers: list[CountingReader] = []
    real_reader = web_catalog._reader

    async def counting(request: Any, fresh_for: int | None) -> Executor:
        reader = CountingReader(await real_reader(request, fresh_for))
        readers.append(reader)
        return reader

    async def bodies(params: dict[str, str]) -> tuple[int, bytes, bytes]:
        resp = await client.get("/api/v1/search", params=params)
        sql_resp = await sql_client.get("/api/v1/search", params=params)
        assert resp.status == sql_resp.status
        return resp.status, await resp.read(), await sql_resp.read()

    async def refreshed(backend: BitmapSearch, check: Callable[[CatalogReference], bool]) -> None:
        async with asyncio.timeout(30):
            while (reference := backend.reference(None)) is None or not check(reference):
                await asyncio.sleep(0.05)

    try:
        backend = app[SEARCH]
        assert isinstance(backend, BitmapSearch)
        async with asyncio.timeout(60):
            while backend.index is None:
                await asyncio.sleep(0.05)
        params = {"q": "shoe", "attr.colour": "red"}
        await bodies(params)  # the words resolved and normalised, the ranks and cards kept
        monkeypatch.setattr(web_catalog, "_reader", counting)
        status, body, sql_body = await bodies(params)
        assert status == 200 and body == sql_body
        # ranked by the index, hits from its kept cards: no statement at all
        assert len(readers[0].statements) == 0, readers[0].statements
        assert len(readers[1].statements) > 1  # the SQL path's
        backend.cards.clear()  # cards forgotten: one statement reads them (the index's reader)
        status, body, sql_body = await bodies(params)
        assert status == 200 and body == sql_body and len(readers[2].statements) == 0
        # staff rename a category and a colour, and take size off the filters
        running = await conn.fetchval("SELECT id FROM categories WHERE slug = 'running'")
        await conn.execute("UPDATE categories SET name = 'Road Running' WHERE slug = 'running'")
        await conn.execute("UPDATE attribute_choices SET name = 'Crimson' WHERE slug = 'red'")
        await conn.execute("UPDATE attributes SET is_filterable = false WHERE slug = 'size'")
        await refreshed(
            backend,
            lambda r: (
                r.category_names[running]["name"] == "Road Running"
                and [a.slug for a in r.attributes] == ["colour"]
                and r.attributes[0].choices[0].name == "Crimson"
            ),
        )
        status, body, sql_body = await bodies({**params, "attr.size": "42"})
        assert status == 400 and body == sql_body
        status, body, sql_body = await bodies(params)
        assert status == 200 and body == sql_body
        assert b"Road Running" in body and b"Crimson" in body
        # and size filterable again
        await conn.execute("UPDATE attributes SET is_filterable = true WHERE slug = 'size'")
        await refreshed(backend, lambda r: [a.slug for a in r.attributes] == ["colour", "size"])
        status, body, sql_body = await bodies({**params, "attr.size": "42"})
        assert status == 200 and body == sql_body
        assert orjson.loads(body)["total"] == 1
    finally:
        await conn.close()
        await client.close()
        await sql_client.close()
