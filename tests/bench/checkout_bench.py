"""Benchmark of checkout: orders per second through HTTP, against the database's own ceiling.

A script, not a test: it prints figures and asserts nothing.

1. Throughput. 32 concurrent buyers each place orders from carts prepared beforehand (one or
   two lines), for `--seconds` each:
   - the ceiling: `storage.orders.place`, the very transaction checkout runs, issued directly
     through asyncpg from 32 tasks (no HTTP, no app);
   - through HTTP: `POST /api/v1/checkout` on one aiohttp process (`aioshop web`);
   each with SKUs spread over 100,000 variants, and with every order on one hot SKU.
2. Side effects keeping pace: orders placed through HTTP at a steady offered rate (20, 40, 80,
   120, 160 per second, `--email-seconds` each) while `aioshop relay` and `aioshop worker` (its
   default processes and threads, from the CPU count) run; the time from each order's commit to
   its confirmation email arriving at an SMTP server in this process, p50 and p95 per rate. The
   row: the highest rate whose confirmations all arrived with p95 <= 1 s, next to the web's
   checkout rate measured above. Rates stop at the first one the workers could not keep.
3. The web's checkout rate while the relay and the workers run (after the rates, the same 32
   buyers for `--seconds`): on a small machine the web, PostgreSQL, the relay, RabbitMQ, the
   workers and this benchmark share the CPUs, and the web's rate of 1. had them all. Printed
   beside 1.'s: the pace is compared with both.

`--split-cpus` gives each tier its own CPUs (taskset-like, through sched_setaffinity): the web on
the first half of this process's CPUs, the relay and the workers on the other half, in all three
parts (PostgreSQL, RabbitMQ and the benchmark itself run anywhere). The web's rate is then what
it takes with its half, and the pace what the workers keep with theirs: whether a worker tier as
big as the web keeps up with it.

    make bench-checkout
    .venv/bin/python -m tests.bench.checkout_bench [--seconds 10] [--skus 100000]
        [--email-seconds 10] [--rates 20,40,80,120,160] [--worker-processes N] [--worker-threads N]
        [--split-cpus]

Uses a throwaway database on TEST_DATABASE_URL's server (made anew each run), Redis DB 13
(flushed) and RabbitMQ (every queue is flushed: run it on a quiet broker).
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
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import redis

from actors.broker import build_broker
from auth.tokens import digest
from configs.settings import Settings
from domain.events import QUEUES
from storage import checkout as checkout_storage
from storage.checkout import NewOrder
from storage.database import create_pool
from storage.migrate import migrate
from tests.bench.cpu import CpuMeter, named, spent, tree
from tests.bench.support import ADMIN_DSN, clean_env, dsn_for, execute, pinned, served
from tests.support.orders import ADDRESS, PAID
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
# Each order's commit, and when the capture that confirmed it began (its transition's now()).
STAGES = """
    SELECT o.number, extract(epoch FROM o.placed_at)::float8 AS at,
           (SELECT extract(epoch FROM t.created_at)::float8 FROM order_transitions t
            WHERE t.order_id = o.id AND t.to_status = 'confirmed' LIMIT 1) AS confirmed
    FROM orders o WHERE o.number = ANY ($1::text[])
