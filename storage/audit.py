"""The operators' audit trail: one row per action taken on /ops (storage/migrations/0014)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.database import Executor

RECORD = """
    INSERT INTO ops_audit (user_id, user_email, action, target, detail)
    VALUES ($1, (SELECT email FROM users WHERE id = $1), $2, $3, $4::jsonb)
    RETURNING id
"""
RECENT = """
    SELECT id, at, user_id, user_email, action, target, detail FROM ops_audit
    WHERE $1::text IS NULL OR target = $1 OR target LIKE $1 || '.%'
    ORDER BY at DESC, id DESC LIMIT $2
"""

# Entries whose target starts with a prefix ("outbox:" for every outbox row). `^@` is
# PostgreSQL's starts_with, which no LIKE wildcard in the prefix can widen.
RECENT_UNDER = """
    SELECT id, at, user_id, user_email, action, target, detail FROM ops_audit
    WHERE target ^@ $1
    ORDER BY at DESC, id DESC LIMIT $2
"""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    user_id: int | None
    user_email: str
    action: str  # e.g. "message.retry", "queue.purge", "outbox.discard"
    target: str  # the queue or row it was done to
    detail: dict[str, Any]


async def record(conn: Executor, *, user_id: int, action: str, target: str, **detail: Any) -> int:
    """Write who did `action` to `target`; `detail` must be JSON (ids, counts: no secrets)."""
    entry_id: int = await conn.fetchval(RECORD, user_id, action, target, json.dumps(detail))
    return entry_id


async def recent(conn: Executor, *, target: str | None = None, limit: int = 50) -> list[AuditEntry]:
    """The newest entries: all, or those about `target` (a queue also matches its .DQ/.XQ)."""
    return _entries(await conn.fetch(RECENT, target, limit))


async def recent_under(conn: Executor, prefix: str, *, limit: int = 50) -> list[AuditEntry]:
    """The newest entries whose target starts with `prefix` (e.g. "outbox:")."""
    return _entries(await conn.fetch(RECENT_UNDER, prefix, limit))


def _entries(rows: list[Any]) -> list[AuditEntry]:
    return [
        AuditEntry(
            id=row["id"],
            at=row["at"],
            user_id=row["user_id"],
            user_email=row["user_email"],
            action=row["action"],
            target=row["target"],
            detail=json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"],
        )
        for row in rows
    ]
