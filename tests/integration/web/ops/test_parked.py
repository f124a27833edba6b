"""/ops/outbox: the backlog and the reconciler's last run; parked outbox events with their errors,
retried or discarded by operators, each after a page that asks first and a POST with the CSRF
token, each written to the audit trail; counted on /ops/ and in /metrics."""

from __future__ import annotations

import re
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import asyncpg

from actors.reconcile import reconcile_outbox
from actors.resources import open_resources
from storage import reconcile_runs
from storage.database import connect
from storage.redis_client import open_redis
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


def squash(page: str) -> str:
    return re.sub(r"\s+", " ", page)


async def audit_rows(dsn: str) -> list[asyncpg.Record]:
    conn = await connect(dsn)
    try:
        return await conn.fetch(
            "SELECT user_id, user_email, action, target FROM ops_audit ORDER BY id"
        )
    finally:
        await conn.close()


async def test_every_retry_and_discard_writes_an_audit_row_shown_on_the_page(
    client, fresh_db
) -> None:
    first = await park(fresh_db, "loyalty.award_points", {}, "ActorNotFound")
    second = await park(fresh_db, "loyalty.award_points", {}, "ActorNotFound")
    await signed_in(client, role="ops", fresh_db=fresh_db)
    token = await csrf_of(client, "/ops/outbox")
    assert (
        "No parked event was retried or discarded yet."
        in await (await client.get("/ops/outbox")).text()
    )

    for event_id, action in ((first, "retry"), (second, "discard"), (first, "retry")):
        await client.post(
            f"/ops/outbox/{event_id}/{action}",
            data={"csrf_token": token},
            allow_redirects=False,
        )
    rows = await audit_rows(fresh_db)
    # The third did nothing (no longer parked): no row for it.
    assert [(r["action"], r["target"]) for r in rows] == [
        ("outbox.retry", f"outbox:{first}"),
        ("outbox.discard", f"outbox:{second}"),
    ]
    assert {(r["user_id"], r["user_email"]) for r in rows} == {(1, "ada@example.com")}

    page = squash(await (await client.get("/ops/outbox")).text())
    audit = page.partition('id="audit"')[2]
    assert audit.index(str(second)) < audit.index(str(first))  # newest first
    assert "<td>ada@example.com</td> <td>discarded</td>" in audit
    assert "<td>ada@example.com</td> <td>retried</td>" in audit


async def test_a_retry_whose_audit_row_fails_changes_nothing(client, fresh_db) -> None:
    event_id = await park(fresh_db, "loyalty.award_points", {}, "ActorNotFound")
    await signed_in(client, role="ops", fresh_db=fresh_db)
    token = await csrf_of(client, "/ops/outbox")
    conn = await connect(fresh_db)
    try:  # the audit row cannot be written: the retry must roll back with it
        await conn.execute("ALTER TABLE ops_audit ADD CONSTRAINT refuse CHECK (false) NOT VALID")
    finally:
        await conn.close()
    resp = await client.post(
        f"/ops/outbox/{event_id}/retry", data={"csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 500
    assert (await row(fresh_db, event_id))["parked_at"] is not None


async def test_the_page_shows_the_backlog_and_the_reconcilers_last_run(
    client, fresh_db, settings
) -> None:
    conn = await connect(fresh_db)
    try:
        await conn.execute(
            "INSERT INTO outbox (event_id, actor_name, payload, created_at)"
            " VALUES ($1, 'search.index_product', '{}', now() - interval '90 seconds')",
            uuid.uuid4(),
        )
        lost = uuid.uuid4()  # published long ago, no effect: the reconciler publishes it again
        await conn.execute(
            "INSERT INTO outbox (event_id, actor_name, payload, created_at, published_at)"
            " VALUES ($1, 'search.index_product', $2, now() - interval '1 hour',"
            " now() - interval '1 hour')",
            lost,
            {"event_id": str(lost), "product_id": 1},
        )
    finally:
        await conn.close()
    await signed_in(client, role="ops", fresh_db=fresh_db)  # its verification email: 1 more
    page = squash(await (await client.get("/ops/outbox")).text())
    assert 'id="backlog-unpublished"><span class="number">2</span> events waiting' in page
    oldest = re.search(r'id="backlog-oldest"><span class="number">([0-9.]+) s</span>', page)
    assert oldest and 90 <= float(oldest.group(1)) < 120
    assert "No run is recorded yet" in page

    async with AsyncExitStack() as stack:
        await reconcile_outbox(await open_resources(settings, stack))
    page = squash(await (await client.get("/ops/outbox")).text())
    run = page.partition('id="reconciler"')[2].partition("</section>")[0]
    assert 'class="status-green">finished' in run
    counts = "1 checked, 0 settled, <strong>1</strong> published again, <strong>0</strong> parked"
    assert counts in run
    assert 'id="backlog-unpublished"><span class="number">3</span>' in page  # lost is back


async def test_a_failed_run_shows_its_error(client, fresh_db, settings) -> None:
    redis = open_redis(str(settings.redis_url), timeout=1)
    try:
        await reconcile_runs.record(
            redis,
            reconcile_runs.ReconcileRun(
                started_at=datetime.now(UTC),
                duration_seconds=0.25,
                checked=0,
                settled=0,
                republished=0,
                parked=0,
                error="ConnectionRefusedError('<db down>')",
            ),
        )
    finally:
        await redis.aclose()
    await signed_in(client, role="ops", fresh_db=fresh_db)
    page = squash(await (await client.get("/ops/outbox")).text())
    run = page.partition('id="reconciler"')[2].partition("</section>")[0]
    assert 'class="status-red">failed' in run
    assert "ConnectionRefusedError(&#39;&lt;db down&gt;&#39;)" in run and "<db down>" not in run
