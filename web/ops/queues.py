"""/ops/queues: every queue's depth and rates, every actor's throughput, latency and failures,
and each queue's messages to browse and act on.

Routes (every action asks first: its GET page says exactly what will happen, and its form posts
with the CSRF token to the same URL; each POST writes an ops_audit row with the signed-in user,
then redirects to the queue's page with a notice saying what was done):
- GET /ops/queues                                   the table of queues and of actors
- GET /ops/queues/{queue}?part=ready|delayed|dead&page=N    browse one part
- GET|POST /ops/queues/{queue}/{part}/{action}      purge (any part), retry-all (dead)
- GET|POST /ops/queues/{queue}/{part}/messages/{message_id}/{action}
                                                    retry (dead, delayed), delete (any part)
A queue must be a known one (404), a part and an action one of those (404), a message id the
shape Dramatiq makes (400), a page a whole number in range (400).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import dramatiq
import redis
import structlog
from aiohttp import web

from actors.dead_letters import BrokerUnavailable, UnknownQueue
from actors.ops import messages, queues, stats
from actors.ops.broker_thread import ACT_TIMEOUT_SECONDS
from actors.ops.messages import PARTS, Page, PageTooFar, Part, part_queue
from storage import audit, transaction
from web.fields import whole_number
from web.keys import DB, OPS_BROKER, PRINCIPAL, REDIS, SETTINGS
from web.ops.dead_letters import message_id_of
from web.params import query_int
from web.render import render

log = structlog.get_logger(__name__)

REFRESH_SECONDS = 5
MAX_PAGE = 1_000
AUDIT_LIMIT = 20
STATS_TIMEOUT_SECONDS = 3.0
QUEUE_ACTIONS: dict[str, tuple[Part, ...]] = {"purge": PARTS, "retry-all": ("dead",)}
MESSAGE_ACTIONS: dict[str, tuple[Part, ...]] = {"retry": ("dead", "delayed"), "delete": PARTS}
AUDIT_ACTIONS = {
    "purge": "queue.purge",
    "retry-all": "queue.retry_all",
    "retry": "message.retry",
    "delete": "message.delete",
}
PART_LABELS = {"ready": "ready", "delayed": "delayed", "dead": "dead-lettered"}


@dataclass(frozen=True)
class Row:
    """One queue's line: its depth and its rates."""

    depth: queues.QueueDepth
    rates: stats.QueueRates | None


def queue_of(request: web.Request) -> str:
    """The path's queue; 404 unless it is a queue the shop uses."""
    queue = request.match_info["queue"]
    if queue not in queues.known_queues():
        raise web.HTTPNotFound(text="No such queue.")
    return queue


def part_in_path(request: web.Request, allowed: tuple[Part, ...]) -> Part:
    """The path's part; 404 unless it is one of `allowed`."""
    raw = request.match_info["part"]
    for part in allowed:
        if raw == part:
            return part
    raise web.HTTPNotFound(text="No such part of a queue for this action.")


def action_in_path(request: web.Request, actions: dict[str, tuple[Part, ...]]) -> tuple[str, Part]:
    """The path's action and part; 404 unless the action applies to that part."""
    action = request.match_info["action"]
    if action not in actions:
        raise web.HTTPNotFound(text="No such action.")
    return action, part_in_path(request, actions[action])


def part_named(raw: str) -> Part | None:
    """The part called `raw`, or None."""
    for part in PARTS:
        if raw == part:
            return part
    return None


def part_in_query(request: web.Request) -> Part:
    """?part=, "ready" when absent; 400 for anything but a part's name."""
    part = part_named(request.query.get("part", "ready"))
    if part is None:
        raise web.HTTPBadRequest(text="part must be ready, delayed or dead.")
    return part


async def _stats(request: web.Request) -> tuple[stats.Stats | None, str | None]:
    try:
        async with asyncio.timeout(STATS_TIMEOUT_SECONDS):
            return await stats.read_stats(request.config_dict[REDIS]), None
    except (redis.RedisError, TimeoutError) as exc:
        log.warning("ops_queues.stats_unavailable", error=repr(exc))
        return None, f"statistics unavailable: {exc!r}"


