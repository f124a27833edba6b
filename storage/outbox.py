"""The transactional outbox: record a side effect in the caller's transaction; the relay sends it.

Each event is one of `domain.events` (its name is the actor's) with the actor's keyword arguments,
checked against the event's declared payload. The event id is generated here, included in the
arguments as `event_id`, and becomes the broker message id, so the consumer can recognise a
redelivery.

A row's life (migration 0013 has the columns):

- unpublished -> published (the relay). A publish that fails for the row's own sake counts in
  `attempts` with its `last_error` and waits until `next_attempt_at` (the delay doubles); after
  the relay's max attempts the row is parked (`parked_at`).
- published -> settled (`settled_at`) once the reconciler finds its consumer's inbox row; or back
  to unpublished (`republished` + 1) when none came in time; parked past the cap of re-publishes.
- parked -> unpublished with fresh counts (an operator's retry), or discarded (`discarded_at`,
  settled too); a parked row whose effect turns up after all is settled.
- settled -> deleted 7 days later (`purge_published`): never before its effect was seen.
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
    WHERE published_at IS NULL AND parked_at IS NULL
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    ORDER BY created_at, event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
"""
MARK_PUBLISHED = """
    UPDATE outbox SET published_at = now(), attempts = attempts + 1, next_attempt_at = NULL
    WHERE event_id = ANY($1::uuid[])
"""
# The delay doubles with each failure ($4 seconds first, at most $5); `attempts` on the right is
# the value before this update.
RECORD_FAILURE = """
    UPDATE outbox SET attempts = attempts + 1, last_error = $2,
        next_attempt_at = now() + make_interval(secs => least($4 * 2 ^ attempts, $5)),
        parked_at = CASE WHEN attempts + 1 >= $3 THEN now() END
    WHERE event_id = $1
    RETURNING parked_at IS NOT NULL
"""
COUNT_BACKLOG = """
    SELECT count(*) FILTER (WHERE parked_at IS NULL),
           coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)),
                    0)::float8,
           count(*) FILTER (WHERE parked_at IS NOT NULL)
    FROM outbox
    WHERE (published_at IS NULL AND parked_at IS NULL)
       OR (parked_at IS NOT NULL AND discarded_at IS NULL)
"""
COUNT_REPUBLISHED = """
    SELECT count(*) FROM outbox
    WHERE republished > 0 AND settled_at IS NULL AND parked_at IS NULL
"""
# The oldest of these events whose effect the inbox has not recorded, neither parked nor
# discarded. Written as the two partial indexes' predicates (unpublished; published and not
# settled), so the plan reads only those rows, which the relay and the reconciler keep few.
OLDEST_UNAPPLIED = """
    SELECT coalesce(extract(epoch FROM now() - min(o.created_at)), 0)::float8
    FROM outbox o
    WHERE o.actor_name = ANY($1::text[])
      AND ((o.published_at IS NULL AND o.parked_at IS NULL)
           OR (o.published_at IS NOT NULL AND o.settled_at IS NULL AND o.parked_at IS NULL))
      AND NOT EXISTS (
          SELECT 1 FROM processed_events p
          WHERE p.consumer = o.actor_name AND p.event_id = o.event_id
      )
"""
DELETE_SETTLED_BEFORE = """
    DELETE FROM outbox WHERE settled_at IS NOT NULL AND settled_at < now() - $1::interval
"""
PARKED_COLUMNS = """
    event_id, actor_name, payload, created_at, attempts, republished, last_error, parked_at,
    published_at
"""
LIST_PARKED = f"""
    SELECT {PARKED_COLUMNS} FROM outbox
    WHERE parked_at IS NOT NULL AND discarded_at IS NULL
    ORDER BY parked_at, event_id
    LIMIT $1
"""
GET_PARKED = f"""
    SELECT {PARKED_COLUMNS} FROM outbox
    WHERE event_id = $1 AND parked_at IS NOT NULL AND discarded_at IS NULL
"""
# Back to unpublished with a fresh count: the relay publishes it on its next pass.
RETRY_PARKED = """
    UPDATE outbox SET parked_at = NULL, published_at = NULL, settled_at = NULL, attempts = 0,
        republished = 0, next_attempt_at = NULL, last_error = NULL
    WHERE event_id = $1 AND parked_at IS NOT NULL AND discarded_at IS NULL
    RETURNING event_id
"""
DISCARD_PARKED = """
    UPDATE outbox SET discarded_at = now(), settled_at = now()
    WHERE event_id = $1 AND parked_at IS NOT NULL AND discarded_at IS NULL
    RETURNING event_id
"""
WAKE_RELAYS = "SELECT pg_notify('outbox', '')"
# The reconciler's: published rows old enough to have taken effect, not yet seen to have.
DUE_FOR_CHECK = """
    SELECT event_id, republished FROM outbox
    WHERE published_at IS NOT NULL AND settled_at IS NULL AND parked_at IS NULL
      AND published_at < now() - $1::interval
    ORDER BY published_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
"""
# An event took effect when its consumer (the actor named like the event) recorded it.
SETTLE_RECORDED = """
    UPDATE outbox o SET settled_at = now()
    FROM processed_events p
    WHERE o.event_id = ANY($1::uuid[]) AND p.consumer = o.actor_name AND p.event_id = o.event_id
    RETURNING o.event_id
"""
# Parked by the reconciler while its message still waited in a queue (a worker down for long):
# the message ran since, so the row is done after all.
SETTLE_PARKED_RECORDED = """
    UPDATE outbox o SET settled_at = now(), parked_at = NULL
    FROM processed_events p
    WHERE o.parked_at IS NOT NULL AND o.discarded_at IS NULL
      AND p.consumer = o.actor_name AND p.event_id = o.event_id
    RETURNING o.event_id
"""
REPUBLISH = """
    UPDATE outbox SET published_at = NULL, republished = republished + 1, attempts = 0,
        next_attempt_at = NULL
    WHERE event_id = ANY($1::uuid[])
"""
PARK = "UPDATE outbox SET parked_at = now(), last_error = $2 WHERE event_id = ANY($1::uuid[])"


