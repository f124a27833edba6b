"""Benchmark of the catalog reads at 100,000 and 1,000,000 seeded products, against a bare
aiohttp endpoint.

A script, not a test: it prints figures and asserts nothing. Each row is measured with wrk
(2 threads) against one `aioshop web` server (its supervisor and web processes), as a ratio to a
bare aiohttp JSON endpoint measured by the same tool in the same run. Load tool, servers,
PostgreSQL and Redis share the machine's cores, so compare ratios, not absolute figures.

This machine's speed drifts by a quarter within a minute (a bare endpoint alone: 7,200 to 11,900
req/s in six 5-second runs), so a ratio of two runs made a minute apart says little. Each row is
therefore measured in rounds, each round the bare endpoint and then the row, back to back; the
table gives the median of the rounds (rate, p50, p99 and the ratio of each round's pair) and the
range of the ratios.

Every row runs at each catalog size in turn (its own database and servers), then a side-by-side
table compares the sizes: the largest size's share of bare against the smallest's, marked CLIFF
when it is below half (issue 17: no row may fall by more than half at 1,000,000). After a size's
rows the memory of the web processes (resident now and their peak) is printed too.

    make bench-catalog          # installs wrk (Debian) if missing, then:
    .venv/bin/python -m tests.bench.catalog_bench [--products 100000,1000000] [--seconds 5]
        [--rounds 3] [--markdown PATH] [--rows "deep pages,rare filter"]

The seeded databases (`aioshop_bench_catalog_<N>` on TEST_DATABASE_URL's server) are kept between
runs (seeding takes about a minute for 100,000 and about ten for 1,000,000; see README); --fresh
seeds them again. Redis DB 10 is flushed before each size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
import redis

from tests.bench.support import (
    ADMIN_DSN,
    Load,
    Memory,
    clean_env,
    dsn_for,
    execute,
    process_memory,
    run_cli,
    served,
    wrk,
    wrk_path,
)

REDIS_URL = "redis://127.0.0.1:6379/10"
SERVER_ENV = {
    "REDIS_URL": REDIS_URL,
    "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",  # settings only: no worker runs
    "SECRET_KEY": "bench-secret-" + "k" * 27,
    "LOG_LEVEL": "warning",
    "LOG_FORMAT": "json",
}
SORTS = ("newest", "price_asc", "price_desc", "name")
SIZES = "100000,1000000"
DEEP_PAGE = 200  # how many next_cursor links the deep-page row follows before measuring
CLIFF = 0.5  # a row whose share of bare falls below this at the largest size is a cliff


@dataclass(frozen=True)
class Row:
    name: str
    server: str  # "bare", "cached" or "uncached"
    paths: list[str]
    connections: int
    target: str = ""  # e.g. ">= 25%" (of the bare rate) or "p99 <= 50 ms"
    warm: bool = False  # request every path once before measuring (fills the cache)
    key: str = ""  # what pairs the row across catalog sizes, when its name holds counts
    signed_in: bool = False  # as a signed-in customer (the session cookie of `customer_cookie`)

    @property
    def label(self) -> str:
        return self.key or self.name


async def ensure_catalog(
    products: int, fresh: bool, prefix: str = "aioshop_bench_catalog", migrate: bool = True
) -> str:
    """A migrated database `<prefix>_<products>` seeded with `products` products, kept
    (`migrate` False: an existing one used as it is, read only)."""
    name = f"{prefix}_{products}"
    dsn = dsn_for(name)
    if not fresh:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except asyncpg.InvalidCatalogNameError:
            pass
        else:
            try:
                have = await conn.fetchval("SELECT count(*) FROM products")
            finally:
                await conn.close()
            if have >= products:
                print(f"catalog: reusing {name} ({have} products)")
                if migrate:
                    run_cli(clean_env(SERVER_ENV | {"DATABASE_URL": dsn}), "migrate")  # new ones
                return dsn
    if not migrate:
        raise SystemExit(f"--no-migrate: {name} has no catalog of {products} products to read")
    await execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await execute(ADMIN_DSN, f'CREATE DATABASE "{name}"')
    env = clean_env(SERVER_ENV | {"DATABASE_URL": dsn})
    run_cli(env, "migrate")
    print(f"catalog: seeding {products} products into {name} ...", flush=True)
    begun = time.monotonic()
    output = run_cli(env, "seed", "--products", str(products), "--seed", "1")
    # The command's report (rows and seconds per step), without its progress lines.
    print("\n".join(line for line in output.splitlines() if "%" not in line))
    print(f"catalog: seeded {products} products in {time.monotonic() - begun:.0f} s", flush=True)
    return dsn


async def sample_paths(dsn: str) -> dict[str, list[str]]:
    """Realistic request mixes drawn from the seeded catalog (deterministic)."""
    rng = random.Random(7)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT setseed(0.42)")
        slugs = [r["slug"] for r in await conn.fetch(
            "SELECT slug FROM products WHERE is_published ORDER BY random() LIMIT 1000"
        )]  # fmt: skip
        categories = [r["slug"] for r in await conn.fetch(
            "SELECT c.slug FROM categories c WHERE EXISTS"
            " (SELECT FROM products p WHERE p.category_id = c.id) ORDER BY c.slug"
        )]  # fmt: skip
        names = [r["name"] for r in await conn.fetch(
            "SELECT name FROM products WHERE is_published ORDER BY random() LIMIT 400"
        )]  # fmt: skip
        facets = [r["f"] for r in await conn.fetch(
            "SELECT DISTINCT f FROM (SELECT unnest(search_facets) f FROM products"
            " WHERE is_published LIMIT 50000) s JOIN attributes a"
            " ON a.slug = split_part(f, '=', 1) AND a.is_filterable ORDER BY f"
        )]  # fmt: skip
        biggest = await conn.fetchval(BIGGEST_TOP_CATEGORY)
        rare = await rare_filters(conn)
    finally:
        await conn.close()
    searches = []
    for name in names[:200]:
        words = [w for w in name.lower().split() if w.isalpha() and len(w) > 2]
        if not words:
            continue
        word = rng.choice(words)
        kind = rng.random()
        if kind < 0.2 and len(word) > 4:  # a typo: two letters swapped
            i = rng.randrange(1, len(word) - 2)
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind < 0.4:  # typed so far
            word = word[: max(3, len(word) // 2)]
        elif kind < 0.6 and len(words) > 1:
            word = " ".join(words[:2])
        params = {"q": word}
        if rng.random() < 0.3 and facets:
            slug, _, value = rng.choice(facets).partition("=")
            params[f"attr.{slug}"] = value
        if rng.random() < 0.2:
            params["in_stock"] = "true"
        searches.append("/api/v1/search?" + urlencode(params))
    lists = [
        "/api/v1/products?" + urlencode({"category": c, "sort": s, "limit": 24})
        for c in categories
        for s in SORTS
    ]
    return {
        "detail": [f"/api/v1/products/{slug}" for slug in slugs],
        "lists": lists,
        "searches": searches,
        "pages": [f"/c/{c}" for c in categories],
        "subtree": [
            "/api/v1/products?" + urlencode({"category": biggest, "sort": s, "limit": 24})
            for s in SORTS
        ],
        "rare": rare,
        "product_pages": [f"/products/{slug}" for slug in slugs],
        "search_pages": ["/search?" + path.partition("?")[2] for path in searches],
    }


# The top-level category with the most published products in its subtree: the category page
# that reads the most categories' indexes at once (and the deep pages' category).
BIGGEST_TOP_CATEGORY = """
    SELECT root.slug FROM categories root
    JOIN categories sub ON sub.path @> ARRAY[root.id]
    JOIN products p ON p.category_id = sub.id AND p.is_published
    WHERE root.parent_id IS NULL
    GROUP BY root.slug ORDER BY count(*) DESC, root.slug LIMIT 1