async def queues_view(request: web.Request) -> web.Response:
    """Every queue with its depth and rates, every actor with its figures; refreshes itself."""
    settings = request.config_dict[SETTINGS]
    reading = await request.config_dict[OPS_BROKER].read_depths(settings)
    figures, stats_error = await _stats(request)
    rates = figures.queues if figures is not None else {}
    rows = [Row(depth, rates.get(depth.queue)) for depth in reading.depths]
    return render(
        request,
        "ops/queues.html",
        {
            "rows": rows,
            "broker_error": reading.error,
            "stats": figures,
            "stats_error": stats_error,
            "refresh_seconds": REFRESH_SECONDS,
        },
    )


async def browse_view(request: web.Request) -> web.Response:
    """One part of a queue, page by page, with its actions and the queue's recent audit."""
    queue = queue_of(request)
    part = part_in_query(request)
    errors: dict[str, str] = {}
    page_number = query_int(request.query, "page", 1, MAX_PAGE, errors) or 1
    if errors:
        raise web.HTTPBadRequest(text="; ".join(f"{k}: {v}" for k, v in errors.items()))
    settings = request.config_dict[SETTINGS]
    ops_broker = request.config_dict[OPS_BROKER]
    offset = (page_number - 1) * messages.PAGE_SIZE
    page: Page | None = None
    broker_error: str | None = None
    try:
        page = await ops_broker.run(
            settings, lambda broker: messages.browse(broker, queue, part, offset)
        )
    except UnknownQueue:
        raise web.HTTPNotFound(text="No such queue.") from None
    except PageTooFar as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except BrokerUnavailable as exc:
        broker_error = str(exc)
    depth = None
    if page is not None:  # a broker that just failed is not asked twice for one page
        reading = await ops_broker.read_depths(settings)
        depth = next((d for d in reading.depths if d.queue == queue), None)
        broker_error = reading.error
    # primary: an operator who just acted must see their own entry.
    entries = await audit.recent(request.config_dict[DB].primary, target=queue, limit=AUDIT_LIMIT)
    notice = _notice(request, queue)
    return render(
        request,
        "ops/queues_browse.html",
        {
            "queue": queue,
            "part": part,
            "parts": PARTS,
            "part_labels": PART_LABELS,
            "page": page,
            "page_number": page_number,
            "depth": depth,
            "broker_error": broker_error,
            "entries": entries,
            "messages": [notice] if notice else [],
            "message_actions": [a for a, parts in MESSAGE_ACTIONS.items() if part in parts],
        },
        status=503 if page is None else 200,
    )


def _notice(request: web.Request, queue: str) -> str | None:
    done = request.query.get("done")
    count = whole_number(request.query.get("count", ""))
    part = part_named(request.query.get("part", "ready"))
    if count is None or part is None:
        return None
    label = PART_LABELS[part]
    plural = "" if count == 1 else "s"
    match done:
        case "purge":
            return f"Purged {count} {label} message{plural} of {queue}."
        case "retry-all":
            return f"Requeued {count} dead-lettered message{plural} of {queue}."
        case "retry":
            if count:
                return f"The message was moved to {queue}, to run now."
            return "Nothing was retried: the message is no longer there (or a worker holds it)."
        case "delete":
            if count:
                return f"The message was deleted from {part_queue(queue, part)}."
            return "Nothing was deleted: the message is no longer there (or a worker holds it)."
    return None


async def queue_confirm_view(request: web.Request) -> web.Response:
    """The page that asks before a purge or a retry-all, with how many messages it concerns."""
    queue = queue_of(request)
    action, part = action_in_path(request, QUEUE_ACTIONS)
    reading = await request.config_dict[OPS_BROKER].read_depths(request.config_dict[SETTINGS])
    depth = next((d for d in reading.depths if d.queue == queue), None)
    count = (
        None
        if depth is None
        else {"ready": depth.ready, "delayed": depth.delayed, "dead": depth.dead}[part]
    )
    return confirm_page(request, queue, part, action, count=count, broker_error=reading.error)


