"""Benchmark of checkout: orders per second through HTTP, against the database's own ceiling.

A script, not a test: it prints figures and asserts nothing.

1. Throughput. 32 concurrent buyers each place orders from carts prepared beforehand (one or
   two lines), for `--seconds` each:
   - the ceiling: `storage.orders.place`, the very transaction checkout runs, issued directly
     through asyncpg from 32 tasks (no HTTP, no app);
   - through HTTP: `POST /api/v1/checkout` on one aiohttp process (`aioshop web`);
   each with SKUs spread over 100,000 variants, and with every order on one hot SKU.
2. Latency of side effects: orders placed through HTTP at a steady 20 per second while the relay
   and a worker run; the time from each order's commit to its confirmation email arriving at an
   SMTP server in this process, p50 and p95.

    make bench-checkout
    .venv/bin/python -m tests.bench.checkout_bench [--seconds 10] [--skus 100000]

Uses a throwaway database on TEST_DATABASE_URL's server (made anew each run), Redis DB 13
(flushed) and RabbitMQ (the orders and email queues are flushed: run it on a quiet broker).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import redis

from actors.broker import build_broker
from auth.tokens import digest
from configs.settings import Settings
from storage import checkout as checkout_storage
from storage.checkout import NewOrder
from storage.database import create_pool
from storage.migrate import migrate
from tests.bench.support import ADMIN_DSN, clean_env, dsn_for, execute, serving
from tests.support.orders import ADDRESS, PAID
from tests.support.processes import Worker
from tests.support.smtp import SmtpServer, smtp_server

DATABASE = "aioshop_bench_checkout"
REDIS_URL = "redis://127.0.0.1:6379/13"
BROKER_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SECRET = "bench-secret-" + "k" * 27
BUYERS = 32
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
BODY = {
    "email": "bench@example.com",
    "shipping_address": ADDRESS,
    "shipping_method": "standard",
    "card": CARD,
}
STOCK = 1_000_000_000  # nothing sells out during a run

MAKE_CATALOG = """
    WITH p AS (
        INSERT INTO products (slug, name)
        SELECT 'bench-' || n, 'Bench product ' || n FROM generate_series(1, $1) AS n
        RETURNING id
    )
    INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand)
    SELECT id, 'BENCH-' || id, 1000 + id % 5000, 'EUR', $2 FROM p
"""
MAKE_CARTS = """
    WITH c AS (
        INSERT INTO carts (token_hash) SELECT unnest($1::bytea[]) RETURNING id, token_hash
    ), numbered AS (
        SELECT c.id, row_number() OVER (ORDER BY c.id) AS n FROM c
    )
    INSERT INTO cart_items (cart_id, variant_id, quantity)
    SELECT numbered.id, (($2::bigint[])[numbered.n]), 1 FROM numbered
    UNION ALL
    SELECT numbered.id, (($3::bigint[])[numbered.n]), 1 FROM numbered
    WHERE ($3::bigint[])[numbered.n] IS NOT NULL
      AND ($3::bigint[])[numbered.n] <> ($2::bigint[])[numbered.n]
