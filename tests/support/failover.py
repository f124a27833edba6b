"""The shop on a failover pair, and guest checkouts that keep coming while the primary dies.

`FailoverShop` starts a synchronous streaming pair (tests/support/pgcluster.py), a migrated
database on it with one well-stocked product, and the shop's real processes (one web, one
worker, one relay: `python -m web.cli ...`) whose DATABASE_URL and REPLICA_DATABASE_URL name
both servers (`target_session_attrs`), so that nothing is reconfigured or restarted when the
standby is promoted. `CheckoutLoad` runs a few API clients, each placing guest orders one after
another (add to a new cart, then check out with an Idempotency-Key), and records every answer.
A 503 is retried (the same cart, the same key) after `retry_pause` seconds until it succeeds.

Used by tests/integration/topology/test_failover.py (asserts) and tests/bench/failover_bench.py
(prints figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from configs.settings import Settings
from storage.migrate import migrate
from tests.support.orders import ADDRESS, stocked_product
from tests.support.pgcluster import PgCluster, free_ports
from tests.support.processes import ShopProcess

DATABASE = "shop"
SKU = "FAILOVER-TEE"
BROWSE = "/api/v1/products/failover-tee"  # read after each order (not cached: see start())
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
# Far above any answer the shop should give (an acquire waits 2 s here): past it, a hang.
REQUEST_TIMEOUT_SECONDS = 15.0
START_TIMEOUT_SECONDS = 90.0
# What shows each process is up: a line of its log, or for the web a path that answers 200.
READY_MARKS = {"web": "/healthz", "worker": "ready for action", "relay": "relay.started"}


@dataclass
class Answer:
    """One request of the load and what came back (status None: no answer, see `error`)."""

    client: str
    path: str
    sent: float  # time.monotonic()
    seconds: float
    status: int | None
    retry_after: str | None = None
    error: str | None = None

    @property
    def acceptable(self) -> bool:
        """2xx, or 503 with Retry-After: what a client may get during a failover."""
        if self.status is None:
            return False
        return 200 <= self.status < 300 or (self.status == 503 and bool(self.retry_after))


@dataclass
class Placed:
    """An order the shop confirmed to its client (2xx), and when the answer came."""

    number: str
    answered: float  # time.monotonic()


@dataclass
class CheckoutLoad:
    """`clients` API clients placing guest orders against `base_url` until stopped."""

    base_url: str
    clients: int = 4
    retry_pause: float = 0.1
    answers: list[Answer] = field(default_factory=list)
    placed: list[Placed] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Place orders until `stop` is set; each client finishes the order it has begun (its
        retries of a 503 included), so every checkout the shop committed was answered 2xx."""
        await asyncio.gather(*(self._client(f"c{i}", stop) for i in range(self.clients)))

    def first_checkout_after(self, moment: float) -> float | None:
        """When (monotonic) the first checkout sent after `moment` was answered 2xx."""
        done = [
            a.sent + a.seconds
            for a in self.answers
            if a.path.endswith("/checkout") and a.sent >= moment and a.status in (200, 201)
        ]
        return min(done, default=None)

    async def _client(self, name: str, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(
            self.base_url, cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout
        ) as session:
            count = 0
            while not stop.is_set():
                count += 1
                added = await self._until_done(
                    session, name, "/api/v1/cart/items", {"sku": SKU, "quantity": 1}, {}
                )
                if added is None:
                    return
                body = {
                    "email": f"{name}-{count}@example.com",
                    "shipping_address": ADDRESS,
                    "shipping_method": "standard",
                    "card": CARD,
                }
                headers = {
                    "X-Cart-Token": str(added["cart_token"]),
                    "Idempotency-Key": f"{name}-{count}",
                }
                order = await self._until_done(session, name, "/api/v1/checkout", body, headers)
                if order is None:
                    return
                self.placed.append(Placed(str(order["number"]), time.monotonic()))
                await self._browse(session, name)

    async def _browse(self, session: aiohttp.ClientSession, name: str) -> None:
        """One catalog read (a browsing read: the replica's, or the primary's), recorded."""
        answer = Answer(name, BROWSE, time.monotonic(), 0.0, None)
        self.answers.append(answer)
        try:
            async with session.get(BROWSE) as response:
                answer.status = response.status
                answer.retry_after = response.headers.get("Retry-After")
                await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            answer.error = repr(exc)[:200]
        answer.seconds = time.monotonic() - answer.sent

    async def _until_done(
        self,
        session: aiohttp.ClientSession,
        name: str,
        path: str,
        body: dict[str, object],
        headers: dict[str, str],
    ) -> dict[str, object] | None:
        """POST until a 2xx (its JSON); a 503 is tried again; anything else ends the client
        (None): the answer is recorded for the test to report."""
        while True:
            sent = time.monotonic()
            answer = Answer(name, path, sent, 0.0, None)
            self.answers.append(answer)
            try:
                async with session.post(path, json=body, headers=headers) as response:
                    answer.status = response.status
                    answer.retry_after = response.headers.get("Retry-After")
                    payload = await response.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                answer.error = repr(exc)[:200]
                payload = None
            answer.seconds = time.monotonic() - sent
            if answer.status is not None and 200 <= answer.status < 300:
                return payload if isinstance(payload, dict) else {}
            if answer.status != 503:
                return None
            await asyncio.sleep(self.retry_pause)


@dataclass
class FailoverShop:
    """The pair, the database and the shop's processes; `await start()`, `await close()`."""

    run_dir: Path
    redis_url: str
    broker_url: str
    smtp_url: str
    cluster: PgCluster = field(default_factory=lambda: PgCluster(synchronous=True))
    settings: Settings | None = None
    processes: dict[str, ShopProcess] = field(default_factory=dict)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def primary_dsn(self) -> str:
        """The current primary's own DSN (it follows a promotion)."""
        return self.cluster.primary_dsn(DATABASE)

    async def start(self) -> None:
        """Start the pair, prepare the database, start web, worker and relay; raises if one
        does not come up within START_TIMEOUT_SECONDS."""
        await asyncio.to_thread(self.cluster.start)
        await asyncio.to_thread(
            self.cluster.psql, self.cluster.primary_dsn(), "CREATE DATABASE shop"
        )
        await migrate(self.primary_dsn())
        await stocked_product(self.primary_dsn(), "failover-tee", {SKU: 1_000_000}, price=1500)
        await asyncio.to_thread(self.cluster.wait_for_replay)
        (self.port,) = free_ports(1)
        self.settings = Settings(
            database_url=self.cluster.hosts_dsn(DATABASE, "read-write"),
            replica_database_url=self.cluster.hosts_dsn(
                DATABASE, "prefer-standby", first="replica"
            ),
            redis_url=self.redis_url,
            broker_url=self.broker_url,
            smtp_url=self.smtp_url,
            secret_key="failover-secret-" + "f" * 32,
            data_dir=self.run_dir / "data",
            database_pool_size=4,
            database_acquire_timeout_seconds=2.0,
            replica_check_interval_seconds=0.5,
            relay_poll_interval_seconds=0.5,
            worker_metrics_port=0,
            relay_metrics_port=0,
            log_format="json",
            catalog_cache_seconds=0,  # catalog reads reach the database (a pool), not Redis
        )
        web = ["web", "--host", "127.0.0.1", "--port", str(self.port)]
        commands = {
            "web": web,
            "worker": ["worker", "--processes", "1", "--threads", "4"],
            "relay": ["relay"],
        }
        for name, argv in commands.items():
            process = ShopProcess.aioshop(self.settings, self.run_dir / f"{name}.log", *argv)
            process.start()
            self.processes[name] = process
        await asyncio.gather(*(self._ready(name, mark) for name, mark in READY_MARKS.items()))

    def alive(self) -> dict[str, bool]:
        """Whether each process still runs (the same process: none is restarted here)."""
        return {
            name: p.process is not None and p.process.poll() is None
            for name, p in self.processes.items()
        }

    async def close(self) -> None:
        """Stop the processes and the pair, whatever failed before. Never raises."""
        await asyncio.gather(
            *(asyncio.to_thread(p.stop) for p in self.processes.values()), return_exceptions=True
        )
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.cluster.stop)

    async def order_ids(self, numbers: list[str]) -> dict[str, int]:
        """number -> id of the orders that exist on the current primary."""
        conn = await asyncpg.connect(self.primary_dsn())
        try:
            rows = await conn.fetch("SELECT number, id FROM orders WHERE number = ANY($1)", numbers)
        finally:
            await conn.close()
        return {row["number"]: row["id"] for row in rows}

    async def all_order_ids(self) -> list[int]:
        conn = await asyncpg.connect(self.primary_dsn())
        try:
            return [row["id"] for row in await conn.fetch("SELECT id FROM orders ORDER BY id")]
        finally:
            await conn.close()

    async def _ready(self, name: str, awaited: str) -> None:
        """Until the process logs `awaited`, or for the web until `awaited` (a path) answers 200."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not await self._shows(name, awaited):
            process = self.processes[name]
            if time.monotonic() > deadline or not self.alive()[name]:
                tail = "\n".join(process.log().splitlines()[-20:])
                raise RuntimeError(f"{name} did not come up (awaiting {awaited}):\n{tail}")
            await asyncio.sleep(0.2)

    async def _shows(self, name: str, awaited: str) -> bool:
        if not awaited.startswith("/"):
            return awaited in self.processes[name].log()
        timeout = aiohttp.ClientTimeout(total=2)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.base_url + awaited) as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False


def progress(text: str, began: float) -> None:
    """One line on stderr, for a run that is slow to say where it is."""
    print(f"failover: {time.monotonic() - began:5.1f} s {text}", file=sys.stderr, flush=True)
