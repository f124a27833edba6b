"""/metrics in the test's own process (the default registry): scrape sources, bounded labels."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.core import GaugeMetricFamily, Metric

from domain.events import SEND_ORDER_EMAIL
from storage import outbox
from storage.database import connect
from tests.support.prometheus import label_names, promtool_problems, samples, value
from web import metrics
from web.app import create_app

REQUESTS = "aioshop_http_request_duration_seconds_count"


async def get_metrics(client: TestClient) -> str:
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return await response.text()


async def test_the_route_label_is_the_pattern_never_the_path(client: TestClient) -> None:
    before = value(
        await get_metrics(client), REQUESTS, route="/api/v1/products/{slug}", status="404"
    )
    for slug in ("no-such-lamp", "no-such-chair", "x" * 50):
        response = await client.get(f"/api/v1/products/{slug}")
        assert response.status == 404
    text = await get_metrics(client)
    assert value(text, REQUESTS, route="/api/v1/products/{slug}", status="404") >= before + 3
    routes = {labels["route"] for labels, _ in samples(text, REQUESTS)}
    assert not any("no-such" in route or "xxxx" in route for route in routes), routes
    # A path no route matches is one label value, however many such paths there are.
    for path in ("/nope/1", "/nope/2", "/wp-admin.php"):
        await client.get(path)
    routes = {labels["route"] for labels, _ in samples(await get_metrics(client), REQUESTS)}
    assert "unmatched" in routes and not any("nope" in route or "wp-" in route for route in routes)


async def test_a_method_outside_http_s_own_is_other(client: TestClient) -> None:
    for method in ("BREW", "PROPFIND", "X" * 40):
        await client.request(method, "/healthz")
    methods = {labels["method"] for labels, _ in samples(await get_metrics(client), REQUESTS)}
    assert methods <= metrics.METHODS | {"other"}, methods
    assert "other" in methods


async def test_the_scrape_time_gauges_are_there_and_promtool_accepts_the_exposition(
    client: TestClient, settings: Any
) -> None:
    text = await get_metrics(client)
    for name in (
        "aioshop_outbox_unpublished",
        "aioshop_outbox_oldest_age_seconds",
        "aioshop_outbox_parked",
        "aioshop_outbox_republished_unsettled",
        "aioshop_replica_healthy",
        "aioshop_replica_lag_seconds",
        "aioshop_email_oldest_unsent_age_seconds",
    ):
        assert samples(text, name), name
    assert value(text, "aioshop_replica_max_lag_seconds") == settings.replica_max_lag_seconds
    assert value(text, "aioshop_replica_healthy") == 0  # no replica configured
    assert value(text, "aioshop_throttle_store_up") == 1
    assert value(text, "aioshop_db_pool_connections", pool="primary", state="open") >= 1
    assert "pid" not in label_names(text)
    assert promtool_problems(text) == []


async def test_the_oldest_unsent_email_is_measured_at_each_scrape(
    client: TestClient, fresh_db: str
) -> None:
    conn = await connect(fresh_db)
    try:
        event_id = await outbox.add(conn, SEND_ORDER_EMAIL, order_id=1, kind="placed")
        await conn.execute(
            "UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE event_id = $1",
            event_id,
        )
        age = value(await get_metrics(client), "aioshop_email_oldest_unsent_age_seconds")
        assert 90 <= age < 150
        await conn.execute(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)",
            SEND_ORDER_EMAIL.name,
            event_id,
        )
        assert value(await get_metrics(client), "aioshop_email_oldest_unsent_age_seconds") == 0
    finally:
        await conn.close()


async def test_a_failing_or_hanging_source_is_left_out_and_counted(
    aiohttp_client: Any, settings: Any
) -> None:
    app = create_app(settings)
    app[metrics.SOURCE_TIMEOUT] = 0.2  # before start-up, as metrics.setup's `timeout` would

    async def broken_source(app: web.Application) -> Iterable[Metric]:
        raise RuntimeError("the queue API is down")

    async def stuck_source(app: web.Application) -> Iterable[Metric]:
        await asyncio.sleep(60)
        return [GaugeMetricFamily("aioshop_never", "never", value=1)]

    async def extra_source(app: web.Application) -> Iterable[Metric]:
        return [GaugeMetricFamily("aioshop_extra_things", "An added source's gauge.", value=7)]

    app[metrics.SCRAPE_SOURCES].extend([broken_source, stuck_source, extra_source])
    errors = metrics.SOURCE_ERRORS
    before = {name: errors.labels(name)._value.get() for name in ("broken_source", "stuck_source")}
    client = await aiohttp_client(app)
    try:
        started = asyncio.get_running_loop().time()
        text = await get_metrics(client)
        assert asyncio.get_running_loop().time() - started < 5  # bounded by the source timeout
        assert value(text, "aioshop_extra_things") == 7
        assert samples(text, "aioshop_outbox_unpublished")  # the others still answer
        assert not samples(text, "aioshop_never")
        for name, count in before.items():
            assert errors.labels(name)._value.get() == count + 1
            assert value(text, "aioshop_metrics_source_errors_total", source=name) >= count
    finally:
        await client.close()  # before the test database is dropped


@pytest.fixture
async def dead_redis_client(aiohttp_client: Any, settings_for: Any, fresh_db: str) -> Any:
    app = create_app(settings_for(fresh_db, redis_url="redis://127.0.0.1:1/0"))
    test_client = await aiohttp_client(app)
    yield test_client
    await test_client.close()


async def test_the_throttle_store_is_down_when_redis_does_not_answer(
    dead_redis_client: Any,
) -> None:
    text = await get_metrics(dead_redis_client)
    assert value(text, "aioshop_throttle_store_up") == 0
    assert samples(text, "aioshop_outbox_unpublished")  # the rest of the page is there
