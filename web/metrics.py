"""Prometheus metrics of the web process, served at /metrics."""

from __future__ import annotations

import functools

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, Histogram, generate_latest

from storage import outbox
from web.keys import DB

HTTP_REQUESTS = Histogram(
    "aioshop_http_request_duration_seconds",
    "HTTP request latency by route and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POOL_CONNECTIONS = Gauge(
    "aioshop_db_pool_connections", "asyncpg pool connections.", ["pool", "state"]
)
REPLICA_HEALTHY = Gauge("aioshop_replica_healthy", "1 when browsing reads go to the replica.")
REPLICA_LAG = Gauge("aioshop_replica_lag_seconds", "Replica replay lag as last measured.")
OUTBOX_BACKLOG = Gauge("aioshop_outbox_unpublished", "Outbox events not yet published.")
OUTBOX_OLDEST = Gauge("aioshop_outbox_oldest_age_seconds", "Age of the oldest unpublished event.")
OUTBOX_PARKED = Gauge(
    "aioshop_outbox_parked", "Outbox events given up on, waiting for an operator (/ops/outbox)."
)
OUTBOX_REPUBLISHED = Gauge(
    "aioshop_outbox_republished_unsettled",
    "Events the reconciler published again whose effect is not recorded yet.",
)
DEPENDENCY_UP = Gauge(
    "aioshop_dependency_up",
    "1 when the dependency answered the last /readyz check, else 0 (configured ones only).",
    ["dependency"],
)
MIGRATIONS_PENDING = Gauge(
    "aioshop_migrations_pending", "Shipped migrations the primary had not applied at /readyz."
)


# `labels()` validates and locks on every call, a noticeable part of a cheap request: each
# series is looked up once. Routes are patterns, so the series are few.
_request_series = functools.lru_cache(maxsize=1024)(HTTP_REQUESTS.labels)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Record one finished HTTP request."""
    _request_series(method, route, str(status)).observe(seconds)


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text format; the gauges are read at scrape time."""
    db = request.config_dict[DB]
    pools = {
        "primary": db.primary,
        "replica": db.replica.replica_pool,
        "fallback": db.replica.fallback,
    }
    for name, pool in pools.items():
        if pool is None:
            continue
        POOL_CONNECTIONS.labels(name, "open").set(pool.get_size())
        POOL_CONNECTIONS.labels(name, "idle").set(pool.get_idle_size())
    state = db.replica.state
    REPLICA_HEALTHY.set(1 if state.usable else 0)
    REPLICA_LAG.set(state.lag_seconds if state.lag_seconds is not None else float("nan"))
    backlog = await outbox.backlog(db.primary)
    OUTBOX_BACKLOG.set(backlog.unpublished)
    OUTBOX_OLDEST.set(backlog.oldest_age_seconds)
    OUTBOX_PARKED.set(backlog.parked)
    OUTBOX_REPUBLISHED.set(await outbox.republished_count(db.primary))
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
