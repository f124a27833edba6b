"""Prometheus metrics of the web process, served at /metrics.

Two kinds of values:
- each process's own (request latencies, orders placed, cache lookups, pool connections...): in
  multiprocess mode (configs/metrics.py, set by `aioshop web`) they are files in METRICS_DIR/web
  and /metrics sums every web process's (MultiProcessCollector), whichever process answers;
  without it (tests running the app in their own process), prometheus_client's default registry.
- the shop's state, one value per shop (outbox backlog, replica, throttle store, oldest unsent
  email, and at merge queue depths and heartbeats): computed when /metrics is scraped by the
  *scrape sources* in `app[SCRAPE_SOURCES]`, each `async (app) -> Iterable[Metric]`, run
  concurrently, each bounded by `app[SOURCE_TIMEOUT]` (setup's `timeout`). A source that fails
  or times out is logged and counted in aioshop_metrics_source_errors_total{source}, and its
  metrics are left out of that scrape (an absent series, not a stale or made-up value); the
  others still answer.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import suppress

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from actors.dead_letters import BrokerUnavailable
from actors.ops import heartbeats, queues
from auth import throttle
from configs.metrics import multiprocess_dir
from domain.events import EMAIL_EVENTS
from storage import outbox
from web.keys import DB, OPS_BROKER, REDIS, SETTINGS

log = structlog.get_logger(__name__)

HTTP_REQUESTS = Histogram(
    "aioshop_http_request_duration_seconds",
    "HTTP request latency by route and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POOL_CONNECTIONS = Gauge(
    "aioshop_db_pool_connections",
    "asyncpg pool connections of the web processes (summed over the live ones).",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
DEPENDENCY_UP = Gauge(
    "aioshop_dependency_up",
    "1 when the dependency answered the last /readyz check, else 0 (configured ones only).",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)
MIGRATIONS_PENDING = Gauge(
    "aioshop_migrations_pending",
    "Shipped migrations the primary had not applied at /readyz.",
    multiprocess_mode="livemostrecent",
)
SOURCE_ERRORS = Counter(
    "aioshop_metrics_source_errors_total",
    "Scrape sources of /metrics that failed or timed out (their metrics were left out).",
    ["source"],
)
SAMPLER_ERRORS = Counter(
    "aioshop_metrics_sampler_errors_total",
    "Failures of the loop that records this process's pool connections.",
)

SOURCE_TIMEOUT_SECONDS = 3.0
POOL_SAMPLE_SECONDS = 5.0
THROTTLE_PING_TIMEOUT_SECONDS = 1.0

ScrapeSource = Callable[[web.Application], Awaitable[Iterable[Metric]]]
SCRAPE_SOURCES = web.AppKey("scrape_sources", list[ScrapeSource])
SOURCE_TIMEOUT = web.AppKey("scrape_source_timeout_seconds", float)


# `labels()` validates and locks on every call, a noticeable part of a cheap request: each
# series is looked up once. Routes are patterns, so the series are few.
_request_series = functools.lru_cache(maxsize=1024)(HTTP_REQUESTS.labels)


# A client may send any token as its method: only these are label values, the rest "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Record one finished HTTP request (`route`: the route's pattern, never the raw path)."""
    _request_series(method if method in METHODS else "other", route, str(status)).observe(seconds)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    """One scrape-time gauge without labels."""
    return GaugeMetricFamily(name, documentation, value=value)


async def outbox_source(app: web.Application) -> Iterable[Metric]:
    """The outbox's backlog, its oldest event, parked events, unsettled re-publishes."""
    primary = app[DB].primary
    backlog = await outbox.backlog(primary)
    republished = await outbox.republished_count(primary)
    return [
        gauge(
            "aioshop_outbox_unpublished", "Outbox events not yet published.", backlog.unpublished
        ),
        gauge(
            "aioshop_outbox_oldest_age_seconds",
            "Age of the oldest unpublished event (0: none).",
            backlog.oldest_age_seconds,
        ),
        gauge(
            "aioshop_outbox_parked",
            "Outbox events given up on, waiting for an operator (/ops/outbox).",
            backlog.parked,
        ),
        gauge(
            "aioshop_outbox_republished_unsettled",
            "Events the reconciler published again whose effect is not recorded yet.",
            republished,
        ),
    ]


async def replica_source(app: web.Application) -> Iterable[Metric]:
    """What the replica monitor of the answering process last measured, and the bound."""
    replica = app[DB].replica
    state = replica.state
    lag = state.lag_seconds if state.lag_seconds is not None else math.nan
    return [
        gauge(
            "aioshop_replica_healthy",
            "1 when browsing reads go to the replica.",
            1 if state.usable else 0,
        ),
        gauge(
            "aioshop_replica_lag_seconds", "Replica replay lag as last measured (NaN: not).", lag
        ),
        gauge(
            "aioshop_replica_max_lag_seconds",
            "The lag beyond which reads leave the replica (REPLICA_MAX_LAG_SECONDS).",
            replica.max_lag_seconds,
        ),
    ]


