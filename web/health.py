"""/healthz (the process lives) and /readyz (it can serve shoppers).

Ready means the primary answers and its schema has every migration this code ships: without
either, no page can be served. One exception keeps browsing up through a failover: while the
primary cannot be reached and the replica serves the browsing reads alone (storage.replica, a
standby that was fresh when the primary went), the process is ready, degraded, with "primary" in
`degraded` (checkouts answer 503 with Retry-After; catalog pages 200), and the migrations are
checked on the replica, which carries the primary's schema.

The other dependencies only degrade the shop (Redis: the cache is bypassed and throttles fail
open; the replica: reads go to the primary; the broker: the outbox keeps the events;
Elasticsearch: PostgreSQL answers searches; SMTP: the actors retry), so they are listed in the
body and in `aioshop_dependency_up`, never a 503: a load balancer that follows /readyz must not
pull every web process when Redis blips. Every check has a timeout, and they run concurrently,
so /readyz answers within CHECK_TIMEOUT_SECONDS and a little.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import aiosmtplib
import pika
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from configs.settings import Settings
from configs.urls import SmtpServer
from storage.migrate import pending
from web import metrics
from web.keys import DB, REDIS, SETTINGS

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"

Check = Callable[[], Awaitable[object]]
_check_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readiness")


async def healthz(request: web.Request) -> web.Response:
    """200 while the process can answer at all."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the primary answers with every migration applied (listing what is degraded);
    503 when it does not, naming what is down."""
    migrations: list[str] = []

    db = request.config_dict[DB]

    async def primary() -> None:
        migrations.extend(await pending(db.primary))

    optional = dependency_checks(request.config_dict)
    names = ["primary", *optional]
    results = await asyncio.gather(_run(primary), *(_run(check) for check in optional.values()))
    checks = dict(zip(names, results, strict=True))
    for name, result in checks.items():
        metrics.DEPENDENCY_UP.labels(name).set(1 if result == OK else 0)
    schema = checks["primary"]
    serving_alone = schema != OK and db.replica.state.usable
    if serving_alone:  # browsing goes on from the replica: its schema is the primary's
        replica = db.replica.replica_pool

        async def replica_schema() -> None:
            migrations.extend(await pending(replica))

        schema = await _run(replica_schema)
        serving_alone = schema == OK
    metrics.MIGRATIONS_PENDING.set(len(migrations))
    checks["migrations"] = "unknown" if schema != OK else _migrations_state(migrations)
    down = [name for name in ("primary", "migrations") if checks[name] != OK]
    if serving_alone:  # writes wait for a primary; browsing does not
        down.remove("primary")
    degraded = sorted(name for name in names if checks[name] != OK and name not in down)
    body: dict[str, Any] = {"checks": checks, "degraded": degraded}
    if migrations:
        body["pending_migrations"] = migrations
    if down:
        log.warning("readiness.failed", down=down, degraded=degraded)
        return web.json_response({"status": "unavailable", "down": down, **body}, status=503)
    if degraded:
        log.warning("readiness.degraded", degraded=degraded)
    return web.json_response({"status": "degraded" if degraded else "ready", **body})


def _migrations_state(migrations: list[str]) -> str:
    return OK if not migrations else f"pending: {len(migrations)}"


def dependency_checks(config: Mapping[Any, Any]) -> dict[str, Check]:
    """The shop's optional dependencies that are configured, each as a check that raises when
    the dependency does not answer."""
    settings: Settings = config[SETTINGS]
    checks: dict[str, Check] = {
        "redis": lambda: config[REDIS].ping(),
        "broker": lambda: check_broker(settings),
    }
    replica = config[DB].replica.replica_pool
    if replica is not None:
        checks["replica"] = lambda: replica.fetchval("SELECT 1")
    if settings.elasticsearch_url is not None:
        checks["search"] = lambda: check_http(f"{settings.elasticsearch_url}")
    smtp = settings.smtp_server
    if smtp is not None:
        checks["smtp"] = lambda: check_smtp(smtp)
    return checks


async def _run(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not answering"; say which kind
        return f"error: {type(exc).__name__}"
    return OK


async def check_broker(settings: Settings) -> None:
    """Open (and close) a real connection to the broker; raises when it is unreachable."""
    url = settings.broker_url
    if settings.broker_kind == "redis":
        client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
        )
        try:
            await client.ping()
        finally:
            await client.aclose()
        return
    # Its own threads: the default pool may be busy, and readiness must not wait behind it.
    nodes = settings.broker_urls  # a cluster answers when one of its nodes does
    await asyncio.get_running_loop().run_in_executor(_check_pool, _amqp_roundtrip, nodes)


def _amqp_roundtrip(urls: list[str]) -> None:
    nodes = []
    for url in urls:
        params = pika.URLParameters(url)
        # Bounded in the thread too: asyncio's timeout stops the wait, not pika's blocking calls.
        params.socket_timeout = CHECK_TIMEOUT_SECONDS
        params.stack_timeout = CHECK_TIMEOUT_SECONDS
        params.blocked_connection_timeout = CHECK_TIMEOUT_SECONDS
        params.connection_attempts = 1
        nodes.append(params)
    connection = pika.BlockingConnection(nodes)
    connection.close()


async def check_http(url: str) -> None:
    """GET the URL; raises unless it answers below 500."""
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        if response.status >= 500:
            raise RuntimeError(f"status {response.status}")


async def check_smtp(server: SmtpServer) -> None:
    """Connect to the SMTP server (TLS first for smtps://), read its greeting, say QUIT."""
    client = aiosmtplib.SMTP(
        hostname=server.hostname,
        port=server.port,
        use_tls=server.use_tls,
        start_tls=False,  # the greeting is enough to know it answers
        timeout=CHECK_TIMEOUT_SECONDS,
    )
    await client.connect()
    try:
        await client.quit()
    finally:
        client.close()
