"""The consumer side of exactly-once-in-effect: remember which events a consumer has applied."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
from prometheus_client import Counter

from domain.events import Event

RECORD_EVENT = """
    INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
    ON CONFLICT DO NOTHING
    RETURNING event_id
"""

# A bundle's events (actors.bundles) in one statement, in id order: two bundles sharing events
# take their rows' locks in the same order, so neither waits on the other in a cycle.
RECORD_EVENTS = """
    INSERT INTO processed_events (consumer, event_id)
    SELECT $1, id FROM unnest($2::uuid[]) AS id ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING event_id
"""
FORGET_EVENTS = "DELETE FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])"

DELIVERIES = Counter(
    "aioshop_inbox_deliveries_total",
    "Deliveries checked against the inbox by consuming actor: first (applied now) or duplicate"
    " (already applied: nothing done). A first whose transaction rolls back counts again on"
    " its retry.",
    ["actor", "result"],
)


async def first_delivery(conn: asyncpg.Connection, event: Event, event_id: uuid.UUID) -> bool:
    """Record the delivery of `event` in the caller's transaction; False if it was already applied.

    Call it in the same transaction as the effect: if the effect rolls back, so does the record.
    A concurrent duplicate waits on the primary key until the first transaction ends.
    """
    first: bool = await conn.fetchval(RECORD_EVENT, event.name, event_id) is not None
    DELIVERIES.labels(event.name, "first" if first else "duplicate").inc()  # events: a fixed set
    return first


async def first_deliveries(
    conn: asyncpg.Connection, event: Event, event_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """first_delivery for several events of `event` at once (one statement): the ids of those
    not applied before, recorded in the caller's transaction. An id given twice is one event."""
    unique = sorted(set(event_ids))
    rows = await conn.fetch(RECORD_EVENTS, event.name, unique)
    firsts = {row["event_id"] for row in rows}
    if firsts:
        DELIVERIES.labels(event.name, "first").inc(len(firsts))
    if len(unique) > len(firsts):
        DELIVERIES.labels(event.name, "duplicate").inc(len(unique) - len(firsts))
    return firsts


async def forget(conn: asyncpg.Connection, event: Event, event_ids: Sequence[uuid.UUID]) -> None:
    """Take back first_deliveries' record of `event_ids` in the caller's transaction: events
    whose effect failed, so that their next delivery applies them (the rest commits)."""
    if event_ids:
        await conn.execute(FORGET_EVENTS, event.name, list(event_ids))
