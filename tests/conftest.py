"""Fixtures shared by every test: real PostgreSQL, Redis and RabbitMQ from the environment.

TEST_DATABASE_URL (a server where we may create databases), TEST_REDIS_URL and TEST_BROKER_URL
default to the standard local ports. A service that does not answer fails the test with a message
saying which one: the suite's promise is that it ran against real services. Each run works in a
Redis database and a RabbitMQ vhost of its own (tests/support/isolation.py), so runs on one
machine never touch each other's keys or messages.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from configs.settings import Settings
from storage.migrate import migrate
from tests.support.isolation import (
    IsolationError,
    claim_redis_database,
    create_vhost,
    new_run_id,
)
from tests.support.smtp import SmtpServer, smtp_server

ADMIN_DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Where the services are; a run takes a database and a vhost of its own on them.
REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER_BASE_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
RUN_ID = new_run_id()
TEST_SECRET = "test-secret-key-" + "x" * 32
# Every variable that names a service or secret: removed when a test must not inherit them.
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REPLICA_DATABASE_URL",
    "REDIS_URL",
    "BROKER_URL",
    "SECRET_KEY",
    "ELASTICSEARCH_URL",
    "SMTP_URL",
    "DATA_DIR",
)


def dsn_for(admin_dsn: str, database: str) -> str:
    """The admin DSN pointed at another database on the same server."""
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{database}"


async def _admin(dsn: str, *statements: str) -> None:
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {dsn}: {exc!r}")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class Template:
    """A migrated template database on one server; `clone()` makes a fresh test database."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.name = f"aioshop_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def create(self) -> None:
        await _admin(self.admin_dsn, f'CREATE DATABASE "{self.name}"')
        await migrate(dsn_for(self.admin_dsn, self.name))

    async def clone(self) -> str:
        name = f"aioshop_t_{uuid.uuid4().hex[:12]}"
        await _admin(self.admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        return name

    async def drop(self, name: str) -> None:
        await _admin(self.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template() -> Iterator[Template]:
    tpl = Template(ADMIN_DSN)
    asyncio.run(tpl.create())
    yield tpl
    asyncio.run(tpl.drop(tpl.name))


@pytest.fixture
async def fresh_db(template: Template) -> AsyncIterator[str]:
    """The DSN of a new database cloned from the migrated template; dropped afterwards."""
    name = await template.clone()
    yield dsn_for(ADMIN_DSN, name)
    await template.drop(name)


@pytest.fixture(scope="session")
def run_redis_url() -> Iterator[str]:
    """This run's own Redis database (released at the end of the run)."""
    try:
        claim = claim_redis_database(REDIS_BASE_URL, RUN_ID)
    except IsolationError as exc:
        pytest.fail(str(exc))
    yield claim.url
    claim.release()


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """This run's own RabbitMQ vhost, created for it and deleted at the end of the run."""
    try:
        vhost = create_vhost(BROKER_BASE_URL, RUN_ID)
    except IsolationError as exc:
        pytest.fail(f"RabbitMQ at {BROKER_BASE_URL}: {exc}")
    yield vhost.url
    vhost.delete()


@pytest.fixture
def redis_url(run_redis_url: str) -> str:
    """This run's Redis database, flushed for this test."""
    client = redis.Redis.from_url(run_redis_url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {run_redis_url}: {exc!r}")
    finally:
        client.close()
    return run_redis_url


@pytest.fixture
def settings_for(redis_url: str, broker_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings for a database DSN, with the test services, a data directory (media, the
    mailbox) of the test's own, and any overrides."""

    def build(database_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": redis_url,
            "broker_url": broker_url,
            "secret_key": TEST_SECRET,
            "database_pool_size": 4,
            "log_format": "console",
            # Explicit, so a variable in the developer's environment cannot leak into a test.
            "replica_database_url": None,
            "elasticsearch_url": None,
            # The SQL path: tests write the catalog with SQL and read it at once, which the
            # in-process index shows only after its next refresh (SEARCH_INDEX_REFRESH_SECONDS).
            # Its own tests (tests/integration/search/test_bitmap.py) turn it on.
            "search_index": "sql",
            "smtp_url": None,
            "data_dir": tmp_path,
            "media_dir": None,  # DATA_DIR/media
            # No metrics servers unless a test asks for one: fixed ports would collide between
            # the processes of parallel runs.
            "worker_metrics_port": 0,
            "relay_metrics_port": 0,
            # One web process per `aioshop web` (under its supervisor) unless a test asks for
            # more: a process per CPU in every test's web would crowd the shared machine.
            "web_processes": 1,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """What a test module changes in `settings`: a module overrides this fixture, not `settings`."""
    return {}


@pytest.fixture
def settings(
    fresh_db: str, settings_for: Callable[..., Settings], settings_overrides: dict[str, Any]
) -> Settings:
    """Settings for the test's fresh database, with the module's `settings_overrides`."""
    return settings_for(fresh_db, **settings_overrides)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server in the test process (SMTP_URL: `smtp.url`)."""
    with smtp_server() as server:
        yield server