@dataclass(frozen=True)
class OutboxEvent:
    event_id: uuid.UUID
    actor_name: str
    payload: dict[str, Any]
    request_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class Backlog:
    unpublished: int  # waiting for a relay (parked rows are not)
    oldest_age_seconds: float
    parked: int  # given up on, waiting for an operator


@dataclass(frozen=True)
class ParkedEvent:
    """A row the relay, or the reconciler, gave up on; what /ops shows of it."""

    event_id: uuid.UUID
    actor_name: str
    payload: Any  # what the row holds, which may be what made it unpublishable
    created_at: datetime
    attempts: int
    republished: int
    last_error: str | None
    parked_at: datetime
    published_at: datetime | None


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


async def record_failure(
    conn: asyncpg.Connection,
    event_id: uuid.UUID,
    error: str,
    *,
    max_attempts: int,
    first_delay: float,
    max_delay: float,
) -> bool:
    """Count a failed publish of a claimed event and put off its next try (the delay doubles);
    park it once it has failed `max_attempts` times. Returns whether it is now parked."""
    parked: bool = await conn.fetchval(
        RECORD_FAILURE, event_id, error, max_attempts, first_delay, max_delay
    )
    return parked


async def backlog(executor: Any) -> Backlog:
    """How many events wait for the relay, how old the oldest is, and how many are parked."""
    count, age, parked = await executor.fetchrow(COUNT_BACKLOG)
    return Backlog(unpublished=int(count), oldest_age_seconds=float(age), parked=int(parked))


async def republished_count(executor: Any) -> int:
    """Events the reconciler published again whose effect has not been seen yet."""
    return int(await executor.fetchval(COUNT_REPUBLISHED))


async def oldest_unapplied_age(executor: Any, actor_names: Sequence[str]) -> float:
    """Seconds since the oldest event for `actor_names` was written whose effect is not
    recorded yet and which is neither parked nor discarded; 0 when there is none."""
    return float(await executor.fetchval(OLDEST_UNAPPLIED, list(actor_names)))


async def purge_published(
    conn: asyncpg.Connection, older_than: timedelta = timedelta(days=7)
) -> int:
    """Delete events settled (their effect recorded, or discarded) longer than `older_than` ago;
    returns how many. A published event the reconciler has not settled is never deleted."""
    status: str = await conn.execute(DELETE_SETTLED_BEFORE, older_than)
    return int(status.split()[-1])


async def parked(executor: Any, limit: int) -> list[ParkedEvent]:
    """The parked events, longest parked first."""
    return [ParkedEvent(**dict(row)) for row in await executor.fetch(LIST_PARKED, limit)]


async def get_parked(executor: Any, event_id: uuid.UUID) -> ParkedEvent | None:
    """One parked event, or None (never parked, or retried or discarded since)."""
    row = await executor.fetchrow(GET_PARKED, event_id)
    return ParkedEvent(**dict(row)) if row is not None else None


async def retry_parked(conn: asyncpg.Connection, event_id: uuid.UUID) -> bool:
    """Hand a parked event back to the relays with fresh counts; False if it is not parked.

    The event keeps its id, so a consumer that did apply it meanwhile skips the new copy."""
    retried = await conn.fetchval(RETRY_PARKED, event_id) is not None
    if retried:
        await conn.execute(WAKE_RELAYS)
    return retried


async def discard_parked(conn: asyncpg.Connection, event_id: uuid.UUID) -> bool:
    """Give up on a parked event for good (it is purged with the settled ones); False if it is
    not parked."""
    return await conn.fetchval(DISCARD_PARKED, event_id) is not None


@dataclass(frozen=True)
class Reconciled:
    """What one reconciler pass did."""

    checked: int  # published rows old enough to look at
    settled: int  # found to have taken effect (parked ones included)
    republished: list[uuid.UUID]  # handed back to the relays
    parked: list[uuid.UUID]  # past their cap of re-publishes


async def reconcile(
    conn: asyncpg.Connection,
    *,
    older_than: timedelta,
    max_republishes: int,
    republish_limit: int,
    batch: int,
) -> Reconciled:
    """One pass in the caller's transaction over up to `batch` published events older than
    `older_than` whose effect has not been seen: settle those whose consumer recorded them, hand
    back to the relays (same event id) those re-published fewer than `max_republishes` times, at
    most `republish_limit`, and park the rest. Also settles parked events that took effect."""
    rows = await conn.fetch(DUE_FOR_CHECK, older_than, batch)
    ids = [row["event_id"] for row in rows]
    settled = {row["event_id"] for row in await conn.fetch(SETTLE_RECORDED, ids)} if ids else set()
    unsettled = [row for row in rows if row["event_id"] not in settled]
    again = [row["event_id"] for row in unsettled if row["republished"] < max_republishes]
    again = again[: max(republish_limit, 0)]
    give_up = [row["event_id"] for row in unsettled if row["republished"] >= max_republishes]
    if again:
        await conn.execute(REPUBLISH, again)
        await conn.execute(WAKE_RELAYS)
    if give_up:
        error = f"no effect recorded after {max_republishes} re-publishes"
        await conn.execute(PARK, give_up, error)
    unparked = await conn.fetch(SETTLE_PARKED_RECORDED)
    return Reconciled(len(rows), len(settled) + len(unparked), again, give_up)
