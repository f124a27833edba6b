"""Benchmark of the catalog reads on 100,000 seeded products, against a bare aiohttp endpoint.

A script, not a test: it prints figures and asserts nothing. Each row is measured with wrk
(2 threads) against one single-process server, as a ratio to a bare aiohttp JSON endpoint measured
by the same tool in the same run. Load tool, servers, PostgreSQL and Redis share the machine's
cores, so compare ratios, not absolute figures.

This machine's speed drifts by a quarter within a minute (a bare endpoint alone: 7,200 to 11,900
req/s in six 5-second runs), so a ratio of two runs made a minute apart says little. Each row is
therefore measured in rounds, each round the bare endpoint and then the row, back to back; the
table gives the median of the rounds (rate, p50, p99 and the ratio of each round's pair) and the
range of the ratios.

    make bench-catalog          # installs wrk (Debian) if missing, then:
    .venv/bin/python -m tests.bench.catalog_bench [--products 100000] [--seconds 5] [--rounds 3]

The seeded database (`aioshop_bench_catalog_<N>` on TEST_DATABASE_URL's server) is kept between
runs (seeding takes about a minute); --fresh seeds it again. Redis DB 10 is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
import redis

from tests.bench.support import (
    ADMIN_DSN,
    Load,
    clean_env,
    dsn_for,
    execute,
    run_cli,
    serving,
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


@dataclass(frozen=True)
class Row:
    name: str
    server: str  # "bare", "cached" or "uncached"
    paths: list[str]
    connections: int
    target: str = ""  # e.g. ">= 25%" (of the bare rate) or "p99 <= 50 ms"
    warm: bool = False  # request every path once before measuring (fills the cache)


async def ensure_catalog(products: int, fresh: bool, prefix: str = "aioshop_bench_catalog") -> str:
    """A migrated database `<prefix>_<products>` seeded with `products` products, kept."""
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
                run_cli(clean_env(SERVER_ENV | {"DATABASE_URL": dsn}), "migrate")  # new ones
                return dsn
    await execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await execute(ADMIN_DSN, f'CREATE DATABASE "{name}"')
    env = clean_env(SERVER_ENV | {"DATABASE_URL": dsn})
    run_cli(env, "migrate")
    print(f"catalog: seeding {products} products into {name} ...", flush=True)
    print(run_cli(env, "seed", "--products", str(products), "--seed", "1").strip()[-400:])
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
    }


async def warm(base_url: str, paths: list[str]) -> None:
    """Request every path once (16 at a time): the cached rows then measure cache hits."""
    semaphore = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as http:

        async def one(path: str) -> None:
            async with semaphore, http.get(base_url + path) as resp:
                await resp.read()

        await asyncio.gather(*(one(p) for p in paths))


async def status_of(base_url: str, path: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(base_url + path) as resp:
        return resp.status


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
        return "met" if measured.p99_ms <= float(row.target.split("<=")[1].split()[0]) else "MISSED"
    return ""


async def main(args: argparse.Namespace) -> None:
    wrk_path()
    dsn = await ensure_catalog(args.products, args.fresh)
    mixes = await sample_paths(dsn)
    products = args.products
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()
    bare_row = Row("bare aiohttp JSON endpoint", "bare", ["/json"], 64)
    rows = [
        Row("reference: minimal endpoint, 20 rows by keyset through asyncpg", "bare",
            [f"/keyset?after={n * 997 % products}" for n in range(200)], 64),
        Row("product list page (24 items, cached)", "cached", ["/api/v1/products?limit=24"], 64,
            ">= 25%", warm=True),
        Row(f"product list (cache off; {len(mixes['lists'])} category x sort pages)", "uncached",
            mixes["lists"], 64, ">= 15%"),
        Row(f"product detail (cached; {len(mixes['detail'])} products)", "cached",
            mixes["detail"], 64, ">= 25%", warm=True),
        Row(f"search with facets (cached; {len(mixes['searches'])} queries)", "cached",
            mixes["searches"], 16, "p99 <= 50 ms", warm=True),
        Row("search with facets (cache off)", "uncached", mixes["searches"], 16, "p99 <= 50 ms"),
        Row(f"storefront category page, HTML (cached; {len(mixes['pages'])} categories)",
            "cached", mixes["pages"], 64, warm=True),
    ]  # fmt: skip
    results: list[tuple[Row, Measured]] = []
    with tempfile.TemporaryDirectory(prefix="aioshop_bench_") as tmp:
        workdir = Path(tmp)
        base = clean_env(SERVER_ENV | {"DATABASE_URL": dsn, "DATA_DIR": str(workdir)})
        web_argv = ["-m", "web.cli", "web", "--host", "127.0.0.1"]
        async with (
            serving(["-m", "tests.bench.bare_app"], base, workdir / "bare.log") as bare_url,
            serving(web_argv, base, workdir / "cached.log") as cached_url,
            serving(
                web_argv, base | {"CATALOG_CACHE_SECONDS": "0"}, workdir / "uncached.log"
            ) as uncached_url,
        ):
            urls = {"bare": bare_url, "cached": cached_url, "uncached": uncached_url}
            for url in (cached_url, uncached_url):  # search answers from it (search.bitmap)
                print(f"  search index: {await search_index_ready(url)}", flush=True)

            def run(row: Row) -> Load:
                return wrk(urls[row.server], connections=row.connections, seconds=args.seconds,
                           paths=row.paths, workdir=workdir)  # fmt: skip

            for row in rows:
                url = urls[row.server]
                status = await status_of(url, row.paths[0])
                if status != 200:
                    print(f"skipped {row.name}: {row.paths[0]} answers {status}")
                    continue
                if row.warm:
                    await warm(url, row.paths)
                pairs = [(run(bare_row), run(row)) for _ in range(args.rounds)]
                measured = Measured(pairs)
                results.append((row, measured))
                print(f"  measured {row.name}: {measured.rate:,.0f} req/s, {measured.ratio:.1%}"
                      f" of bare ({measured.ratio_range})", flush=True)  # fmt: skip
    report(results, args)


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
        return f" ({non_2xx} non-2xx, {errors} socket errors)" if non_2xx or errors else ""


def report(results: list[tuple[Row, Measured]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.products} products; wrk -t2; each row {args.rounds} rounds of (bare endpoint,"
        f" row) at {args.seconds:g} s each, medians; nproc={len(os.sched_getaffinity(0))},"
        f" load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| row | conns | req/s | p50 ms | p99 ms | bare req/s | vs bare (range) | target | |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row, m in results:
        print(
            f"| {row.name}{m.failures} | {row.connections} | {m.rate:,.0f} | {m.p50_ms:.1f} |"
            f" {m.p99_ms:.1f} | {m.bare_rate:,.0f} | {m.ratio:.0%} ({m.ratio_range}) |"
            f" {row.target} | {verdict(row, m)} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="(bare, row) pairs per row")
    parser.add_argument("--fresh", action="store_true", help="seed the catalog again")
    asyncio.run(main(parser.parse_args()))