"""
# Pairs of a common value of a filterable attribute and a price band of 1.00 (in minor units)
# that only a handful of its products fall in, for the commonest values: alone each part matches
# many products (a tenth of the catalog, a few hundred), together almost none.
RARE_FILTERS = """
    WITH pairs AS (
        SELECT f, price_min / 100 AS band, count(*) AS n
        FROM products p, unnest(p.search_facets) AS f
        WHERE p.is_published AND p.price_min IS NOT NULL
        GROUP BY f, band
    ),
    facet AS (SELECT f, sum(n) AS total FROM pairs GROUP BY f),
    band AS (
        SELECT price_min / 100 AS band, count(*) AS total FROM products
        WHERE is_published GROUP BY 1
    )
    SELECT f, band, n FROM (
        SELECT DISTINCT ON (pairs.f) pairs.f, pairs.band, pairs.n, facet.total
        FROM pairs JOIN facet USING (f) JOIN band USING (band)
        JOIN attributes a ON a.slug = split_part(pairs.f, '=', 1) AND a.is_filterable
        WHERE pairs.n BETWEEN 3 AND 8
        ORDER BY pairs.f, band.total DESC, pairs.band
    ) chosen
    ORDER BY total DESC, f LIMIT $1
"""


async def rare_filters(conn: asyncpg.Connection, count: int = 8) -> list[str]:
    """Product lists (every sort) over the whole catalog filtered by an attribute value and a
    price band that match 3 to 8 products together: the filter that matches almost nothing."""
    paths = []
    for found in await conn.fetch(RARE_FILTERS, count):
        slug, _, value = found["f"].partition("=")
        filters = {
            f"attr.{slug}": value,
            "price_min": found["band"] * 100,
            "price_max": found["band"] * 100 + 99,
        }
        paths += [
            "/api/v1/products?" + urlencode({**filters, "sort": sort, "limit": 24})
            for sort in SORTS
        ]
    return paths


async def deep_pages(base_url: str, first_pages: Sequence[str], depth: int) -> list[str]:
    """The last ten of `depth` pages of each list, reached by following next_cursor from its
    first page (fewer when a list ends sooner)."""
    async with aiohttp.ClientSession() as http:

        async def follow(path: str) -> list[str]:
            pages = [path]
            for _ in range(depth - 1):
                async with http.get(base_url + pages[-1]) as resp:
                    cursor = (await resp.json())["next_cursor"]
                if cursor is None:
                    break
                pages.append(path + "&" + urlencode({"cursor": cursor}))
            return pages[-10:]

        followed = await asyncio.gather(*(follow(path) for path in first_pages))
    return [page for pages in followed for page in pages]


def catalog_rows(mixes: dict[str, list[str]], products: int) -> list[Row]:
    """Every row of the benchmark, in the order measured (one list: new rows go here).

    `key` names a row whose name holds a count that may differ between catalog sizes.
    """
    return [
        Row("reference: minimal endpoint, 20 rows by keyset through asyncpg", "bare",
            [f"/keyset?after={n * 997 % products}" for n in range(200)], 64),
        Row("product list page (24 items, cached)", "cached", ["/api/v1/products?limit=24"], 64,
            ">= 40%", warm=True),
        Row(f"product list (cache off; {len(mixes['lists'])} category x sort pages)", "uncached",
            mixes["lists"], 64, ">= 20%", key="product list (cache off)"),
        Row("product list on the SQL path (SEARCH_INDEX_LISTS=false; the same"
            f" {len(mixes['lists'])} pages)", "uncached-sql-lists", mixes["lists"], 64,
            key="product list on the SQL path"),
        Row(f"product detail (cached; {len(mixes['detail'])} products)", "cached",
            mixes["detail"], 64, ">= 40%", warm=True, key="product detail (cached)"),
        Row(f"search with facets (cached; {len(mixes['searches'])} queries)", "cached",
            mixes["searches"], 16, "p99 <= 50 ms", warm=True, key="search with facets (cached)"),
        Row("search with facets (cache off)", "uncached", mixes["searches"], 16, "p99 <= 50 ms"),
        # a long tail of new queries: the index keeps nothing it worked out for one search
        Row("search with facets (cache off, SEARCH_INDEX_KEEP=false: every query as if new)",
            "uncached-new", mixes["searches"], 16, "p99 <= 50 ms"),
        Row(f"storefront category page, HTML (cached; {len(mixes['pages'])} categories)",
            "cached", mixes["pages"], 64, warm=True, key="storefront category page, HTML (cached)"),
        Row("category with all its descendants (biggest top-level, 4 sorts, cache off)",
            "uncached", mixes["subtree"], 64),
        Row("the same with facets (what the storefront's category page reads; search, cache off)",
            "uncached", [p.replace("/products?", "/search?") for p in mixes["subtree"]], 16),
        Row(f"deep pages ({DEEP_PAGE} next_cursor links into the biggest top-level category,"
            " 4 sorts, cache off)", "uncached", mixes["deep"], 64, key="deep pages (cache off)"),
        Row("rare filter (a common attribute value + a price band: 3-8 matches, 4 sorts,"
            " cache off)", "uncached", mixes["rare"], 16),
        # The storefront's HTML: anonymous visitors share the page cache; signed-in ones get it
        # with their own regions spliced in (web/store/page_cache.py).
        Row("storefront category page, HTML, signed in", "cached", mixes["pages"], 64, ">= 10%",
            warm=True, signed_in=True),
        Row(f"storefront product page, HTML, anonymous ({len(mixes['product_pages'])} products)",
            "cached", mixes["product_pages"], 64, ">= 25%", warm=True,
            key="storefront product page, HTML, anonymous"),
        Row("storefront product page, HTML, signed in", "cached", mixes["product_pages"], 64,
            ">= 10%", warm=True, signed_in=True),
        Row(f"storefront search page, HTML, anonymous ({len(mixes['search_pages'])} queries)",
            "cached", mixes["search_pages"], 64, ">= 25%", warm=True,
            key="storefront search page, HTML, anonymous"),
        Row("storefront search page, HTML, signed in", "cached", mixes["search_pages"], 64,
            ">= 10%", warm=True, signed_in=True),
        # The event loop (EVENT_LOOP): the "cached" server runs the default (uvloop when
        # installed); these run asyncio's own loop, and the bare endpoint on uvloop.
        Row("bare aiohttp JSON endpoint on uvloop", "bare-uvloop", ["/json"], 64),
        Row("storefront category page, HTML, on asyncio's loop (EVENT_LOOP=asyncio)",
            "cached-asyncio", mixes["pages"], 64, warm=True,
            key="storefront category page, HTML, on asyncio's loop"),
    ]  # fmt: skip


def chosen(rows: list[Row], wanted: str | None) -> list[Row]:
    """The rows whose name or key contains one of `wanted`'s parts, separated by "|" (or by
    commas when it holds no "|"); all when None."""
    if not wanted:
        return rows
    separator = "|" if "|" in wanted else ","
    parts = [part.strip().lower() for part in wanted.split(separator) if part.strip()]
    return [
        row
        for row in rows
        if any(part in row.name.lower() or part in row.key.lower() for part in parts)
    ]


@dataclass(frozen=True)
class SizeResult:
    """One catalog size's rows and the memory of its web servers after them."""

    products: int
    rows: list[tuple[Row, Measured]]
    memory: dict[str, Memory]  # by server: "cached", "uncached"


