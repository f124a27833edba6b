"""Benchmark of the deployment's topology: NGINX in front of `aioshop web --processes N`.

A script, not a test: it prints figures and asserts nothing.

One NGINX (Debian's, `make nginx`) runs on the repository's configs/nginx.conf as it is, with the
deployment's two include files written by tests/support/nginx.py, over plain HTTP (throughput is
measured without TLS: the handshakes would measure OpenSSL on a load generator that shares the
cores). Behind it, in turn, for N in --processes (1, 2 and 4 by default, one N at a time):
`aioshop web --processes N` with the catalog cache, the same with the cache off
(CATALOG_CACHE_SECONDS=0), and the bare aiohttp endpoint (tests/bench/bare_app.py, GET /json,
one process). NGINX is pointed at one of them at a time: aioshop/upstream.conf is rewritten and
NGINX reloaded (SIGHUP), so the bare endpoint goes through the very same proxy path (location,
upstream keepalive, headers, gzip) as the shop. Rows, each measured with wrk (2 threads):

- product list, cache off: the category x sort pages of the API (GET /api/v1/products);
- product list, cached: one list page, requested once beforehand so the rounds measure hits;
- checkout: POST /api/v1/checkout, each request a new guest cart (its X-Cart-Token, carts made
  in the database beforehand) and an Idempotency-Key of its own (a wrk Lua script).

Each row is measured in rounds, each round the bare endpoint (same connections) and then the row,
back to back; the table gives the medians (rate, p50, p99, and the ratio of each round's pair)
and the range of the ratios. Then the failover figure: tests/bench/failover_bench.py, run once
(one round), from killing the primary to the first successful checkout after promotion.

This machine has few cores, shared by wrk, NGINX, the web processes, PostgreSQL and Redis (and
whatever else runs on it): more web processes than cores mostly adds contention, and the figures
are noisy. The CPU count and the load average are printed first; compare ratios, not rates.

    make bench-topology        # installs wrk and NGINX (Debian) if missing, then:
    .venv/bin/python -m tests.bench.topology_bench [--products 10000] [--processes 1 2 4]
        [--seconds 5] [--rounds 3] [--fresh] [--no-failover]

The seeded database (`aioshop_bench_topology_<N>` on TEST_DATABASE_URL's server) is kept between
runs; --fresh seeds it again. Redis: a database claimed for the run (tests/support/isolation.py).
RabbitMQ is named in the settings only (no worker runs; the outbox of the orders just grows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import orjson

from tests.bench.catalog_bench import SERVER_ENV, Measured, ensure_catalog, sample_paths, warm
from tests.bench.checkout_bench import BODY, make_carts
from tests.bench.support import Load, clean_env, free_port, serving, wrk, wrk_path
from tests.support.isolation import claim_redis_database, new_run_id
from tests.support.nginx import Nginx, nginx_missing, running_nginx

REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STOCK = 1_000_000_000  # nothing sells out during a run
CARTS_PER_SECOND = 1500  # carts made per second of a checkout run: above what this machine places
WRK_THREADS = 2
SWITCH_TIMEOUT_SECONDS = 10.0
FAILOVER_TIMEOUT_SECONDS = 600
CHECKOUT_VARIANTS = """
    SELECT v.id FROM variants v JOIN products p ON p.id = v.product_id
    WHERE p.is_published AND v.currency = (
        SELECT currency FROM variants GROUP BY currency ORDER BY count(*) DESC LIMIT 1
    )
    ORDER BY v.id LIMIT 1000
