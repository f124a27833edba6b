"""storage.outbox.oldest_unapplied_age: what aioshop_email_oldest_unsent_age_seconds reports."""

from __future__ import annotations

import json
import uuid

import asyncpg

from domain.events import INDEX_PRODUCT, SEND_ACCOUNT_EMAIL, SEND_ORDER_EMAIL
from storage import outbox

EMAILS = (SEND_ACCOUNT_EMAIL.name, SEND_ORDER_EMAIL.name)


async def email_event(conn: asyncpg.Connection, seconds_ago: int, **state: bool) -> uuid.UUID:
    """An order email event written `seconds_ago`, then put in `state` (published, settled,
    parked, discarded, applied: recorded in the inbox)."""
    event_id = await outbox.add(conn, SEND_ORDER_EMAIL, order_id=1, kind="placed")
    await conn.execute(
        """
        UPDATE outbox SET created_at = now() - make_interval(secs => $2),
            published_at = CASE WHEN $3 THEN now() END,
            settled_at = CASE WHEN $4 THEN now() END,
            parked_at = CASE WHEN $5 THEN now() END,
            discarded_at = CASE WHEN $6 THEN now() END
        WHERE event_id = $1
        """,
        event_id,
        float(seconds_ago),
        state.get("published", False),
        state.get("settled", False),
        state.get("parked", False),
        state.get("discarded", False),
    )
    if state.get("applied"):
        await conn.execute(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)",
            SEND_ORDER_EMAIL.name,
            event_id,
        )
    return event_id


async def test_none_waiting_is_zero(conn) -> None:
    assert await outbox.oldest_unapplied_age(conn, EMAILS) == 0


async def test_the_oldest_email_not_applied_counts_wherever_it_is(conn) -> None:
    await email_event(conn, 30)  # unpublished
    await email_event(conn, 400, published=True)  # published, its effect not recorded
    await email_event(conn, 900, published=True, applied=True)  # sent, not settled yet
    await email_event(conn, 1000, published=True, applied=True, settled=True)
    await email_event(conn, 2000, parked=True)  # an operator's matter (/ops/outbox)
    await email_event(conn, 3000, published=True, parked=True, discarded=True, settled=True)
    other = await outbox.add(conn, INDEX_PRODUCT, product_id=1)  # not an email
    await conn.execute(
        "UPDATE outbox SET created_at = now() - interval '5000 seconds' WHERE event_id = $1", other
    )
    age = await outbox.oldest_unapplied_age(conn, EMAILS)
    assert 400 <= age < 460


async def test_the_plan_can_read_the_partial_indexes_only(conn) -> None:
    """The query is written so the planner can take the unpublished and unsettled rows from
    their partial indexes instead of reading the whole outbox (which keeps a week of rows)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch("EXPLAIN (FORMAT JSON) " + outbox.OLDEST_UNAPPLIED, list(EMAILS))
    plan = json.dumps(json.loads(rows[0][0]))
    # With sequential scans priced out, a plan still needing one would have no index to use.
    assert "Seq Scan" not in plan, plan
    assert "outbox_unpublished" in plan and "outbox_unsettled" in plan, plan