async def measure_size(products: int, args: argparse.Namespace) -> SizeResult:
    """Every row against a catalog of `products` products (seeded first if missing)."""
    dsn = await ensure_catalog(products, args.fresh, args.catalog, migrate=not args.no_migrate)
    mixes = await sample_paths(dsn)
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()
    monitor = await asyncpg.connect(dsn)
    try:
        return await _measure_rows(products, args, dsn, mixes, monitor)
    finally:
        await monitor.close()


async def _measure_rows(
    products: int,
    args: argparse.Namespace,
    dsn: str,
    mixes: dict[str, list[str]],
    monitor: asyncpg.Connection,
) -> SizeResult:
    """measure_size's rows, against servers of their own."""
    bare_row = Row("bare aiohttp JSON endpoint", "bare", ["/json"], 64)
    results: list[tuple[Row, Measured]] = []
    with tempfile.TemporaryDirectory(prefix="aioshop_bench_") as tmp:
        workdir = Path(tmp)
        base = clean_env(SERVER_ENV | {"DATABASE_URL": dsn, "DATA_DIR": str(workdir)})
        web_argv = ["-m", "web.cli", "web", "--host", "127.0.0.1"]
        commands = {
            "bare": (["-m", "tests.bench.bare_app"], base),
            "cached": (web_argv, base),
            "uncached": (web_argv, base | {"CATALOG_CACHE_SECONDS": "0"}),
            "bare-uvloop": (["-m", "tests.bench.bare_app", "--uvloop"], base),
            "cached-asyncio": (web_argv, base | {"EVENT_LOOP": "asyncio"}),
            "uncached-sql-lists": (
                web_argv,
                base | {"CATALOG_CACHE_SECONDS": "0", "SEARCH_INDEX_LISTS": "false"},
            ),
            "uncached-new": (
                web_argv,
                base | {"CATALOG_CACHE_SECONDS": "0", "SEARCH_INDEX_KEEP": "false"},
            ),
        }
        rows = chosen(catalog_rows(mixes | {"deep": []}, products), args.rows)
        # only the servers the chosen rows read (the bare one and the uncached one always:
        # the baseline, and the deep pages' cursors)
        wanted = {"bare", "uncached", "cached"} | {row.server for row in rows}
        async with contextlib.AsyncExitStack() as stack:
            servers = {
                name: await stack.enter_async_context(served(argv, env, workdir / f"{name}.log"))
                for name, (argv, env) in commands.items()
                if name in wanted
            }
            urls = {name: server.url for name, server in servers.items()}
            cached, uncached = servers["cached"], servers["uncached"]
            for name in ("cached", "uncached", "uncached-sql-lists", "uncached-new"):
                if name in servers:  # search answers from it (search.bitmap)
                    index = await search_index_ready(servers[name].url)
                    print(f"  search index ({name}): {index}", flush=True)
            mixes["deep"] = await deep_pages(uncached.url, mixes["subtree"], DEEP_PAGE)
            cookie = await customer_cookie(cached.url)

            def run(row: Row) -> Load:
                headers = {"Cookie": cookie} if row.signed_in else None
                return wrk(urls[row.server], connections=row.connections, seconds=args.seconds,
                           paths=row.paths, workdir=workdir, headers=headers)  # fmt: skip

            for row in chosen(catalog_rows(mixes, products), args.rows):
                url = urls[row.server]
                row_cookie = cookie if row.signed_in else ""
                status = await status_of(url, row.paths[0], row_cookie) if row.paths else 0
                if status != 200:
                    print(f"skipped {row.name}: {row.paths[:1]} answers {status}")
                    continue
                if row.warm:
                    await warm(url, row.paths, row_cookie)
                pairs = [(run(bare_row), run(row)) for _ in range(args.rounds)]
                measured = Measured(pairs)
                await settled(monitor)
                results.append((row, measured))
                print(
                    f"  {products:,}: {row.name}: {measured.rate:,.0f} req/s,"
                    f" {measured.ratio:.1%} of bare ({measured.ratio_range})",
                    flush=True,
                )
            memory = {
                "cached": process_memory(cached.pid),
                "uncached": process_memory(uncached.pid),
            }
    return SizeResult(products, results, memory)