"""
RESTOCK = "UPDATE variants SET stock_on_hand = $2 WHERE id = ANY ($1::bigint[])"


@dataclass(frozen=True)
class Row:
    name: str
    backend: str  # "cached" or "uncached": which `aioshop web` NGINX is pointed at
    connections: int
    paths: tuple[str, ...] = ()  # GET these in turn; none: the checkout script
    warm: bool = False  # request every path once before measuring (fills the cache)


@dataclass(frozen=True)
class Result:
    processes: int
    row: Row
    measured: Measured


@dataclass(frozen=True)
class Failover:
    """What one run of the failover bench printed: seconds, None where it found no checkout."""

    total: float | None
    promote: float | None
    shop: float | None
    note: str = ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=5.0, help="of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="(bare, row) pairs per row")
    parser.add_argument("--fresh", action="store_true", help="seed the catalog again")
    parser.add_argument("--no-failover", action="store_true", help="skip the failover figure")
    args = parser.parse_args(argv)
    if min(args.processes) < 1 or args.rounds < 1 or args.seconds <= 0 or args.products < 1:
        parser.error("--processes, --rounds, --seconds and --products must be positive")
    return args


def checkout_script(tokens: Sequence[str], run: str) -> str:
    """wrk Lua: each request a checkout of the next cart of this thread (threads take every
    WRK_THREADS-th token), with an Idempotency-Key of its own. Past the last cart a request
    carries no token and is refused (counted as non-2xx)."""
    quoted = ",\n".join(f'"{token}"' for token in tokens)  # URL-safe base64: nothing to escape
    body = orjson.dumps(BODY).decode()
    return (
        f"local tokens = {{\n{quoted}\n}}\n"
        f"local body = [==[{body}]==]\n"
        "local threads = 0\n"
        "function setup(thread)\n"
        "  thread:set('id', threads)\n"
        "  threads = threads + 1\n"
        "end\n"
        "local n = 0\n"
        "function request()\n"
        f"  local i = id + 1 + n * {WRK_THREADS}\n"
        "  n = n + 1\n"
        "  local headers = {['Content-Type'] = 'application/json',\n"
        f"    ['Idempotency-Key'] = '{run}-' .. id .. '-' .. n}}\n"
        "  if tokens[i] then headers['X-Cart-Token'] = tokens[i] end\n"
        "  return wrk.format('POST', '/api/v1/checkout', headers, body)\n"
        "end\n"
    )


def parse_failover(output: str) -> Failover:
    """The medians of failover_bench's summary lines (one round: the round's figures)."""

    def median(label: str) -> float | None:
        match = re.search(rf"^{re.escape(label)}\s+median\s+([\d.]+) s", output, re.MULTILINE)
        return float(match.group(1)) if match else None

    total = median("kill -> first checkout")
    note = "" if total is not None else "no checkout after the promotion (see its output)"
    return Failover(
        total, median("kill -> promoted (operator)"), median("promoted -> first checkout (shop)"),
        note,
    )  # fmt: skip


def table(results: Sequence[Result], failover: Failover | None) -> list[str]:
    lines = [
        "| web processes | row | conns | req/s | p50 ms | p99 ms | bare req/s | vs bare (range) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        m = result.measured
        lines.append(
            f"| {result.processes} | {result.row.name}{m.failures} | {result.row.connections} |"
            f" {m.rate:,.0f} | {m.p50_ms:.1f} | {m.p99_ms:.1f} | {m.bare_rate:,.0f} |"
            f" {m.ratio:.0%} ({m.ratio_range}) |"
        )
    if failover is not None:

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f} s"

        lines.append(
            f"| 1 | failover: kill the primary -> first checkout after promotion"
            " (failover_bench: its own shop, one web process without NGINX, 1 round"
            f"{'; ' + failover.note if failover.note else ''}) |"
            f" | {seconds(failover.total)} (promotion {seconds(failover.promote)}, then"
            f" {seconds(failover.shop)}) | | | | |"
        )
    return lines


async def answer(url: str) -> int:
    """The status of GET `url` on a new connection (so a reloaded NGINX's new workers answer)."""
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def point(nginx: Nginx, edge: str, port: int, *, bare: bool) -> None:
    """NGINX proxies to `port` once three new connections in a row reach it: the bare app
    answers /json, the shop does not have it."""
    nginx.point_at([port])
    await reaching(nginx, edge, port, bare=bare)


async def reaching(nginx: Nginx, edge: str, port: int, *, bare: bool) -> None:
    """Wait until three new connections in a row reach the bare app (or the shop)."""
    deadline = time.monotonic() + SWITCH_TIMEOUT_SECONDS
    in_a_row = 0
    while in_a_row < 3:
        if time.monotonic() > deadline:
            raise RuntimeError(f"NGINX did not switch to port {port}: {nginx.log()[-2000:]}")
        status = await answer(f"{edge}/json")
        in_a_row = in_a_row + 1 if (status == 200) == bare and status in (200, 404) else 0
        if in_a_row < 3:
            await asyncio.sleep(0.05)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@asynccontextmanager
async def shops(
    processes: int, env: dict[str, str], workdir: Path
) -> AsyncIterator[dict[str, int]]:
    """`aioshop web --processes N`, with the cache and without; their ports by backend name."""
    argv = ["-m", "web.cli", "web", "--host", "127.0.0.1", "--processes", str(processes)]
    async with (
        serving(argv, env, workdir / f"cached-{processes}.log") as cached,
        serving(
            argv, env | {"CATALOG_CACHE_SECONDS": "0"}, workdir / f"uncached-{processes}.log"
        ) as uncached,
    ):
        yield {"cached": port_of(cached), "uncached": port_of(uncached)}


def run_failover() -> Failover:
    """tests/bench/failover_bench.py, one round, as a child; its output echoed, its figure read."""
    print("failover: running tests.bench.failover_bench --rounds 1 ...", flush=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.failover_bench", "--rounds", "1"],
            capture_output=True, text=True, timeout=FAILOVER_TIMEOUT_SECONDS,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Failover(None, None, None, f"did not finish in {FAILOVER_TIMEOUT_SECONDS} s")
    summary = done.stdout.rfind("\nfailover,")  # its summary, without the log lines above it
    print(done.stdout[summary:].strip() if summary >= 0 else done.stdout.strip())
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return Failover(None, None, None, f"failed with status {done.returncode}")
    return parse_failover(done.stdout)


async def main(args: argparse.Namespace) -> None:
    wrk_path()
    if missing := nginx_missing():
        raise SystemExit(missing)
    cpus = len(os.sched_getaffinity(0))
    load = os.getloadavg()
    print(
        f"nproc={cpus}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start;"
        " wrk, NGINX, the web processes, PostgreSQL and Redis share these cores",
        flush=True,
    )
    dsn = await ensure_catalog(args.products, args.fresh, prefix="aioshop_bench_topology")
    mixes = await sample_paths(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        variants = [r["id"] for r in await conn.fetch(CHECKOUT_VARIANTS)]
        await conn.execute(RESTOCK, variants, STOCK)
    finally:
        await conn.close()
    rows = [
        Row(f"product list, cache off ({len(mixes['lists'])} category x sort pages)",
            "uncached", 64, tuple(mixes["lists"])),
        Row("product list, cached (one page, 24 items)", "cached", 64,
            ("/api/v1/products?limit=24",), warm=True),
        Row("checkout (a new cart and Idempotency-Key an order)", "cached", 32),
    ]  # fmt: skip
    run_id = new_run_id()
    claim = claim_redis_database(REDIS_BASE_URL, run_id)
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="aioshop_bench_topology_") as tmp:
            workdir = Path(tmp)
            env = clean_env(
                SERVER_ENV | {"DATABASE_URL": dsn, "DATA_DIR": str(workdir), "REDIS_URL": claim.url}
            )
            async with AsyncExitStack() as stack:
                bare = await stack.enter_async_context(
                    serving(["-m", "tests.bench.bare_app"], env, workdir / "bare.log")
                )
                http_port = free_port()
                edge = f"http://127.0.0.1:{http_port}"
                nginx = stack.enter_context(
                    running_nginx(workdir / "nginx", [port_of(bare)], http_port, access_log=False)
                )
                # Started on the bare app; a reload before NGINX set its signals would end it.
                await reaching(nginx, edge, port_of(bare), bare=True)
                for processes in args.processes:
                    print(f"web --processes {processes}:", flush=True)
                    async with shops(processes, env, workdir) as ports:
                        for row in rows:
                            measured = await measure(
                                row, args, nginx, edge, port_of(bare), ports[row.backend], dsn,
                                variants, workdir, f"{run_id}-{processes}",
                            )  # fmt: skip
                            results.append(Result(processes, row, measured))
                            print(
                                f"  {row.name}: {measured.rate:,.0f} req/s, {measured.ratio:.1%}"
                                f" of bare ({measured.ratio_range}){measured.failures}",
                                flush=True,
                            )
    finally:
        claim.release()
    failover = None if args.no_failover else await asyncio.to_thread(run_failover)
    print(
        f"\n{args.products:,} products; NGINX (plain HTTP) in front of `aioshop web --processes N`"
        f" or the bare aiohttp endpoint; wrk -t{WRK_THREADS}; each row {args.rounds} rounds of"
        f" (bare endpoint, row) at {args.seconds:g} s each, medians; nproc={cpus}, load average"
        f" {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end\n"
    )
    print("\n".join(table(results, failover)))


async def measure(
    row: Row,
    args: argparse.Namespace,
    nginx: Nginx,
    edge: str,
    bare_port: int,
    port: int,
    dsn: str,
    variants: list[int],
    workdir: Path,
    run: str,
) -> Measured:
    """`args.rounds` pairs of (bare endpoint, row), NGINX switched between them."""
    pairs: list[tuple[Load, Load]] = []
    for number in range(args.rounds):
        lua = None
        if not row.paths:  # the carts first, so that the pair runs back to back
            carts = await make_carts(dsn, int(args.seconds * CARTS_PER_SECOND), variants, hot=False)
            lua = checkout_script([token for _, token in carts], f"{run}-{number}")
        await point(nginx, edge, bare_port, bare=True)
        bare = wrk(edge, connections=row.connections, seconds=args.seconds, paths=["/json"],
                   workdir=workdir)  # fmt: skip
        await point(nginx, edge, port, bare=False)
        if row.warm:
            await warm(edge, list(row.paths))
        measured = wrk(edge, connections=row.connections, seconds=args.seconds,
                       paths=list(row.paths), workdir=workdir, lua=lua)  # fmt: skip
        pairs.append((bare, measured))
    return Measured(pairs)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
