"""Benchmark of the order's side effects, one message at a time: the payment capture and the
confirmation email, their actors called directly on a real PostgreSQL (the built-in test
gateway) and a real SMTP server in this process.

A script, not a test: it prints figures and asserts nothing. Per actor run, after a warm-up
(pools open, statements prepared, SMTP connection kept): the database round trips (statements
sent, BEGIN/COMMIT and the pools' reset queries included; the gateway's own connection too), the
wall time (p50, p95), the event loop thread's CPU (the SMTP server's thread not counted) and the
CPU of the database's PostgreSQL server processes (from /proc, ticks of 10 ms: use --messages in
the hundreds).
`--profile` prints cProfile's top functions of the email runs (the loop thread). The last row:
the same emails applied together, BUNDLE a bundle (figures per email).

    .venv/bin/python -m tests.bench.effects_bench [--messages 200] [--profile]

Uses a throwaway database on TEST_DATABASE_URL's server (made anew each run) and Redis DB 13
(read only). Figures from a shared machine vary: compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg.connection

from actors.email import send_order_email, send_order_emails
from actors.orders import capture_payment
from actors.registry import Bundled
from actors.resources import open_resources
from configs.settings import Settings
from storage.migrate import migrate
from tests.bench.cpu import cpu_seconds
from tests.bench.support import ADMIN_DSN, dsn_for, execute
from tests.support.orders import place_orders_now, stocked_product
from tests.support.smtp import SmtpServer

REDIS_URL = "redis://127.0.0.1:6379/13"
WARM_UP = 10
BUNDLE = 10  # order emails applied together (actors.email.send_order_emails)


class StatementCounter:
    """Counts what asyncpg sends: statements with arguments, and those without (BEGIN, COMMIT,
    the pool's reset query)."""

    def __init__(self) -> None:
        self.count = 0
        self._originals: tuple[Any, Any] | None = None

    def install(self) -> None:
        connection = asyncpg.connection.Connection
        do_execute, execute_ = connection._do_execute, connection.execute
        self._originals = (do_execute, execute_)
        counter = self

        async def counted_do_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            counter.count += 1
            return await do_execute(self, query, *args, **kwargs)

        async def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if not args:  # with arguments it goes through _do_execute, counted there
                counter.count += 1
            return await execute_(self, query, *args, **kwargs)

        connection._do_execute = counted_do_execute
        connection.execute = counted_execute


async def backends_cpu(dsn: str) -> float:
    """CPU seconds so far of the PostgreSQL server processes of `dsn`'s database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return sum(cpu_seconds(row["pid"]) or 0.0 for row in rows)


async def measure(
    name: str,
    run: Callable[[list[int]], Awaitable[None]],
    order_ids: list[int],
    counter: Any,
    dsn: str,
    *,
    size: int = 1,
) -> None:
    """Run `run` on the orders `size` at a time (a bundle's worth); figures per message."""
    for order_id in order_ids[:WARM_UP]:
        await run([order_id])
    walls: list[float] = []
    counter.count = 0
    server = await backends_cpu(dsn)
    cpu = time.thread_time()
    measured = order_ids[WARM_UP:]
    for start in range(0, len(measured), size):
        chunk = measured[start : start + size]
        started = time.perf_counter()
        await run(chunk)
        walls.append((time.perf_counter() - started) / len(chunk))
    cpu = time.thread_time() - cpu
    server = await backends_cpu(dsn) - server
    runs = len(measured)
    p95 = statistics.quantiles(walls, n=20)[-1]
    print(
        f"{name:<26} {counter.count / runs:5.1f} round trips  "
        f"wall p50 {statistics.median(walls) * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms  "
        f"loop CPU {cpu / runs * 1000:6.2f} ms  PostgreSQL CPU {server / runs * 1000:6.2f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    database = f"aioshop_effects_bench_{uuid.uuid4().hex[:8]}"
    dsn = dsn_for(database)
    await execute(ADMIN_DSN, f'CREATE DATABASE "{database}"')
    smtp = SmtpServer()
    smtp.start()
    try:
        await migrate(dsn)
        tee = await stocked_product(dsn, "tee", {"TEE": 1_000_000})
        order_ids = await place_orders_now(dsn, tee["TEE"], args.messages + WARM_UP)
        with tempfile.TemporaryDirectory(prefix="effects-bench-") as data_dir:
            settings = Settings(
                database_url=dsn,
                redis_url=REDIS_URL,
                broker_url=REDIS_URL,  # no broker is used: the actors are called directly
                secret_key="effects-bench-secret-key-0123456789abcdef",
                smtp_url=smtp.url,
                data_dir=Path(data_dir),
                database_pool_size=4,
                replica_database_url=None,
                elasticsearch_url=None,
                search_index="sql",
                worker_metrics_port=0,
                relay_metrics_port=0,
            )
            counter = StatementCounter()
            counter.install()
            async with AsyncExitStack() as stack:
                res = await open_resources(settings, stack)

                async def capture(order_ids: list[int]) -> None:
                    for order_id in order_ids:
                        await capture_payment(res, event_id=str(uuid.uuid4()), order_id=order_id)

                async def confirm(order_ids: list[int]) -> None:
                    for order_id in order_ids:
                        await send_order_email(
                            res, event_id=str(uuid.uuid4()), order_id=order_id, kind="confirmed"
                        )

                async def confirm_together(order_ids: list[int]) -> None:
                    events = []
                    for order_id in order_ids:
                        event_id = str(uuid.uuid4())
                        payload = {"event_id": event_id, "order_id": order_id, "kind": "confirmed"}
                        events.append(Bundled(event_id, payload, None))
                    outcomes = await send_order_emails(res, events)
                    assert outcomes == [None] * len(events), outcomes

                print(f"{args.messages} messages each, after {WARM_UP} to warm up:")
                await measure("capture_payment", capture, order_ids, counter, dsn)
                profile = cProfile.Profile() if args.profile else None
                if profile is not None:
                    profile.enable()
                await measure("send_order_email", confirm, order_ids, counter, dsn)
                if profile is not None:
                    profile.disable()
                    pstats.Stats(profile).sort_stats("tottime").print_stats(30)
                await measure(
                    f"send_order_emails, {BUNDLE}s",
                    confirm_together,
                    order_ids,
                    counter,
                    dsn,
                    size=BUNDLE,
                )
    finally:
        smtp.stop()
        await execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    asyncio.run(main(parser.parse_args()))
