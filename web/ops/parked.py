"""/ops/outbox: the backlog, the reconciler's last run, and the outbox events given up on
(parked), each with its error, to retry or discard; with the operators' recent retries/discards.

A row is parked when the relay could not publish it after OUTBOX_MAX_ATTEMPTS tries (an actor
this release does not know, a payload that is not an object), or when the reconciler published
it RECONCILE_MAX_REPUBLISHES times and its effect never came. Both buttons ask first: the button
opens a page saying what will happen, whose form posts (with its CSRF token) to the same URL.
Each retry or discard writes an audit row (storage.audit) in the transaction that changes the row.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Literal
from urllib.parse import urlencode

import structlog
from aiohttp import web

from storage import audit, outbox, reconcile_runs, transaction
from storage.reconcile_runs import ReconcileRun
from web.keys import DB, PRINCIPAL, REDIS
from web.render import render

log = structlog.get_logger(__name__)

LIST_LIMIT = 100
AUDIT_LIMIT = 20
REDIS_TIMEOUT_SECONDS = 2.0
REFRESH_SECONDS = 15
SUMMARY_CHARACTERS = 200
Action = Literal["retry", "discard"]
ACTIONS: tuple[Action, ...] = ("retry", "discard")


def summary(payload: object) -> str:
    """The payload as compact JSON, cut short for the table."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= SUMMARY_CHARACTERS else text[: SUMMARY_CHARACTERS - 1] + "…"


def event_id_of(request: web.Request) -> uuid.UUID:
    """The event id in the path; 404 when it is not a UUID."""
    try:
        return uuid.UUID(request.match_info["event_id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such outbox event.") from None


def action_of(request: web.Request) -> Action:
    action = request.match_info["action"]
    for known in ACTIONS:
        if action == known:
            return known
    raise web.HTTPNotFound(text="No such action.")


async def last_run(request: web.Request) -> tuple[ReconcileRun | None, bool]:
    """The reconciler's last run and whether it could be read (Redis may be down: the page says
    so rather than failing)."""
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
            return await reconcile_runs.last(request.config_dict[REDIS]), True
    except Exception as exc:
        log.warning("outbox.last_run_unreadable", error=repr(exc))
        return None, False


async def parked_view(request: web.Request) -> web.Response:
    """The backlog and the reconciler's last run, then the parked events, longest parked first,
    with Retry and Discard buttons, then the recent retries and discards."""
    db = request.config_dict[DB]
    # primary: an operator who just retried one must not see it again from a lagging replica.
    events = await outbox.parked(db.primary, LIST_LIMIT)
    backlog = await outbox.backlog(db.primary)
    run, run_readable = await last_run(request)
    actions = await audit.recent_under(db.primary, "outbox:", limit=AUDIT_LIMIT)
    done = request.query.get("done", "")
    return render(
        request,
        "ops/outbox.html",
        {
            "events": events,
            "summary": summary,
            "backlog": backlog,
            "parked": backlog.parked,
            "run": run,
            "run_readable": run_readable,
            "actions": actions,
            "refresh_seconds": REFRESH_SECONDS,
            "done": done if done in ("retry", "discard", "gone") else None,
        },
    )


async def confirm_view(request: web.Request) -> web.Response:
    """The page that asks before a retry or a discard; 404 once the event is no longer parked."""
    event_id, action = event_id_of(request), action_of(request)
    event = await outbox.get_parked(request.config_dict[DB].primary, event_id)
    if event is None:
        raise web.HTTPNotFound(text="This event is not parked (any more).")
    return render(
        request, "ops/outbox_confirm.html", {"event": event, "action": action, "summary": summary}
    )


async def act_view(request: web.Request) -> web.Response:
    """Retry or discard one parked event; 303 to the list saying what happened."""
    event_id, action = event_id_of(request), action_of(request)
    db = request.config_dict[DB]
    principal = request[PRINCIPAL]  # web.guards: only operators get here
    async with transaction(db) as conn:
        if action == "retry":
            changed = await outbox.retry_parked(conn, event_id)
        else:
            changed = await outbox.discard_parked(conn, event_id)
        if changed:  # in the change's transaction: no change without its audit row, nor back
            await audit.record(
                conn,
                user_id=principal.user_id,
                action=f"outbox.{action}",
                target=f"outbox:{event_id}",
            )
    if changed:
        log.info(
            f"outbox.event_{'retried' if action == 'retry' else 'discarded'}",
            event_id=str(event_id),
            user_id=principal.user_id,
        )
    # Someone else acted first (or a double submit): nothing to do, and the page says so.
    raise web.HTTPSeeOther("/ops/outbox?" + urlencode({"done": action if changed else "gone"}))


def add_routes(app: web.Application) -> None:
    """The parked-events routes."""
    app.router.add_get("/outbox", parked_view, name="ops_outbox")
    app.router.add_get("/outbox/{event_id}/{action}", confirm_view, name="ops_outbox_confirm")
    app.router.add_post("/outbox/{event_id}/{action}", act_view, name="ops_outbox_act")
