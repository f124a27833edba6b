"""/healthz, /readyz and /metrics against real and deliberately unreachable services."""

from __future__ import annotations

import socket

import pytest

from web.app import create_app


def dead_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_healthz_answers(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_readyz_is_ready_when_every_service_answers(client) -> None:
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"] == {"primary": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.parametrize(
    ("setting", "url", "name"),
    [
        ("redis_url", "redis://127.0.0.1:{port}/0", "redis"),
        ("broker_url", "amqp://guest:guest@127.0.0.1:{port}/", "broker"),
        ("replica_database_url", "postgresql://postgres@127.0.0.1:{port}/postgres", "replica"),
    ],
)
async def test_readyz_names_the_service_that_is_down(
    aiohttp_client, fresh_db, settings_for, setting, url, name
) -> None:
    settings = settings_for(fresh_db, **{setting: url.format(port=dead_port())})
    client = await aiohttp_client(create_app(settings))
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
    finally:
        await client.close()
    assert resp.status == 503
    assert body["down"] == [name]
    assert body["checks"]["primary"] == "ok"


async def test_home_page_answers_even_when_the_replica_is_unreachable(
    aiohttp_client, fresh_db, settings_for
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{dead_port()}/postgres"
    client = await aiohttp_client(create_app(settings_for(fresh_db, replica_database_url=dead)))
    try:
        resp = await client.get("/")
        assert resp.status == 200
    finally:
        await client.close()


async def test_metrics_expose_http_pool_and_outbox_figures(client) -> None:
    await client.get("/healthz")
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200
    assert 'aioshop_http_request_duration_seconds_count{method="GET",route="/healthz"' in text
    assert 'aioshop_db_pool_connections{pool="primary",state="open"}' in text
    assert "aioshop_outbox_unpublished 0.0" in text