"""


async def prepare(dsn: str, skus: int) -> list[int]:
    await execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await execute(ADMIN_DSN, f'CREATE DATABASE "{DATABASE}"')
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(MAKE_CATALOG, skus, STOCK)
        await conn.execute("VACUUM ANALYZE")
        return [r["id"] for r in await conn.fetch("SELECT id FROM variants ORDER BY id")]
    finally:
        await conn.close()


async def make_carts(
    dsn: str, count: int, variants: list[int], *, hot: bool
) -> list[tuple[int, str]]:
    """`count` guest carts: one line on the hot SKU, or one or two random SKUs of `variants`."""
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    rng = secrets.SystemRandom()
    first = [variants[0] if hot else rng.choice(variants) for _ in range(count)]
    second = [None if hot or rng.random() < 0.5 else rng.choice(variants) for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(MAKE_CARTS, [digest(t) for t in tokens], first, second)
        rows = await conn.fetch(
            "SELECT id, token_hash FROM carts WHERE token_hash = ANY ($1::bytea[])",
            [digest(t) for t in tokens],
        )
    finally:
        await conn.close()
    by_hash = {row["token_hash"]: row["id"] for row in rows}
    return [(by_hash[digest(t)], t) for t in tokens]


async def run_for(
    seconds: float, jobs: list[tuple[int, str]], place_one: Callable[[int, str], Awaitable[bool]]
) -> tuple[float, int]:
    """BUYERS tasks take carts from `jobs` until `seconds` pass; (orders per second, failures)."""
    queue = list(reversed(jobs))
    placed = failed = 0
    deadline = time.perf_counter() + seconds

    async def buyer() -> None:
        nonlocal placed, failed
        while queue and time.perf_counter() < deadline:
            cart_id, token = queue.pop()
            if await place_one(cart_id, token):
                placed += 1
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(buyer() for _ in range(BUYERS)))
    if not queue:
        print("  (ran out of carts before the time was up)", file=sys.stderr)
    return placed / (time.perf_counter() - started), failed


async def ceiling(dsn: str, jobs: list[tuple[int, str]], seconds: float) -> tuple[float, int]:
    pool = await create_pool(dsn, BUYERS)

    async def place_one(cart_id: int, token: str) -> bool:
        new = NewOrder(cart_id, None, "bench@example.com", ADDRESS, "standard", PAID)
        async with pool.acquire() as conn, conn.transaction():
            await checkout_storage.place_order(conn, new)
        return True

    try:
        return await run_for(seconds, jobs, place_one)
    finally:
        await pool.close()


async def through_http(
    base_url: str, jobs: list[tuple[int, str]], seconds: float
) -> tuple[float, int]:
    connector = aiohttp.TCPConnector(limit=BUYERS)
    async with aiohttp.ClientSession(base_url, connector=connector) as http:

        async def place_one(cart_id: int, token: str) -> bool:
            async with http.post(
                "/api/v1/checkout", json=BODY, headers={"X-Cart-Token": token}
            ) as resp:
                await resp.read()
                return resp.status == 201

        return await run_for(seconds, jobs, place_one)


async def email_latency(
    dsn: str, base_url: str, variants: list[int], settings: Settings, workdir: Path, seconds: float
) -> list[float]:
    """Seconds from each order's commit to its confirmation email, at 20 orders per second."""
    rate = 20
    jobs = await make_carts(dsn, int(rate * seconds), variants, hot=False)
    with smtp_server() as smtp:
        worker = Worker(settings.model_copy(update={"smtp_url": smtp.url}), workdir / "worker.log")
        relay_env = clean_env(_server_env(dsn))
        async with serving_relay(relay_env, workdir):
            worker.start()
            try:
                async with aiohttp.ClientSession(base_url) as http:
                    # Warm up: the worker has booted once one order's confirmation arrived.
                    (_, first), *jobs = jobs
                    await _order(http, first, {})
                    while not any("confirmed" in str(m["Subject"]) for m in smtp.messages):
                        await asyncio.sleep(0.05)
                    started = time.perf_counter()
                    placed: dict[str, float] = {}
                    tasks = []
                    for n, (_, token) in enumerate(jobs):
                        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                        tasks.append(asyncio.create_task(_order(http, token, placed)))
                    await asyncio.gather(*tasks)
                deadline = time.time() + 60
                while time.time() < deadline and _confirmed(smtp).keys() < placed.keys():
                    await asyncio.sleep(0.05)
                arrivals = {n: at for n, at in _confirmed(smtp).items() if n in placed}
            finally:
                worker.stop()
    conn = await asyncpg.connect(dsn)
    try:
        committed = {
            r["number"]: r["at"]
            for r in await conn.fetch(
                "SELECT o.number, extract(epoch FROM o.placed_at)::float8 AS at FROM orders o"
                " WHERE o.number = ANY ($1::text[])",
                list(arrivals),
            )
        }
    finally:
        await conn.close()
    return [arrivals[n] - committed[n] for n in arrivals if n in committed]


