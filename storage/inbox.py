"""The consumer side of exactly-once-in-effect: remember which events a consumer has applied."""

from __future__ import annotations

import uuid

import asyncpg
from prometheus_client import Counter

from domain.events import Event

RECORD_EVENT = """
    INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
    ON CONFLICT DO NOTHING
    RETURNING event_id
"""


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
