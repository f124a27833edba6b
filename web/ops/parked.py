"""/ops/outbox: the outbox events given up on (parked), each with its error, to retry or discard.

A row is parked when the relay could not publish it after OUTBOX_MAX_ATTEMPTS tries (an actor
this release does not know, a payload that is not an object), or when the reconciler published
it RECONCILE_MAX_REPUBLISHES times and its effect never came. Both buttons ask first: the button
opens a page saying what will happen, whose form posts (with its CSRF token) to the same URL.
"""

from __future__ import annotations

import json
import uuid
from typing import Literal
from urllib.parse import urlencode

import structlog
from aiohttp import web

from storage import outbox, transaction
from web.keys import DB, PRINCIPAL
from web.render import render

log = structlog.get_logger(__name__)

LIST_LIMIT = 100
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


async def parked_view(request: web.Request) -> web.Response:
    """The parked events, longest parked first, with Retry and Discard buttons."""
    db = request.config_dict[DB]
    # primary: an operator who just retried one must not see it again from a lagging replica.
    events = await outbox.parked(db.primary, LIST_LIMIT)
    backlog = await outbox.backlog(db.primary)
    done = request.query.get("done", "")
    return render(
        request,
        "ops/outbox.html",
        {
            "events": events,
            "summary": summary,
            "parked": backlog.parked,
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
    async with transaction(db) as conn:
        if action == "retry":
            changed = await outbox.retry_parked(conn, event_id)
        else:
            changed = await outbox.discard_parked(conn, event_id)
    principal = request.get(PRINCIPAL)
    if changed:
        log.info(
            f"outbox.event_{'retried' if action == 'retry' else 'discarded'}",
            event_id=str(event_id),
            user_id=principal.user_id if principal else None,
        )
    # Someone else acted first (or a double submit): nothing to do, and the page says so.
    raise web.HTTPSeeOther("/ops/outbox?" + urlencode({"done": action if changed else "gone"}))


def add_routes(app: web.Application) -> None:
    """The parked-events routes."""
    app.router.add_get("/outbox", parked_view, name="ops_outbox")
    app.router.add_get("/outbox/{event_id}/{action}", confirm_view, name="ops_outbox_confirm")
    app.router.add_post("/outbox/{event_id}/{action}", act_view, name="ops_outbox_act")
