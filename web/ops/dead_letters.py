"""/ops/dead-letters: the messages Dramatiq gave up on, across queues, and a way to run them again.

An overview: each queue's dead letters with their errors, linking to the queue's own page
(/ops/queues/<queue>?part=dead, web.ops.queues), where they are browsed page by page, retried
one by one or all, deleted and purged, each asking first and each recorded in the audit trail.

The /ops pages are the one place where the web process talks to the broker directly (everything
else goes through the outbox): requeueing is an operator's act on messages already sent. The
broker is built on first use, not at start-up, and lives on one thread of its own
(actors.ops.broker_thread.BrokerThread), every call bounded in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

import dramatiq
import structlog
from aiohttp import web

from actors import dead_letters
from actors.dead_letters import BrokerUnavailable, DeadLetter, UnknownQueue
from actors.ops.broker_thread import ACT_TIMEOUT_SECONDS
from storage import audit, transaction
from web.fields import whole_number
from web.keys import DB, OPS_BROKER, PRINCIPAL, SETTINGS
from web.params import posted_form
from web.render import render

log = structlog.get_logger(__name__)

PEEK_LIMIT = 20
MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TEMPLATE = "ops/dead_letters.html"


def message_id_of(value: object) -> str:
    """A message id as Dramatiq (and the outbox) make them, a lower-case UUID; 400 otherwise."""
    if not isinstance(value, str) or MESSAGE_ID.fullmatch(value) is None:
        raise web.HTTPBadRequest(text="That is not a message id.")
    return value


@dataclass(frozen=True)
class QueueDeadLetters:
    """One queue's row on the page."""

    name: str
    count: int
    letters: list[DeadLetter]


def overview(broker: dramatiq.Broker) -> list[QueueDeadLetters]:
    """Every queue's dead-letter count, with the first ones of the queues that have any."""
    return [
        QueueDeadLetters(name, count, dead_letters.peek(broker, name, PEEK_LIMIT) if count else [])
        for name, count in dead_letters.counts(broker).items()
    ]


def unavailable(request: web.Request, exc: BrokerUnavailable) -> web.Response:
    """503: the page says the broker is unreachable instead of failing."""
    log.warning("dead_letters.broker_failed", error=str(exc))
    return render(
        request, TEMPLATE, {"queues": [], "unavailable": True, "reason": str(exc)}, status=503
    )


async def dead_letters_view(request: web.Request) -> web.Response:
    """Dead letters per queue, with Requeue buttons."""
    settings = request.config_dict[SETTINGS]
    try:
        queues = await request.config_dict[OPS_BROKER].run(settings, overview)
    except BrokerUnavailable as exc:
        return unavailable(request, exc)
    requeued = request.query.get("requeued", "")
    return render(
        request,
        TEMPLATE,
        {
            "queues": queues,
            "requeued": whole_number(requeued),
            "requeued_queue": request.query.get("queue", ""),
        },
    )


async def requeue_view(request: web.Request) -> web.Response:
    """Requeue one dead letter (`message_id` in the form) or all of a queue's; 303 to the page."""
    queue = request.match_info["queue"]
    form = await posted_form(request)
    sent_id = form.get("message_id")
    message_id = message_id_of(sent_id) if sent_id else None
    settings = request.config_dict[SETTINGS]
    try:
        moved = await request.config_dict[OPS_BROKER].run(
            settings,
            lambda broker: dead_letters.requeue(broker, queue, message_id),
            timeout=ACT_TIMEOUT_SECONDS,
        )
    except UnknownQueue as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except BrokerUnavailable as exc:
        return unavailable(request, exc)
    principal = request[PRINCIPAL]
    async with transaction(request.config_dict[DB]) as conn:
        await audit.record(
            conn,
            user_id=principal.user_id,
            action="message.retry" if message_id else "queue.retry_all",
            target=f"{queue}.XQ",
            message_id=message_id,
            count=moved,
        )
    request.config_dict[OPS_BROKER].depths.forget()
    log.info(
        "dead_letters.requeued",
        queue=queue,
        message_id=message_id,
        count=moved,
        user_id=principal.user_id,
    )
    raise web.HTTPSeeOther("/ops/dead-letters?" + urlencode({"queue": queue, "requeued": moved}))


def add_routes(app: web.Application) -> None:
    """The dead-letter routes and the broker they use."""
    app.router.add_get("/dead-letters", dead_letters_view, name="ops_dead_letters")
    app.router.add_post("/dead-letters/{queue}/requeue", requeue_view, name="ops_requeue")
