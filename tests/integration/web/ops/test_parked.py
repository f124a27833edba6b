"""/ops/outbox: parked outbox events with their errors, retried or discarded by operators, each after
a page that asks first and a POST with the CSRF token; counted on /ops/ and in /metrics."""

from __future__ import annotations

import re
import uuid

import asyncpg

from storage.database import connect
from tests.support.browser import csrf_of, signed_in


async def park(dsn: str, actor_name: str, payload: object, error: str) -> uuid.UUID:
    """A row the relay gave up on."""
    event_id = uuid.uuid4()
    conn = await connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO outbox (event_id, actor_name, payload, attempts, last_error, parked_at)"
            " VALUES ($1, $2, $3, 10, $4, now())",
            event_id,
            actor_name,
            payload,
            error,
        )
    finally:
        await conn.close()
    return event_id


async def row(dsn: str, event_id: uuid.UUID) -> asyncpg.Record:
    conn = await connect(dsn)
    try:
        return await conn.fetchrow("SELECT * FROM outbox WHERE event_id = $1", event_id)
    finally:
        await conn.close()


async def test_parked_events_are_listed_retried_and_discarded_by_staff(client, fresh_db) -> None:
    unknown = await park(
        fresh_db, "loyalty.award_points", {"order_id": 7}, "ActorNotFound('loyalty.award_points')"
    )
    hostile = await park(
        fresh_db, "search.index_product", ["<script>alert(1)</script>"], "TypeError('<b>')"
    )
    await signed_in(client, role="ops", fresh_db=fresh_db)

    overview = await (await client.get("/ops/")).text()
    assert "2 event(s) parked" in overview
    metrics = await (await client.get("/metrics")).text()
    assert "aioshop_outbox_parked 2.0" in metrics

    page = await client.get("/ops/outbox")
    html = await page.text()
    assert page.status == 200 and page.headers["Cache-Control"] == "private, no-store"
    assert str(unknown) in html and "loyalty.award_points" in html
    assert "ActorNotFound(&#39;loyalty.award_points&#39;)" in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html  # escaped, never run
    assert f'href="/ops/outbox/{unknown}/retry"' in html

    # Retry: a page that asks first, whose form posts to the same URL with the CSRF token.
    confirm = await client.get(f"/ops/outbox/{unknown}/retry")
    confirm_html = await confirm.text()
    assert confirm.status == 200 and "Retry this event?" in confirm_html
    assert re.search(rf'<form[^>]*method="post" action="/ops/outbox/{unknown}/retry"', confirm_html)
    token = await csrf_of(client, f"/ops/outbox/{unknown}/retry")
    refused = await client.post(f"/ops/outbox/{unknown}/retry", data={}, allow_redirects=False)
    assert refused.status == 403
    assert (await row(fresh_db, unknown))["parked_at"] is not None  # nothing happened
    done = await client.post(
        f"/ops/outbox/{unknown}/retry", data={"csrf_token": token}, allow_redirects=False
    )
    assert done.status == 303 and done.headers["Location"] == "/ops/outbox?done=retry"
    retried = await row(fresh_db, unknown)
    assert retried["parked_at"] is None and retried["published_at"] is None
    assert (retried["attempts"], retried["last_error"]) == (0, None)
    again = await client.post(
        f"/ops/outbox/{unknown}/retry", data={"csrf_token": token}, allow_redirects=False
    )
    assert again.headers["Location"] == "/ops/outbox?done=gone"  # a double submit: nothing
    assert (await client.get(f"/ops/outbox/{unknown}/retry")).status == 404

    # Discard: the same two steps; the row stays until the purge, out of every list.
    assert (
        "Discard this event?" in await (await client.get(f"/ops/outbox/{hostile}/discard")).text()
    )
    done = await client.post(
        f"/ops/outbox/{hostile}/discard", data={"csrf_token": token}, allow_redirects=False
    )
    assert done.headers["Location"] == "/ops/outbox?done=discard"
    discarded = await row(fresh_db, hostile)
    assert discarded["discarded_at"] is not None and discarded["settled_at"] is not None
    listing = await (await client.get("/ops/outbox?done=discard")).text()
    assert "The event was discarded." in listing and "0 parked events." in listing
    assert "aioshop_outbox_parked 0.0" in await (await client.get("/metrics")).text()


async def test_unknown_events_and_actions_are_404(client, fresh_db) -> None:
    event_id = await park(fresh_db, "loyalty.award_points", {}, "ActorNotFound")
    await signed_in(client, role="ops", fresh_db=fresh_db)
    token = await csrf_of(client, "/ops/outbox")
    for path in (
        f"/ops/outbox/{uuid.uuid4()}/retry",
        "/ops/outbox/not-a-uuid/retry",
        f"/ops/outbox/{event_id}/delete",
    ):
        assert (await client.get(path)).status == 404, path
        resp = await client.post(path, data={"csrf_token": token}, allow_redirects=False)
        assert resp.status in (303, 404), path
        if resp.status == 303:  # a well-formed id that is not parked: nothing to do
            assert resp.headers["Location"] == "/ops/outbox?done=gone"
    assert (await row(fresh_db, event_id))["parked_at"] is not None


async def test_customers_cannot_see_or_touch_parked_events(client, fresh_db) -> None:
    event_id = await park(fresh_db, "loyalty.award_points", {}, "ActorNotFound")
    await signed_in(client, role="customer", fresh_db=fresh_db)
    token = await csrf_of(client, "/")
    assert (await client.get("/ops/outbox")).status == 403
    resp = await client.post(
        f"/ops/outbox/{event_id}/discard", data={"csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 403
    assert (await row(fresh_db, event_id))["discarded_at"] is None