def confirm_page(
    request: web.Request,
    queue: str,
    part: Part,
    action: str,
    *,
    count: int | None = None,
    message_id: str | None = None,
    broker_error: str | None = None,
    status: int = 200,
) -> web.Response:
    """The page that says what an action will do (or, with status 503, that it was not done)."""
    return render(
        request,
        "ops/queues_confirm.html",
        {
            "queue": queue,
            "part": part,
            "part_labels": PART_LABELS,
            "action": action,
            "count": count,
            "message_id": message_id,
            "target": part_queue(queue, part),
            "broker_error": broker_error,
            "failed_action": status == 503,
        },
        status=status,
    )


async def message_confirm_view(request: web.Request) -> web.Response:
    """The page that asks before a message is retried or deleted."""
    queue = queue_of(request)
    action, part = action_in_path(request, MESSAGE_ACTIONS)
    message_id = message_id_of(request.match_info["message_id"])
    return confirm_page(request, queue, part, action, message_id=message_id)


async def queue_act_view(request: web.Request) -> web.Response:
    """Purge a part, or retry every dead message; audited; 303 to the queue's page."""
    queue = queue_of(request)
    action, part = action_in_path(request, QUEUE_ACTIONS)

    def act(broker: dramatiq.Broker) -> int:
        if action == "purge":
            return messages.purge(broker, queue, part)
        return messages.retry_all(broker, queue)

    return await _act(request, queue, part, action, None, act)


async def message_act_view(request: web.Request) -> web.Response:
    """Retry or delete one message; audited; 303 to the queue's page."""
    queue = queue_of(request)
    action, part = action_in_path(request, MESSAGE_ACTIONS)
    message_id = message_id_of(request.match_info["message_id"])

    def act(broker: dramatiq.Broker) -> int:
        if action == "retry":
            return messages.retry_one(broker, queue, part, message_id)
        return messages.delete_one(broker, queue, part, message_id)

    return await _act(request, queue, part, action, message_id, act)


async def _act(
    request: web.Request,
    queue: str,
    part: Part,
    action: str,
    message_id: str | None,
    act: Callable[[dramatiq.Broker], int],
) -> web.Response:
    settings = request.config_dict[SETTINGS]
    ops_broker = request.config_dict[OPS_BROKER]
    try:
        count: int = await ops_broker.run(settings, act, timeout=ACT_TIMEOUT_SECONDS)
    except UnknownQueue:
        raise web.HTTPNotFound(text="No such queue.") from None
    except BrokerUnavailable as exc:
        log.warning("ops_queues.broker_failed", error=str(exc), action=action, queue=queue)
        return confirm_page(
            request, queue, part, action, message_id=message_id, broker_error=str(exc), status=503
        )
    ops_broker.depths.forget()
    principal = request[PRINCIPAL]
    target = part_queue(queue, part)
    detail: dict[str, Any] = {"count": count}
    if message_id is not None:
        detail["message_id"] = message_id
    async with transaction(request.config_dict[DB]) as conn:
        await audit.record(
            conn, user_id=principal.user_id, action=AUDIT_ACTIONS[action], target=target, **detail
        )
    log.info(
        "ops_queues.acted",
        action=AUDIT_ACTIONS[action],
        target=target,
        user_id=principal.user_id,
        **detail,
    )
    query = urlencode({"part": part, "done": action, "count": count})
    raise web.HTTPSeeOther(f"/ops/queues/{queue}?{query}")


def add_routes(app: web.Application) -> None:
    """The queue routes (the broker they use is web.ops.dead_letters' OPS_BROKER)."""
    app.router.add_get("/queues", queues_view, name="ops_queues")
    app.router.add_get("/queues/{queue}", browse_view, name="ops_queue")
    app.router.add_get(
        "/queues/{queue}/{part}/messages/{message_id}/{action}",
        message_confirm_view,
        name="ops_message_confirm",
    )
    app.router.add_post(
        "/queues/{queue}/{part}/messages/{message_id}/{action}",
        message_act_view,
        name="ops_message_act",
    )
    app.router.add_get(
        "/queues/{queue}/{part}/{action}", queue_confirm_view, name="ops_queue_confirm"
    )
    app.router.add_post("/queues/{queue}/{part}/{action}", queue_act_view, name="ops_queue_act")
