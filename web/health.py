"""/healthz (the process lives) and /readyz (every dependency answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pika
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from configs.settings import Settings
from web.keys import DB, REDIS, SETTINGS

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0

Check = Callable[[], Awaitable[object]]
_check_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readiness")


async def healthz(request: web.Request) -> web.Response:
    """200 while the process can answer at all."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when every configured dependency answers; 503 naming the ones that do not."""
    settings = request.config_dict[SETTINGS]
    db = request.config_dict[DB]
    checks: dict[str, Check] = {
        "primary": lambda: db.primary.fetchval("SELECT 1"),
        "redis": lambda: request.config_dict[REDIS].ping(),
        "broker": lambda: check_broker(settings),
    }
    replica = db.replica.replica_pool
    if replica is not None:
        checks["replica"] = lambda: replica.fetchval("SELECT 1")
    if settings.elasticsearch_url is not None:
        checks["search"] = lambda: check_http(f"{settings.elasticsearch_url}")
    results = await asyncio.gather(*(_run(name, check) for name, check in checks.items()))
    report = dict(zip(checks, results, strict=True))
    down = sorted(name for name, result in report.items() if result != "ok")
    if down:
        log.warning("readiness.failed", down=down)
        body: dict[str, Any] = {"status": "unavailable", "down": down, "checks": report}
        return web.json_response(body, status=503)
    return web.json_response({"status": "ready", "checks": report})


async def _run(name: str, check: Check) -> str:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready"; say which kind
        return f"error: {type(exc).__name__}"
    return "ok"


async def check_broker(settings: Settings) -> None:
    """Open (and close) a real connection to the broker; raises when it is unreachable."""
    url = str(settings.broker_url)
    if settings.broker_kind == "redis":
        client: aioredis.Redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return
    # Its own threads: the default pool may be busy, and readiness must not wait behind it.
    await asyncio.get_running_loop().run_in_executor(_check_pool, _amqp_roundtrip, url)


def _amqp_roundtrip(url: str) -> None:
    params = pika.URLParameters(url)
    params.socket_timeout = CHECK_TIMEOUT_SECONDS
    params.connection_attempts = 1
    params.blocked_connection_timeout = CHECK_TIMEOUT_SECONDS
    connection = pika.BlockingConnection(params)
    connection.close()


async def check_http(url: str) -> None:
    """GET the URL; raises unless it answers below 500."""
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        if response.status >= 500:
            raise RuntimeError(f"status {response.status}")
