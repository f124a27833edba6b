"""/healthz, /readyz and /metrics against real and deliberately unreachable services.

Ready means "this process can serve shoppers": the primary answers and has every migration. A
dependency the shop runs without (Redis, the replica, the broker, search, SMTP) that is down is
listed as degraded, in the body and in `aioshop_dependency_up`, with a 200.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from storage.migrate import available
from tests.support.db import sql
from tests.support.tcp_proxy import TcpProxy
from web.app import create_app


def dead_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A local port that accepts connections and never says a word (a hung server)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()
        await server.wait_closed()


async def ready_of(aiohttp_client: Any, settings: Any) -> tuple[int, dict[str, Any], str]:
    """(status, body) of /readyz and the /metrics text after it, from an app for `settings`."""
    client = await aiohttp_client(create_app(settings))
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
        metrics = await (await client.get("/metrics")).text()
    finally:
        await client.close()
    return resp.status, body, metrics


async def test_healthz_answers(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_readyz_is_ready_when_every_service_answers(client) -> None:
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "ready" and body["degraded"] == []
    assert body["checks"] == {"primary": "ok", "migrations": "ok", "redis": "ok", "broker": "ok"}
    metrics = await (await client.get("/metrics")).text()
    for name in ("primary", "redis", "broker"):
        assert f'aioshop_dependency_up{{dependency="{name}"}} 1.0' in metrics
    assert "aioshop_migrations_pending 0.0" in metrics


DEAD = [
    ("redis_url", "redis://127.0.0.1:{port}/0", "redis"),
    ("broker_url", "amqp://guest:guest@127.0.0.1:{port}/", "broker"),
    ("broker_url", "redis://127.0.0.1:{port}/1", "broker"),
    ("replica_database_url", "postgresql://postgres@127.0.0.1:{port}/postgres", "replica"),
    ("elasticsearch_url", "http://127.0.0.1:{port}", "search"),
    ("smtp_url", "smtp://127.0.0.1:{port}", "smtp"),
]


@pytest.mark.parametrize(("setting", "url", "name"), DEAD)
async def test_a_dead_dependency_is_degraded_not_unready(
    aiohttp_client, fresh_db, settings_for, setting, url, name
) -> None:
    settings = settings_for(fresh_db, **{setting: url.format(port=dead_port())})
    status, body, metrics = await ready_of(aiohttp_client, settings)
    assert status == 200, body
    assert body["status"] == "degraded" and body["degraded"] == [name]
    assert body["checks"]["primary"] == "ok" and body["checks"]["migrations"] == "ok"
    assert body["checks"][name].startswith("error: ")
    assert f'aioshop_dependency_up{{dependency="{name}"}} 0.0' in metrics
    assert 'aioshop_dependency_up{dependency="primary"} 1.0' in metrics


@pytest.mark.parametrize(
    ("setting", "url", "name"),
    DEAD,
)
async def test_a_hung_dependency_is_cut_off_by_the_check_timeout(
    aiohttp_client, fresh_db, settings_for, silent_port, setting, url, name
) -> None:
    settings = settings_for(fresh_db, **{setting: url.format(port=silent_port)})
    status, body, _ = await ready_of(aiohttp_client, settings)
    assert status == 200 and body["degraded"] == [name], body
    assert body["checks"][name] == "error: TimeoutError"


async def test_a_configured_smtp_server_that_answers_is_ok(
    aiohttp_client, fresh_db, settings_for, smtp
) -> None:
    status, body, _ = await ready_of(aiohttp_client, settings_for(fresh_db, smtp_url=smtp.url))
    assert status == 200 and body["checks"]["smtp"] == "ok", body


async def test_pending_migrations_make_the_process_unready(
    aiohttp_client, fresh_db, settings_for
) -> None:
    newest = available()[-1]
    await sql(fresh_db, "DELETE FROM schema_migrations WHERE version = $1", newest.version)
    status, body, metrics = await ready_of(aiohttp_client, settings_for(fresh_db))
    assert status == 503, body
    assert body["status"] == "unavailable" and body["down"] == ["migrations"]
    assert body["pending_migrations"] == [newest.name]
    assert body["checks"]["primary"] == "ok"
    assert "aioshop_migrations_pending 1.0" in metrics


async def test_an_unreachable_primary_makes_the_process_unready(
    aiohttp_client, fresh_db, settings_for
) -> None:
    proxy = TcpProxy.of(fresh_db, 5432)
    await proxy.start()
    try:
        client = await aiohttp_client(create_app(settings_for(proxy.url_through(fresh_db))))
        try:
            assert (await client.get("/readyz")).status == 200
            proxy.refuse(60)
            resp = await client.get("/readyz")
            body = await resp.json()
        finally:
            await client.close()
    finally:
        await proxy.stop()
    assert resp.status == 503, body
    assert body["down"] == ["primary", "migrations"]
    assert body["checks"]["primary"].startswith("error: ")
    assert body["checks"]["migrations"] == "unknown"


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