def _confirmed(smtp: SmtpServer) -> dict[str, float]:
    """Order number -> when its confirmation email arrived."""
    found = {}
    for message, at in zip(list(smtp.messages), list(smtp.arrived), strict=False):
        subject = str(message["Subject"])
        if "confirmed" in subject:
            found[next(w for w in subject.split() if w.count("-") == 2)] = at
    return found


async def _order(http: aiohttp.ClientSession, token: str, placed: dict[str, float]) -> None:
    async with http.post("/api/v1/checkout", json=BODY, headers={"X-Cart-Token": token}) as resp:
        body = await resp.json()
        if resp.status == 201:
            placed[body["number"]] = time.time()


def serving_relay(env: dict[str, str], workdir: Path):  # type: ignore[no-untyped-def]
    """`aioshop relay` as a child process for the duration."""
    return _child(["-m", "web.cli", "relay"], env, workdir / "relay.log")


class _child:
    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path

    async def __aenter__(self) -> None:
        self.log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, *self.argv, env=self.env, stdout=self.log, stderr=self.log
        )

    async def __aexit__(self, *exc: object) -> None:
        self.process.terminate()
        await self.process.wait()
        self.log.close()


def _server_env(dsn: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "REDIS_URL": REDIS_URL,
        "BROKER_URL": BROKER_URL,
        "SECRET_KEY": SECRET,
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "RELAY_POLL_INTERVAL_SECONDS": "0.5",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    dsn = dsn_for(DATABASE)
    print(f"preparing {args.skus:,} SKUs in {DATABASE} ...", flush=True)
    variants = await prepare(dsn, args.skus)
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()
    settings = Settings(**{k.lower(): v for k, v in _server_env(dsn).items()})
    broker = build_broker(settings)
    for queue in ("orders", "email", "search"):
        broker.flush(queue)
    broker.close()
    carts_needed = int(args.seconds * 1500)  # above what this machine can place in that time
    rows = []
    with tempfile.TemporaryDirectory(prefix="aioshop_bench_") as tmp:
        workdir = Path(tmp)
        env = clean_env(_server_env(dsn))
        async with serving(
            ["-m", "web.cli", "web", "--host", "127.0.0.1"], env, workdir / "web.log"
        ) as url:
            for name, hot in (("spread over SKUs", False), ("one hot SKU", True)):
                jobs = await make_carts(dsn, carts_needed, variants, hot=hot)
                base, base_failed = await ceiling(dsn, jobs[: carts_needed // 2], args.seconds)
                http, http_failed = await through_http(url, jobs[carts_needed // 2 :], args.seconds)
                rows.append((name, base, http, base_failed + http_failed))
                print(f"  measured {name}: ceiling {base:.0f}/s, HTTP {http:.0f}/s", flush=True)
            # The events of the orders above are not part of the latency run: set them aside.
            await execute(dsn, "UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
            latencies = await email_latency(
                dsn, url, variants, settings, workdir, args.email_seconds
            )
    print(f"\ncheckout, {BUYERS} concurrent buyers, {args.seconds:g} s a row; nproc="
          f"{len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| orders | asyncpg ceiling (orders/s) | HTTP checkout (orders/s) | ratio | target |")
    print("|---|---|---|---|---|")
    for name, base, http, failed in rows:
        verdict = "met" if http >= 0.5 * base else "MISSED"
        problems = f" ({failed} failed)" if failed else ""
        ratio = f"{http / base:.0%}"
        print(f"| {name}{problems} | {base:,.0f} | {http:,.0f} | {ratio} | >= 50% {verdict} |")
    if latencies:
        p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        verdict = "met" if p95 <= 1.0 else "MISSED"
        print(
            f"\ncommit -> confirmation email at 20 orders/s: {len(latencies)} orders,"
            f" p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (target p95 <= 1 s: {verdict})"
        )
    else:
        print("\nno confirmation email arrived: is the worker running? (see its log)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--email-seconds", type=float, default=15.0)
    parser.add_argument("--skus", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
