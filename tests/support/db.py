"""Reading the test database directly, to check what a request or an actor wrote."""

from __future__ import annotations

from typing import Any

from storage.database import connect


async def sql(dsn: str, query: str, *args: Any) -> Any:
    """The first column of the first row of `query` (one short connection)."""
    conn = await connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, query: str, *args: Any) -> list[Any]:
    """Every row of `query` (one short connection)."""
    conn = await connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()