"""
DRAIN_SECONDS = 30.0  # after a rate's last order, the longest its confirmations are awaited

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
    dsn: str, count: int, variants: list[int], *, hot: bool, conn: asyncpg.Connection | None = None
) -> list[tuple[int, str]]:
    """`count` guest carts: one line on the hot SKU, or one or two random SKUs of `variants`
    (on `conn` if given, else on a connection of its own)."""
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    rng = secrets.SystemRandom()
    first = [variants[0] if hot else rng.choice(variants) for _ in range(count)]
    second = [None if hot or rng.random() < 0.5 else rng.choice(variants) for _ in range(count)]
    own = conn is None
    conn = conn or await asyncpg.connect(dsn)
    try:
        await conn.execute(MAKE_CARTS, [digest(t) for t in tokens], first, second)
        rows = await conn.fetch(
            "SELECT id, token_hash FROM carts WHERE token_hash = ANY ($1::bytea[])",
            [digest(t) for t in tokens],
        )
    finally:
        if own:
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


@dataclass
class Step:
    """One offered order rate of the side-effect run, and what came of it."""

    rate: float  # orders per second offered
    placed: int = 0
    placed_rate: float = 0.0  # what the web took at that rate
    latencies: list[float] = field(default_factory=list)  # commit -> confirmation, seconds
    captures: list[float] = field(default_factory=list)  # commit -> the capture's confirmation
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group

    @property
    def missing(self) -> int:
        return self.placed - len(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95) if self.latencies else float("inf")

    @property
    def kept_pace(self) -> bool:
        """Every confirmation arrived, 95% of them within a second of the order's commit."""
        return self.placed > 0 and self.missing == 0 and self.p95 <= 1.0


async def email_latency(
    dsn: str,
    base_url: str,
    variants: list[int],
    settings: Settings,
    workdir: Path,
    args: argparse.Namespace,
    web_pid: int,
) -> tuple[list[Step], float]:
    """Seconds from each order's commit to its confirmation email reaching the SMTP server, at
    each offered rate of `args.rates` for `args.email_seconds` (stopping after the first rate
    the workers could not keep pace with); then the web's checkout rate while the relay and the
    workers run (BUYERS buyers for `args.seconds`)."""
    steps = []
    shared = float("nan")
    with smtp_server(headers_only=True) as smtp:  # only the Subject is read
        env = clean_env(
            _server_env(dsn)
            | {"SMTP_URL": smtp.url, "DATA_DIR": str(workdir)}
            | dict(args.server_env)  # the relay's and the worker's only
        )
        worker_argv = ["-m", "web.cli", "worker"]
        if args.worker_processes:
            worker_argv += ["--processes", str(args.worker_processes)]
        if args.worker_threads:
            worker_argv += ["--threads", str(args.worker_threads)]
        cpus = args.worker_cpus
        nice = args.worker_nice
        if args.web_nice is not None:  # while the relay and the workers run (the parts below)
            for pid in tree(web_pid):
                os.setpriority(os.PRIO_PROCESS, pid, args.web_nice)
        relay = _child(["-m", "web.cli", "relay"], env, workdir / "relay.log", cpus, nice)
        worker = _child(worker_argv, env, workdir / "worker.log", cpus, nice)
        async with (
            relay,
            worker,
            aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=256)) as http,
        ):
            meter = CpuMeter()
            meter.add("web", lambda: tree(web_pid))
            meter.add("relay", lambda: tree(relay.process.pid))
            meter.add("worker", lambda: tree(worker.process.pid))
            meter.add("rabbitmq", lambda: named("beam.smp"))
            meter.add("bench (client, SMTP)", lambda: [os.getpid()])
            # One connection for the whole run: PostgreSQL's slots may all be taken by others.
            meter_conn = await asyncpg.connect(dsn)
            try:
                # Warm up: the worker has booted once one order's confirmation arrived.
                ((_, first),) = await make_carts(dsn, 1, variants, hot=False, conn=meter_conn)
                await _order(http, first, {})
                deadline = time.time() + 120
                while not _confirmed(smtp) and time.time() < deadline:
                    await asyncio.sleep(0.05)
                for rate in args.rates:
                    step = await _step(
                        dsn, http, variants, smtp, rate, args.email_seconds, meter, meter_conn
                    )
                    steps.append(step)
                    print(
                        f"  {rate:g} orders/s offered: {step.placed} placed"
                        f" ({step.placed_rate:.0f}/s), p95 {step.p95 * 1000:.0f} ms,"
                        f" {step.missing} confirmations missing",
                        flush=True,
                    )
                    if not step.kept_pace and not args.every_rate:
                        break
                # The web's rate with the relay and the workers at work (what its orders ask).
                jobs = await make_carts(
                    dsn, int(args.seconds * 1500), variants, hot=False, conn=meter_conn
                )
                shared, _ = await through_http(base_url, jobs, args.seconds)
                print(f"  the web with the relay and the workers running: {shared:.0f}/s")
            finally:
                await meter_conn.close()
    return steps, shared