async def warm(base_url: str, paths: list[str], cookie: str = "") -> None:
    """Request every path once (16 at a time): the cached rows then measure cache hits."""
    semaphore = asyncio.Semaphore(16)
    headers = {"Cookie": cookie} if cookie else {}
    async with aiohttp.ClientSession() as http:

        async def one(path: str) -> None:
            async with semaphore, http.get(base_url + path, headers=headers) as resp:
                await resp.read()

        await asyncio.gather(*(one(p) for p in paths))


# Statements still running on the catalog's database, other than this one.
BUSY = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
"""


async def settled(monitor: asyncpg.Connection, timeout: float = 120.0) -> None:
    """Wait (at most `timeout` s) until the database runs no statement: a row that times out
    in wrk leaves its requests running in the server, which would slow the next row. `monitor`
    is opened before the servers start: under load they may take every connection there is."""
    deadline = time.monotonic() + timeout
    while await monitor.fetchval(BUSY) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


async def status_of(base_url: str, path: str, cookie: str = "") -> int:
    headers = {"Cookie": cookie} if cookie else {}
    async with aiohttp.ClientSession() as http, http.get(base_url + path, headers=headers) as resp:
        return resp.status


async def customer_cookie(base_url: str) -> str:
    """A signed-in customer's session cookie (registered on first use, kept with the database)."""
    account = {"email": "bench-shopper@example.com", "password": "bench pass phrase 7"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            base_url + "/api/v1/auth/register", json={**account, "name": "Bench Shopper"}
        ) as resp:
            body = await resp.json()
        if resp.status != 201:  # registered by an earlier run
            async with http.post(base_url + "/api/v1/auth/login", json=account) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise SystemExit(f"cannot sign the bench customer in: {resp.status} {body}")
    return f"aioshop-access={body['access_token']}"