async def throttle_source(app: web.Application) -> Iterable[Metric]:
    """Whether the throttles' Redis answers now (when it does not, throttles fail open)."""
    up = await throttle.store_up(app[REDIS], THROTTLE_PING_TIMEOUT_SECONDS)
    return [
        gauge(
            "aioshop_throttle_store_up",
            "1 when the throttles' Redis answered a PING at this scrape, else 0 (fail open).",
            up,
        )
    ]


async def email_source(app: web.Application) -> Iterable[Metric]:
    """The oldest email event whose effect the inbox has not recorded."""
    age = await outbox.oldest_unapplied_age(app[DB].primary, EMAIL_EVENTS)
    return [
        gauge(
            "aioshop_email_oldest_unsent_age_seconds",
            "Age of the oldest email event not sent yet, neither parked nor discarded (0: none).",
            age,
        )
    ]


async def queue_source(app: web.Application) -> Iterable[Metric]:
    """Every queue's depth, consumers, oldest message and SLO (actors.ops.queues; read through
    the operators' broker thread and shared for a few seconds with the /ops pages)."""
    reading = await app[OPS_BROKER].read_depths(app[SETTINGS])
    if reading.error is not None:
        raise BrokerUnavailable(reading.error)  # counted as this source's error, logged
    return queues.metric_families(reading.depths)


async def process_source(app: web.Application) -> Iterable[Metric]:
    """Worker processes and relays alive and silent, from their heartbeats in Redis."""
    return await heartbeats.metric_families(app[REDIS])


DEFAULT_SOURCES: tuple[ScrapeSource, ...] = (
    outbox_source,
    replica_source,
    throttle_source,
    email_source,
    queue_source,
    process_source,
)


async def _run_source(source: ScrapeSource, app: web.Application) -> list[Metric]:
    name = getattr(source, "__name__", "source")
    try:
        timeout = app.get(SOURCE_TIMEOUT, SOURCE_TIMEOUT_SECONDS)
        return list(await asyncio.wait_for(source(app), timeout))
    except Exception as exc:  # one source failing leaves the others' metrics
        SOURCE_ERRORS.labels(name).inc()
        log.warning("metrics.source_failed", source=name, error=repr(exc))
        return []


class _Fixed:
    """A collector giving metrics computed beforehand (this scrape's sources)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


class _Forward:
    """A collector giving the default registry's metrics (outside multiprocess mode)."""

    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())


def sample_pools(app: web.Application) -> None:
    """This process's pool connections, into its own (livesum) gauge series."""
    db = app[DB]
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


async def exposition(app: web.Application) -> bytes:
    """The text exposition: every process's own metrics and this scrape's sources."""
    sample_pools(app)
    sources = app.get(SCRAPE_SOURCES, list(DEFAULT_SOURCES))
    results = await asyncio.gather(*(_run_source(source, app) for source in sources))
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward())
    registry.register(_Fixed(metric for metrics in results for metric in metrics))
    # Off the event loop: in multiprocess mode this reads every process's files.
    return await asyncio.to_thread(generate_latest, registry)


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text format; the shop's state is computed at scrape time."""
    body = await exposition(request.app)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def pool_sampler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Record this process's pool connections every POOL_SAMPLE_SECONDS, so the sum over the
    web processes is current whichever one answers a scrape. Starts once the pools are open."""

    async def loop() -> None:
        while True:
            try:
                sample_pools(app)
            except Exception as exc:  # never stops: the next tick tries again
                SAMPLER_ERRORS.inc()
                log.warning("metrics.sample_failed", error=repr(exc))
            await asyncio.sleep(POOL_SAMPLE_SECONDS)

    task = asyncio.create_task(loop(), name="metrics-pool-sampler")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def setup(
    app: web.Application,
    extra_sources: Iterable[ScrapeSource] = (),
    *,
    timeout: float = SOURCE_TIMEOUT_SECONDS,
) -> None:
    """/metrics on `app` with the default scrape sources and `extra_sources`, each bounded by
    `timeout` seconds per scrape; add the pool sampler to cleanup_ctx after the database's (it
    reads app[DB])."""
    app[SCRAPE_SOURCES] = [*DEFAULT_SOURCES, *extra_sources]
    app[SOURCE_TIMEOUT] = timeout
    app.router.add_get("/metrics", metrics_view)
    app.cleanup_ctx.append(pool_sampler_ctx)
