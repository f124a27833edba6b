"""Benchmark of the auth paths on a real server: login, refresh, and what bearer auth costs a read.

A script, not a test: it asserts nothing and prints figures. It needs the local PostgreSQL
(TEST_DATABASE_URL; a throwaway database), Redis (DB 14, flushed) and a RabbitMQ URL for the
settings. The load generator shares the cores with the server, so compare runs on one machine only.
    .venv/bin/python -m tests.bench.auth_bench [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import argon2
import redis

from auth.passwords import MAX_WAITING_HASHES
from configs.logging import configure_logging
from storage.demo import seed_demo
from storage.migrate import migrate
from tests.bench.support import ADMIN_DSN, clean_env, execute, serving

REDIS_URL = "redis://127.0.0.1:6379/14"
SERVER_ENV = {
    "REDIS_URL": REDIS_URL,
    "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",  # settings only: no worker runs
    "SECRET_KEY": "bench-secret-" + "k" * 27,
    "TRUST_FORWARDED_HEADERS": "true",  # so each request may claim its own client address
    "LOG_LEVEL": "warning",
    "LOG_FORMAT": "json",
}
PASSWORD = "bench-password-not-common-42"
Send = Callable[[aiohttp.ClientSession, int], Awaitable[int]]  # (session, worker) -> HTTP status


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)  # 0: no HTTP answer at all

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[round(quantile * (len(ordered) - 1))] * 1000


class Bench:
    """The requests of each phase, and the tokens each worker holds between them."""

    def __init__(self, users: int, concurrency: int) -> None:
        self.users, self.addresses, self.logins = users, itertools.count(1), itertools.count()
        self.tokens: list[dict[str, Any]] = [{}] * concurrency

    def client(self) -> dict[str, str]:
        """A new client address each time, so the per-IP throttles never trip."""
        n = next(self.addresses)
        return {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}

    async def register(self, http: aiohttp.ClientSession, i: int) -> int:
        """Create user i; waits out the server's busy answers (503) while hashes queue."""
        body = {"email": f"bench{i}@example.com", "password": PASSWORD, "name": f"Bench {i}"}
        while True:
            async with http.post("/api/v1/auth/register", json=body, headers=self.client()) as resp:
                await resp.read()
                if resp.status != 503:
                    return resp.status
            await asyncio.sleep(0.2)

    async def login(self, http: aiohttp.ClientSession, worker: int) -> int:
        # Round robin: each account stays far below its 10 logins per 15 minutes.
        email = f"bench{next(self.logins) % self.users}@example.com"
        body = {"email": email, "password": PASSWORD}
        async with http.post("/api/v1/auth/login", json=body, headers=self.client()) as resp:
            if resp.status == 200:
                self.tokens[worker] = await resp.json()
            return resp.status

    async def ensure_session(self, http: aiohttp.ClientSession, worker: int) -> None:
        """Sign the worker in if it holds no tokens (its logins may all have met a busy 503)."""
        while "refresh_token" not in self.tokens[worker]:
            if await self.login(http, worker) != 200:
                await asyncio.sleep(0.2)

    async def refresh(self, http: aiohttp.ClientSession, worker: int) -> int:
        await self.ensure_session(http, worker)
        body = {"refresh_token": self.tokens[worker]["refresh_token"]}
        async with http.post("/api/v1/auth/refresh", json=body) as resp:
            if resp.status == 200:
                self.tokens[worker] = await resp.json()
                return 200
        await self.login(http, worker)  # the chain broke: start a new session
        return resp.status

    def catalog(self, authenticated: bool) -> Send:
        async def send(http: aiohttp.ClientSession, worker: int) -> int:
            await self.ensure_session(http, worker)
            bearer = {"Authorization": f"Bearer {self.tokens[worker]['access_token']}"}
            async with http.get("/api/v1/products", headers=bearer if authenticated else {}) as r:
                await r.read()
                return r.status

        return send