async def _step(
    dsn: str,
    http: aiohttp.ClientSession,
    variants: list[int],
    smtp: SmtpServer,
    rate: float,
    seconds: float,
    meter: CpuMeter,
    meter_conn: asyncpg.Connection,
) -> Step:
    """Orders at `rate` for `seconds` (each on its own schedule, whatever the web's answer
    time), then up to DRAIN_SECONDS for their confirmations."""
    jobs = await make_carts(dsn, max(1, int(rate * seconds)), variants, hot=False, conn=meter_conn)
    before = meter.snapshot({"postgresql": await _backends(meter_conn)})
    placed: dict[str, float] = {}
    started = time.perf_counter()
    tasks = []
    for n, (_, token) in enumerate(jobs):
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(_order(http, token, placed)))
    await asyncio.gather(*tasks)
    step = Step(rate, len(placed), len(placed) / (time.perf_counter() - started))
    deadline = time.time() + DRAIN_SECONDS
    while time.time() < deadline and not placed.keys() <= _confirmed(smtp).keys():
        await asyncio.sleep(0.05)
    after = meter.snapshot({"postgresql": await _backends(meter_conn)})
    arrivals = {n: at for n, at in _confirmed(smtp).items() if n in placed}
    rows = await meter_conn.fetch(STAGES, list(arrivals))
    committed = {r["number"]: r["at"] for r in rows}
    step.latencies = [arrivals[n] - committed[n] for n in arrivals if n in committed]
    step.captures = [r["confirmed"] - r["at"] for r in rows if r["confirmed"] is not None]
    step.cpu = spent(before, after)
    return step


async def _backends(conn: asyncpg.Connection) -> list[int]:
    """PostgreSQL's server processes of the benchmark's database (this connection's too)."""
    rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", DATABASE)
    return [row["pid"] for row in rows]


_CONFIRMED: dict[str, float] = {}
_READ = [0]  # how many of the SMTP server's messages _confirmed has read


def _confirmed(smtp: SmtpServer) -> dict[str, float]:
    """Order number -> when its confirmation email arrived (reading only the new messages)."""
    messages, arrived = list(smtp.messages), list(smtp.arrived)
    for message, at in zip(messages[_READ[0] :], arrived[_READ[0] :], strict=False):
        subject = str(message["Subject"])
        if "confirmed" in subject:
            _CONFIRMED[next(w for w in subject.split() if w.count("-") == 2)] = at
    _READ[0] = min(len(messages), len(arrived))
    return _CONFIRMED


async def _order(http: aiohttp.ClientSession, token: str, placed: dict[str, float]) -> None:
    async with http.post("/api/v1/checkout", json=BODY, headers={"X-Cart-Token": token}) as resp:
        body = await resp.json()
        if resp.status == 201:
            placed[body["number"]] = time.time()


class _child:
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        cpus: list[int],
        nice: int | None,
    ) -> None:
        self.argv, self.env, self.log_path, self.cpus = argv, env, log_path, cpus
        self.nice = nice

    async def __aenter__(self) -> None:
        self.log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *self.argv,
            env=self.env,
            stdout=self.log,
            stderr=self.log,
            preexec_fn=pinned(self.cpus, self.nice),
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
        # No search here: the web's in-process index would be built while the rates run.
        "SEARCH_INDEX": "sql",
        "WORKER_METRICS_PORT": "0",  # no port of a shared machine taken
        "RELAY_METRICS_PORT": "0",
    }