async def search_index_ready(base_url: str, timeout: float = 900.0) -> str:
    """Wait until the server's in-process search index is built (its /metrics say so); its
    build time and memory, or why there is none (SEARCH_INDEX=sql: no such metrics)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(base_url + "/metrics") as resp:
                figures = {
                    name: float(value)
                    for name, _, value in (
                        line.partition(" ") for line in (await resp.text()).splitlines()
                    )
                    if name.startswith("aioshop_search_index_")
                }
            if not figures:
                return "none (the SQL path answers)"
            if figures.get("aioshop_search_index_products", 0) > 0:
                memory = figures.get("aioshop_search_index_memory_bytes", 0) / 2**20
                return (
                    f"{figures['aioshop_search_index_products']:,.0f} products, built in"
                    f" {figures.get('aioshop_search_index_build_seconds', 0):.1f} s, process"
                    f" memory +{memory:,.0f} MiB"
                )
            if asyncio.get_running_loop().time() > deadline:
                return "not built in time (the SQL path answers)"
            await asyncio.sleep(1)


def verdict(row: Row, measured: Measured) -> str:
    if row.target.startswith(">="):
        needed = float(row.target[2:].strip(" %")) / 100
        return "met" if measured.ratio >= needed else "MISSED"
    if row.target.startswith("p99"):
        if measured.unanswered:  # wrk then reads its latencies as 0
            return "MISSED"
        return "met" if measured.p99_ms <= float(row.target.split("<=")[1].split()[0]) else "MISSED"
    return ""


async def main(args: argparse.Namespace) -> None:
    wrk_path()
    sizes = sorted({int(n) for n in args.products.split(",")})
    measured = [await measure_size(products, args) for products in sizes]
    lines = report(measured, args)
    print("\n" + "\n".join(lines))
    if args.markdown is not None:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
        print(f"\nwritten to {args.markdown}")


@dataclass(frozen=True)
class Measured:
    """A row's rounds: (bare endpoint, row) measured back to back, `rounds` times."""

    pairs: list[tuple[Load, Load]]

    def _median(self, figure: str, *, of_bare: bool = False) -> float:
        return statistics.median(getattr(pair[0 if of_bare else 1], figure) for pair in self.pairs)

    @property
    def rate(self) -> float:
        return self._median("requests_per_second")

    @property
    def bare_rate(self) -> float:
        return self._median("requests_per_second", of_bare=True)

    @property
    def p50_ms(self) -> float:
        return self._median("p50_ms")

    @property
    def p99_ms(self) -> float:
        return self._median("p99_ms")

    @property
    def ratios(self) -> list[float]:
        return [row.requests_per_second / bare.requests_per_second for bare, row in self.pairs]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def ratio_range(self) -> str:
        return f"{min(self.ratios):.0%}-{max(self.ratios):.0%}"

    @property
    def failures(self) -> str:
        non_2xx = sum(row.non_2xx for _, row in self.pairs)
        errors = sum(row.errors for _, row in self.pairs)
        if self.unanswered:
            return " (no answer within a run)"
        return f" ({non_2xx} non-2xx, {errors} socket errors)" if non_2xx or errors else ""

    @property
    def unanswered(self) -> bool:
        """Whether some round saw no response at all (each request took longer than the run)."""
        return any(row.requests_per_second == 0 for _, row in self.pairs)