async def run_phase(
    name: str, http: aiohttp.ClientSession, concurrency: int, seconds: float, send: Send
) -> Result:
    """Run `concurrency` workers sending back to back for `seconds`; time every request."""
    result, deadline = Result(name), time.perf_counter() + seconds

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status = await send(http, index)
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def load(base_url: str, n: int, seconds: float, users: int) -> list[Result]:
    """Register the users, then run every phase against the server with `n` workers."""
    bench = Bench(users, n)
    async with aiohttp.ClientSession(
        base_url,
        connector=aiohttp.TCPConnector(limit=n),
        cookie_jar=aiohttp.DummyCookieJar(),  # no LSN or session cookies: requests stand alone
        timeout=aiohttp.ClientTimeout(total=120),
    ) as http:
        started = time.perf_counter()
        made = Counter(await asyncio.gather(*(bench.register(http, i) for i in range(users))))
        took = time.perf_counter() - started
        print(f"setup: {users} registrations in {took:.1f} s ({users / took:.1f}/s), {made=}")
        # Logins queue on the server's hashing pool; past MAX_WAITING_HASHES it answers 503 at
        # once (and the attempt still counts against the account's throttle), so measure the
        # pool's throughput with as many clients as it queues.
        logins = min(n, MAX_WAITING_HASHES)
        print(f"login phase: {logins} workers (the server queues at most {MAX_WAITING_HASHES})")
        results = [await run_phase("login", http, logins, seconds, bench.login)]
        await asyncio.gather(*(bench.ensure_session(http, worker) for worker in range(n)))
        results.append(await run_phase("refresh", http, n, seconds, bench.refresh))
        for _ in range(2):  # interleaved, best of two: the cores are shared and noisy
            for name, authenticated in (("catalog (no auth)", False), ("catalog (auth)", True)):
                send = bench.catalog(authenticated)
                results.append(await run_phase(name, http, n, seconds, send))
    return results


def report(results: list[Result]) -> None:
    print("catalog runs, req/s: " + ", ".join(f"{r.name} {r.rate:.0f}" for r in results[2:]))
    best: dict[str, Result] = {}
    for result in results:
        if result.name not in best or result.rate > best[result.name].rate:
            best[result.name] = result
    print(f"{'phase':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} errors  429s")
    for r in best.values():
        errors = sum(n for status, n in r.statuses.items() if status not in (200, 429))
        print(
            f"{r.name:<18} {r.rate:>8.1f} {r.ms(0.5):>8.1f} {r.ms(0.99):>8.1f} {r.ms(1):>8.1f}"
            f" {errors:>6} {r.statuses[429]:>5}" + (f"  {dict(r.statuses)}" if errors else "")
        )
    plain, authed = best["catalog (no auth)"], best["catalog (auth)"]
    print(
        f"catalog (auth) / catalog (no auth): {authed.rate / plain.rate:.2f}x requests/s,"
        f" {authed.ms(0.5) - plain.ms(0.5):+.2f} ms at p50"
    )


def summarise_server_log(path: Path) -> None:
    """Count the server's warning and error events (it logs JSON lines at warning level)."""
    events: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"level": "raw", "event": line[:120]}
        events[f"{entry.get('level')} {entry.get('event')}"] += 1
    print("server log: " + (", ".join(f"{e} x{n}" for e, n in events.items()) or "empty"))


async def serve_and_load(dsn: str, args: argparse.Namespace, workdir: Path) -> None:
    """Start `web.cli web` on a free port, load it, stop it, and print what was seen."""
    env = clean_env(SERVER_ENV | {"DATABASE_URL": dsn, "DATA_DIR": str(workdir)})
    log_path = workdir / "server.log"
    argv = ["-m", "web.cli", "web", "--host", "127.0.0.1"]
    async with serving(argv, env, log_path) as base_url:
        users = args.users or 4 * args.concurrency
        results = await load(base_url, args.concurrency, args.seconds, users)
    report(results)
    summarise_server_log(log_path)


async def main(args: argparse.Namespace) -> None:
    hasher = argon2.PasswordHasher()
    print(
        f"machine: nproc={len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f};"
        f" argon2id time_cost={hasher.time_cost} memory_cost={hasher.memory_cost} KiB"
        f" parallelism={hasher.parallelism}; {args.concurrency} workers, {args.seconds:g} s a phase"
    )
    name = f"aioshop_bench_{os.getpid()}"
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    await execute(ADMIN_DSN, f'CREATE DATABASE "{name}"')
    try:
        await migrate(dsn)
        await seed_demo(dsn)  # the catalog phases read its products
        with redis.Redis.from_url(REDIS_URL) as client:
            client.flushdb()  # throttle counters of an earlier run would trip this one
        with tempfile.TemporaryDirectory(prefix="aioshop_bench_") as workdir:
            await serve_and_load(dsn, args, Path(workdir))
    finally:
        await execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--users", type=int, help="accounts to register (default 4 per worker)")
    configure_logging("console", "warning")
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        print("interrupted: the server is stopped and the database dropped", file=sys.stderr)
        raise SystemExit(130) from None
