"""/ops/dead-letters: the messages Dramatiq gave up on, per queue, and a way to run them again.

This is the one place where the web process talks to the broker directly (everything else goes
through the outbox): requeueing is an operator's act on messages already sent. The broker is
built on first use, not at start-up, and lives on one thread of its own (`OpsBroker`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

import dramatiq
import structlog
from aiohttp import web

from actors import dead_letters
from actors.dead_letters import BrokerUnavailable, DeadLetter, UnknownQueue
from configs.settings import Settings
from web.fields import whole_number
from web.keys import PRINCIPAL, SETTINGS
from web.params import posted_form
from web.render import render

log = structlog.get_logger(__name__)

T = TypeVar("T")

PEEK_LIMIT = 20
TEMPLATE = "ops/dead_letters.html"


class OpsBroker:
    """This web process's broker for the dead-letter pages: built on first use, on its own thread.

    One thread does all of its work: pika connections must stay on the thread that made them, and
    Dramatiq's RabbitMQ broker keeps one publishing connection per thread, so this keeps one.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ops-broker")
        self._broker: dramatiq.Broker | None = None

    async def run(self, settings: Settings, call: Callable[[dramatiq.Broker], T]) -> T:
        """`call(broker)` on the broker's thread (building the broker first, once)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, settings, call)

    def _call(self, settings: Settings, call: Callable[[dramatiq.Broker], T]) -> T:
        if self._broker is None:
            from actors.broker import build_broker  # imports every actor module: only when used

            self._broker = build_broker(settings)
        return call(self._broker)

    async def close(self) -> None:
        """Close the broker's connections (if it was ever built) and stop its thread."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._broker is not None:
            self._broker.close()
            self._broker = None


OPS_BROKER = web.AppKey("ops_broker", OpsBroker)


async def ops_broker_ctx(app: web.Application) -> AsyncIterator[None]:
    """Makes the (still unbuilt) OpsBroker; closes it with the app."""
    app[OPS_BROKER] = broker = OpsBroker()
    try:
        yield
    finally:
        await broker.close()


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
    return render(request, TEMPLATE, {"queues": [], "unavailable": True}, status=503)


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
    message_id = sent_id if isinstance(sent_id, str) and sent_id else None
    settings = request.config_dict[SETTINGS]
    try:
        moved = await request.config_dict[OPS_BROKER].run(
            settings, lambda broker: dead_letters.requeue(broker, queue, message_id)
        )
    except UnknownQueue as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except BrokerUnavailable as exc:
        return unavailable(request, exc)
    principal = request.get(PRINCIPAL)
    log.info(
        "dead_letters.requeued",
        queue=queue,
        message_id=message_id,
        count=moved,
        user_id=principal.user_id if principal else None,
    )
    raise web.HTTPSeeOther("/ops/dead-letters?" + urlencode({"queue": queue, "requeued": moved}))


def add_routes(app: web.Application) -> None:
    """The dead-letter routes and the broker they use."""
    app.cleanup_ctx.append(ops_broker_ctx)
    app.router.add_get("/dead-letters", dead_letters_view, name="ops_dead_letters")
    app.router.add_post("/dead-letters/{queue}/requeue", requeue_view, name="ops_requeue")
