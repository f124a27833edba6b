"""The transactional outbox: record a side effect in the caller's transaction; the relay sends it.

Each event is one of `domain.events` (its name is the actor's) with the actor's keyword arguments,
checked against the event's declared payload. The event id is generated here, included in the
arguments as `event_id`, and becomes the broker message id, so the consumer can recognise a
redelivery.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from domain.events import Event

INSERT_EVENT = """
    INSERT INTO outbox (event_id, actor_name, payload, request_id)
    VALUES ($1, $2, $3, $4)
"""
INSERT_EVENTS = """
    INSERT INTO outbox (event_id, actor_name, payload, request_id)
    SELECT e.event_id, e.actor_name, e.payload::jsonb, $4
    FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS e (event_id, actor_name,
                                                                         payload, n)
    ORDER BY e.n
"""
CLAIM_BATCH = """
    SELECT event_id, actor_name, payload, request_id, created_at
    FROM outbox
    WHERE published_at IS NULL
    ORDER BY created_at, event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
"""
MARK_PUBLISHED = """
    UPDATE outbox SET published_at = now(), attempts = attempts + 1
    WHERE event_id = ANY($1::uuid[])
"""
COUNT_BACKLOG = """
    SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
    FROM outbox WHERE published_at IS NULL
"""
DELETE_PUBLISHED_BEFORE = """
    DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < now() - $1::interval
"""


@dataclass(frozen=True)
class OutboxEvent:
    event_id: uuid.UUID
    actor_name: str
    payload: dict[str, Any]
    request_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class Backlog:
    unpublished: int
    oldest_age_seconds: float


async def add(
    conn: asyncpg.Connection, event: Event, request_id: str | None = None, **payload: Any
) -> uuid.UUID:
    """Record one event in the caller's transaction; returns its id (also payload['event_id']).

    Raises TypeError when `payload` is not the event's declared payload."""
    new = new_event(event, **payload)
    await conn.execute(INSERT_EVENT, new.event_id, new.actor_name, new.payload, request_id)
    return new.event_id


@dataclass(frozen=True)
class NewEvent:
    """An event for a statement that writes several at once (see `columns`)."""

    event_id: uuid.UUID
    actor_name: str
    payload: dict[str, Any]


def new_event(event: Event, **payload: Any) -> NewEvent:
    """A new event with its id (also in the payload as `event_id`), not yet written.

    Raises TypeError when `payload` is not the event's declared payload."""
    event.check(payload)
    event_id = uuid.uuid4()
    return NewEvent(event_id, event.name, {"event_id": str(event_id), **payload})


async def add_all(
    conn: asyncpg.Connection, events: Sequence[NewEvent], request_id: str | None = None
) -> None:
    """Record `events` (made by `new_event`) in the caller's transaction, in one statement."""
    await conn.execute(
        INSERT_EVENTS,
        [e.event_id for e in events],
        [e.actor_name for e in events],
        [json.dumps(e.payload) for e in events],
        request_id,
    )


async def claim(conn: asyncpg.Connection, limit: int) -> list[OutboxEvent]:
    """Lock up to `limit` unpublished events in the caller's transaction, skipping locked ones."""
    rows = await conn.fetch(CLAIM_BATCH, limit)
    return [OutboxEvent(**dict(row)) for row in rows]


async def mark_published(conn: asyncpg.Connection, event_ids: list[uuid.UUID]) -> None:
    """Mark events published (in the transaction that claimed them)."""
    await conn.execute(MARK_PUBLISHED, event_ids)


async def backlog(executor: Any) -> Backlog:
    """How many events wait for the relay, and how old the oldest is."""
    count, age = await executor.fetchrow(COUNT_BACKLOG)
    return Backlog(unpublished=int(count), oldest_age_seconds=float(age))


async def purge_published(
    conn: asyncpg.Connection, older_than: timedelta = timedelta(days=7)
) -> int:
    """Delete published events older than `older_than`; returns how many."""
    status: str = await conn.execute(DELETE_PUBLISHED_BEFORE, older_than)
    return int(status.split()[-1])