def report(sizes: list[SizeResult], args: argparse.Namespace) -> list[str]:
    """The tables, as Markdown lines: each size's rows and memory, then the sizes side by side."""
    lines = [
        f"wrk -t2; each row {args.rounds} rounds of (bare endpoint, row) at {args.seconds:g} s"
        f" each, medians; nproc={len(os.sched_getaffinity(0))}, load average"
        f" {os.getloadavg()[0]:.1f} at the end",
    ]
    for size in sizes:
        lines += ["", f"### {size.products:,} products", ""]
        lines += [
            "| row | conns | req/s | p50 ms | p99 ms | bare req/s | vs bare (range) | target | |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row, m in size.rows:
            lines.append(
                f"| {row.name}{m.failures} | {row.connections} | {m.rate:,.0f} | {m.p50_ms:.1f} |"
                f" {m.p99_ms:.1f} | {m.bare_rate:,.0f} | {m.ratio:.0%} ({m.ratio_range}) |"
                f" {row.target} | {verdict(row, m)} |"
            )
        lines += [
            "",
            "| web server | processes | RSS per process, MiB | peak, MiB | total RSS, MiB |",
        ]
        lines.append("|---|---|---|---|---|")
        for server, memory in size.memory.items():
            lines.append(
                f"| {server} | {memory.processes} | {memory.rss_mib:,.0f} |"
                f" {memory.peak_mib:,.0f} | {memory.total_mib:,.0f} |"
            )
    if len(sizes) > 1:
        lines += side_by_side(sizes)
    return lines


def side_by_side(sizes: list[SizeResult]) -> list[str]:
    """Each row at every size (req/s, p99, share of bare) and the largest size's share of bare
    as a fraction of the smallest's: CLIFF below CLIFF (the machine's drift cancels out)."""
    small, large = sizes[0], sizes[-1]
    names = " | ".join(f"{s.products:,}: req/s, p99 ms, vs bare" for s in sizes)
    lines = [
        "",
        f"### {_short(small.products)} vs {_short(large.products)}",
        "",
        f"| row | {names} | {_short(large.products)} / {_short(small.products)} | |",
        "|---|" + "---|" * len(sizes) + "---|---|",
    ]
    by_size = [{row.label: m for row, m in size.rows} for size in sizes]
    for row, _ in small.rows:
        figures = [found.get(row.label) for found in by_size]
        cells = " | ".join(
            f"{m.rate:,.0f}, {m.p99_ms:.1f}, {m.ratio:.0%}" if m else "-" for m in figures
        )
        first, last = figures[0], figures[-1]
        if first is None or last is None or first.ratio == 0:
            lines.append(f"| {row.label} | {cells} | - | |")
            continue
        change = last.ratio / first.ratio
        lines.append(
            f"| {row.label} | {cells} | {change:.0%} | {'CLIFF' if change < CLIFF else ''} |"
        )
    memory = [
        f"{s.memory['uncached'].rss_mib:,.0f} MiB (peak {s.memory['uncached'].peak_mib:,.0f})"
        for s in sizes
    ]
    lines.append(f"| web process RSS (cache off server) | {' | '.join(memory)} | | |")
    return lines


def _short(products: int) -> str:
    """100000 -> 100k, 1000000 -> 1M."""
    if products % 1_000_000 == 0:
        return f"{products // 1_000_000}M"
    if products % 1000 == 0:
        return f"{products // 1000}k"
    return str(products)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--products", default=SIZES, help=f"catalog sizes, comma-separated (default {SIZES})"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="(bare, row) pairs per row")
    parser.add_argument("--fresh", action="store_true", help="seed the catalogs again")
    parser.add_argument("--markdown", help="also write the tables to this file (Markdown)")
    parser.add_argument(
        "--rows",
        help="only the rows whose name contains one of these (separated by '|', or by commas"
        " when there is no '|': some names hold commas)",
    )
    parser.add_argument(
        "--catalog",
        default="aioshop_bench_catalog",
        help="database name prefix: <catalog>_<products> (default aioshop_bench_catalog)",
    )
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="use existing catalogs as they are (a shared one: read only); never seed",
    )
    asyncio.run(main(parser.parse_args()))
