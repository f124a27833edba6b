"""A server with no room for another connection (SQLSTATE 53300: max_connections, or a
database's or role's CONNECTION LIMIT) is storage.errors.ServerFull for both kinds of pool: the
web answers 503 with Retry-After (an Unavailable), not 500.

Real parts: PostgreSQL, and a login role whose CONNECTION LIMIT is 0, so that every connection it
opens is refused the way a full server refuses one (superusers are exempt from the limits).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from yarl import URL

from storage.database import create_pool, statement_pool
from storage.errors import ServerFull
from storage.failover import REFUSED


@pytest.fixture
async def no_room(fresh_db: str) -> AsyncIterator[str]:
    """A DSN for fresh_db as a role that may open no connection at all."""
    role = f"aioshop_no_room_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(fresh_db)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
        yield str(URL(fresh_db).with_user(role))
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_both_pools_say_server_full_when_the_server_refuses_a_connection(
    no_room: str,
) -> None:
    primary = await create_pool(no_room, 2, min_size=0, acquire_timeout=5, label="primary")
    reads = statement_pool(no_room, 2, acquire_timeout=5, label="read")
    before = REFUSED.labels("primary")._value.get() + REFUSED.labels("read")._value.get()
    try:
        with pytest.raises(ServerFull) as caught:
            async with primary.acquire():
                pass
        assert caught.value.pool == "primary" and caught.value.retry_after >= 1
        with pytest.raises(ServerFull):
            await reads.fetchval("SELECT 1")
        after = REFUSED.labels("primary")._value.get() + REFUSED.labels("read")._value.get()
        assert after == before + 2
    finally:
        await reads.close()
        await primary.close()
