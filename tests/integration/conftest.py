"""Fixtures for tests that run the app, the broker and the workers for real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import dramatiq
import pytest
from aiohttp.test_utils import TestClient

from actors.broker import build_broker
from auth.tokens import SigningKeys, issue_access_token
from configs.settings import Settings
from storage.database import connect
from tests.conftest import TEST_SECRET
from web.app import create_app


@pytest.fixture
async def conn(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, closed before the database is dropped."""
    connection = await connect(fresh_db)
    yield connection
    await connection.close()


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:
    """A client of the whole app; closed here, before the test database is dropped."""
    test_client = await aiohttp_client(create_app(settings))
    yield test_client
    await test_client.close()


@pytest.fixture
def staff_headers() -> dict[str, str]:
    """A staff bearer token valid for every app built by `settings_for`."""
    keys = SigningKeys.from_secrets(TEST_SECRET)
    return {"Authorization": f"Bearer {issue_access_token(keys, 1, 'staff')}"}


@pytest.fixture
def broker(settings: Settings) -> Iterator[dramatiq.Broker]:
    """A RabbitMQ broker with every actor declared, its queues emptied before and after."""
    broker = build_broker(settings)
    for queue in list(broker.get_declared_queues()):
        broker.declare_queue(queue)
    broker.flush_all()
    yield broker
    broker.flush_all()
    broker.close()


@pytest.fixture
async def worker(broker: dramatiq.Broker) -> AsyncIterator[dramatiq.Worker]:
    """A running Dramatiq worker (its actors use the test database)."""
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()
