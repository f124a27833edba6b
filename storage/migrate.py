"""Numbered .sql migrations, each applied in its own transaction and recorded in schema_migrations.

An advisory lock serialises migrators, so two processes started at once apply each file once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger(__name__)

MIGRATION_LOCK_KEY = 0x6A105_0001  # any constant shared by every migrator of this schema
NAME_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

CREATE_MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version     integer PRIMARY KEY,
        name        text NOT NULL,
        applied_at  timestamptz NOT NULL DEFAULT now()
    )
"""
LOCK_MIGRATIONS = "SELECT pg_advisory_lock($1)"
UNLOCK_MIGRATIONS = "SELECT pg_advisory_unlock($1)"
LIST_APPLIED = "SELECT version FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """The migrations shipped in storage/migrations, in order; raises ValueError on a bad name."""
    return list(_shipped())


@functools.cache  # package files: read once per process, not on every readiness probe
def _shipped() -> tuple[Migration, ...]:
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = NAME_PATTERN.match(entry.name)
        if match is None:
            raise ValueError(f"migration file name {entry.name!r} is not NNNN_words.sql")
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a number")
    return tuple(found)


async def migrate(dsn: str) -> list[str]:
    """Apply every pending migration; returns the names applied. Safe to run concurrently."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute(LOCK_MIGRATIONS, MIGRATION_LOCK_KEY)
        try:
            await conn.execute(CREATE_MIGRATIONS_TABLE)
            done = {row["version"] for row in await conn.fetch(LIST_APPLIED)}
            for migration in available():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(RECORD_MIGRATION, migration.version, migration.name)
                log.info("migration.applied", name=migration.name)
                applied_now.append(migration.name)
        finally:
            await conn.execute(UNLOCK_MIGRATIONS, MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
    return applied_now


async def pending(executor: asyncpg.Pool | asyncpg.Connection) -> list[str]:
    """The shipped migrations the database has not applied, in order (all of them before the
    first `migrate`). Readiness asks this: code must not serve a schema older than its own."""
    try:
        rows = await executor.fetch(LIST_APPLIED)
    except asyncpg.UndefinedTableError:
        return [migration.name for migration in available()]
    done = {row["version"] for row in rows}
    return [migration.name for migration in available() if migration.version not in done]