def split_cpus(split: bool) -> tuple[list[int], list[int]]:
    """(the web's CPUs, the relay's and the workers'): halves of this process's CPUs when
    `split` (a single CPU is shared), else none named (all)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not split or len(cpus) < 2:
        return [], []
    return cpus[: len(cpus) // 2], cpus[len(cpus) // 2 :]


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
    for queue in QUEUES:
        broker.flush(queue)
    broker.close()
    carts_needed = int(args.seconds * 1500)  # above what this machine can place in that time
    rows = []
    alone: dict[str, float] = {}  # CPU ms per order of the web alone, by part
    with tempfile.TemporaryDirectory(prefix="aioshop_bench_") as tmp:
        workdir = Path(tmp)
        env = clean_env(_server_env(dsn))
        async with served(
            ["-m", "web.cli", "web", "--host", "127.0.0.1"],
            env,
            workdir / "web.log",
            cpus=args.web_cpus,
        ) as server:
            url = server.url
            kinds = (("spread over SKUs", False), ("one hot SKU", True))
            for name, hot in kinds[:1] if args.web_only else kinds:
                jobs = await make_carts(dsn, carts_needed, variants, hot=hot)
                base, base_failed = (
                    (float("nan"), 0)
                    if args.web_only
                    else await ceiling(dsn, jobs[: carts_needed // 2], args.seconds)
                )
                meter = CpuMeter()
                meter.add("web", lambda: tree(server.pid))
                meter.add("bench (client)", lambda: [os.getpid()])
                meter_conn = await asyncpg.connect(dsn)
                try:
                    before = meter.snapshot({"postgresql": await _backends(meter_conn)})
                    count = await meter_conn.fetchval("SELECT count(*) FROM orders")
                    http, http_failed = await through_http(
                        url, jobs[carts_needed // 2 :], args.seconds
                    )
                    count = await meter_conn.fetchval("SELECT count(*) FROM orders") - count
                    after = meter.snapshot({"postgresql": await _backends(meter_conn)})
                finally:
                    await meter_conn.close()
                if not hot:
                    alone = {g: ms * 1000 / max(1, count) for g, ms in spent(before, after).items()}
                rows.append((name, base, http, base_failed + http_failed))
                print(f"  measured {name}: ceiling {base:.0f}/s, HTTP {http:.0f}/s", flush=True)
            # The events of the orders above are not part of the latency run: set them aside.
            await execute(dsn, "UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
            steps, shared = await email_latency(
                dsn, url, variants, settings, workdir, args, server.pid
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
    if args.split_cpus:
        print(
            f"\n--split-cpus: the web on CPUs {args.web_cpus}, the relay and the workers on"
            f" {args.worker_cpus}; PostgreSQL, RabbitMQ and the benchmark on any"
        )
    print_side_effects(steps, web_rate=rows[0][2], shared_rate=shared, seconds=args.email_seconds)
    print_budget(steps, alone, cpus=len(args.web_cpus or os.sched_getaffinity(0)))


def print_budget(steps: list[Step], alone: dict[str, float], *, cpus: int) -> None:
    """The CPU budget behind the comparison: what an order costs the web alone (and its
    PostgreSQL), against what it costs with its side effects, and the rates those bound."""
    parts = ", ".join(f"{group} {ms:.1f}" for group, ms in alone.items())
    web = alone["web"] + alone["postgresql"]
    print(
        f"\nCPU per order of the web alone (HTTP, spread over SKUs; ms): {parts};"
        f" web + PostgreSQL {web:.1f} ms: {cpus} CPU(s) carry at most {cpus * 1000 / web:.0f}/s"
    )
    if not steps:
        return
    busiest = steps[-1]
    shop = {g: s for g, s in busiest.cpu.items() if not g.startswith("bench")}
    each = sum(shop.values()) * 1000 / max(1, busiest.placed)
    total = len(os.sched_getaffinity(0))
    print(
        f"CPU per order with its side effects at {busiest.rate:g}/s offered (all but the"
        f" benchmark): {each:.1f} ms: {total} CPU(s) carry at most {total * 1000 / each:.0f}/s"
        " placed, confirmed and emailed"
    )


def print_side_effects(
    steps: list[Step], *, web_rate: float, shared_rate: float, seconds: float
) -> None:
    """Each offered rate's commit -> confirmation email, and the row of issue 17: the highest
    rate the workers kept pace with, next to the web's checkout rate of the same run (alone, and
    while the relay and the workers run)."""
    print(f"\ncommit -> confirmation email (SMTP server received it), {seconds:g} s a rate:\n")
    print("| offered (orders/s) | placed (orders/s) | p50 | p95 | of which commit -> capture p95 |"
          " missing |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for step in steps:
        p50 = statistics.median(step.latencies) * 1000 if step.latencies else float("nan")
        capture = percentile(step.captures, 0.95) * 1000 if step.captures else float("nan")
        print(
            f"| {step.rate:g} | {step.placed_rate:.0f} | {p50:.0f} ms | {step.p95 * 1000:.0f} ms"
            f" | {capture:.0f} ms | {step.missing} |"
        )
    groups = list(steps[0].cpu) if steps else []
    print("\nCPU per order placed (ms, user + system; from commit to the drain's end):\n")
    print("| offered (orders/s) | " + " | ".join(groups) + " | total |")
    print("|---|" + "---|" * (len(groups) + 1))
    for step in steps:
        each = [step.cpu[g] * 1000 / max(1, step.placed) for g in groups]
        print(
            f"| {step.rate:g} | " + " | ".join(f"{ms:.1f}" for ms in each) + f" | {sum(each):.1f} |"
        )
    kept = [step.placed_rate for step in steps if step.kept_pace]
    best = f"{max(kept):.0f}/s" if kept else "none of the rates"
    verdict = "met" if kept and max(kept) >= web_rate else "MISSED"
    print(
        f"\norders/s confirmed and emailed with commit -> email p95 <= 1 s: {best};"
        f" the web's checkout rate (HTTP, spread over SKUs): {web_rate:.0f}/s"
        f" (target: at least the web's: {verdict})"
    )
    shared_verdict = "met" if kept and max(kept) >= shared_rate else "MISSED"
    print(
        f"the web's checkout rate while the relay and the workers run (same CPUs): "
        f"{shared_rate:.0f}/s (the pace at least that: {shared_verdict})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--email-seconds", type=float, default=10.0, help="seconds at each offered order rate"
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(each) for each in text.split(",")],
        default=[20.0, 40.0, 80.0, 120.0, 160.0],
        help="offered order rates of the side-effect run, comma-separated (orders/s)",
    )
    parser.add_argument("--worker-processes", type=int, default=0, help="default: aioshop's")
    parser.add_argument("--worker-threads", type=int, default=0, help="default: aioshop's")
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument(
        "--web-only",
        action="store_true",
        help="measure only the web's rate spread over SKUs (no ceiling: its 32 connections)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=lambda text: tuple(text.split("=", 1)),
        metavar="NAME=VALUE",
        help="a setting for the relay and the worker (e.g. RELAY_BUNDLE_SIZE=1); repeatable",
    )
    parser.add_argument(
        "--every-rate",
        action="store_true",
        help="go on after a rate the workers could not keep (for the CPU figures of each rate)",
    )
    parser.add_argument(
        "--split-cpus",
        action="store_true",
        help="the web on the first half of the CPUs, the relay and the workers on the other half",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=None,
        help="the relay's and the workers' scheduling priority (nice; the web keeps 0)",
    )
    parser.add_argument(
        "--web-nice",
        type=int,
        default=None,
        help="the web's scheduling priority (nice) while the relay and the workers run",
    )
    arguments = parser.parse_args()
    arguments.web_cpus, arguments.worker_cpus = split_cpus(arguments.split_cpus)
    asyncio.run(main(arguments))
