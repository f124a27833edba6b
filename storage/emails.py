"""The email delivery log (migration 0016): every attempt to send an email, with its outcome.

Written by actors.mail.deliveries after each attempt, on its own connection (the actor's
transaction rolls back when the send fails, and the log must still say so); read by /ops/emails.
Rows older than EMAIL_LOG_RETENTION_DAYS are deleted by the outbox reconciler, a batch a run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from domain.events import EMAIL_EVENTS
from storage.database import Executor

Result = Literal["sent", "failed", "refused"]
RESULTS: tuple[Result, ...] = ("sent", "failed", "refused")
PRUNE_BATCH = 5000
# Where a page with no position starts: after every row.
NEWEST = (datetime(9999, 12, 31, tzinfo=UTC), 2**63 - 1)
LIMITS = {"kind": 60, "recipient": 1000, "subject": 1000, "error": 2000}

RECORD_ATTEMPT = """
    INSERT INTO email_deliveries
        (kind, recipient, subject, result, attempt, error, event_name, event_id)
    VALUES ($1, $2, $3, $4,
            1 + (SELECT count(*) FROM email_deliveries WHERE event_id = $7), $5, $6, $7)
    RETURNING id
"""
COLUMNS = "id, at, kind, recipient, subject, result, attempt, error, event_name, event_id"
# Two statements rather than `$1 IS NULL OR result = $1`, so each keeps its own index plan.
LIST_ALL = f"""
    SELECT {COLUMNS} FROM email_deliveries
    WHERE (at, id) < ($1, $2)
    ORDER BY at DESC, id DESC LIMIT $3
"""
LIST_BY_RESULT = f"""
    SELECT {COLUMNS} FROM email_deliveries
    WHERE result = $3 AND (at, id) < ($1, $2)
    ORDER BY at DESC, id DESC LIMIT $4
"""
COUNT_SINCE = """
    SELECT result, count(*) FROM email_deliveries WHERE at >= now() - $1::interval GROUP BY result
"""
OLDEST_UNSENT_AGE = """
    SELECT extract(epoch FROM now() - min(o.created_at))::float8 FROM outbox o
    WHERE o.actor_name = ANY($1::text[]) AND o.settled_at IS NULL AND o.discarded_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM processed_events p
                      WHERE p.consumer = o.actor_name AND p.event_id = o.event_id)
"""
PRUNE = """
    DELETE FROM email_deliveries WHERE id = ANY(ARRAY(
        SELECT id FROM email_deliveries WHERE at < now() - $1::interval ORDER BY at LIMIT $2))
"""


@dataclass(frozen=True)
class Attempt:
    """One attempt to send one email, as the log records it."""

    kind: str  # the template's kind: verify_email, order_placed, low_stock...
    recipient: str
    subject: str
    result: Result
    error: str | None
    event_name: str
    event_id: uuid.UUID


@dataclass(frozen=True)
class Delivery:
    """A row of the log."""

    id: int
    at: datetime
    kind: str
    recipient: str
    subject: str
    result: str
    attempt: int  # 1 + the attempts of the same event logged before this one
    error: str | None
    event_name: str
    event_id: uuid.UUID


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(attempt: Attempt) -> tuple[Any, ...]:
    """RECORD_ATTEMPT's arguments: texts cut to the columns' limits."""
    return (
        _cut(attempt.kind, LIMITS["kind"]),
        _cut(attempt.recipient, LIMITS["recipient"]),
        _cut(attempt.subject, LIMITS["subject"]),
        attempt.result,
        None if attempt.error is None else _cut(attempt.error, LIMITS["error"]),
        attempt.event_name,
        attempt.event_id,
    )


async def record(conn: Executor, attempt: Attempt, *, timeout: float) -> int:
    """Log one attempt (texts cut to the columns' limits); returns the row's id."""
    row_id: int = await conn.fetchval(RECORD_ATTEMPT, *_row(attempt), timeout=timeout)
    return row_id


async def record_all(
    conn: asyncpg.Connection, attempts: Sequence[Attempt], *, timeout: float
) -> None:
    """Log several attempts in one round trip (asyncpg pipelines executemany), in their order."""
    if attempts:
        await conn.executemany(RECORD_ATTEMPT, [_row(a) for a in attempts], timeout=timeout)


async def page(
    executor: Executor,
    *,
    result: Result | None,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[Delivery]:
    """Up to `limit` attempts, newest first, older than the position `before` (at, id)."""
    at, last_id = before or NEWEST
    if result is None:
        rows = await executor.fetch(LIST_ALL, at, last_id, limit)
    else:
        rows = await executor.fetch(LIST_BY_RESULT, at, last_id, result, limit)
    return [Delivery(**dict(row)) for row in rows]


async def counts_since(executor: Executor, period: timedelta) -> dict[str, int]:
    """How many attempts of each result in the last `period` (every result, 0 when none)."""
    rows = await executor.fetch(COUNT_SINCE, period)
    found = {row[0]: int(row[1]) for row in rows}
    return {result: found.get(result, 0) for result in RESULTS}


async def oldest_unsent_age(executor: Executor) -> float | None:
    """Seconds since the oldest email event whose effect is not recorded was written to the
    outbox (waiting for the relay, queued, retried or parked); None when there is none. An
    event counts until its actor records it in the inbox (sent, or skipped for good)."""
    age: float | None = await executor.fetchval(OLDEST_UNSENT_AGE, list(EMAIL_EVENTS))
    return age


async def prune(conn: asyncpg.Connection, *, older_than: timedelta, timeout: float) -> int:
    """Delete up to PRUNE_BATCH attempts older than `older_than`; returns how many."""
    status: str = await conn.execute(PRUNE, older_than, PRUNE_BATCH, timeout=timeout)
    return int(status.rsplit(" ", 1)[-1])
