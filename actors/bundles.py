"""Bundles: several outbox events of one actor and queue carried by one broker message.

Each message costs the same whatever it carries: the relay's publish and RabbitMQ's confirm,
RabbitMQ's store and delivery, and in the worker the consume, the middleware, the hop onto the
event loop and the ack. When the relay claims a batch holding several events of one actor bound
for one queue (a busy shop: many orders' captures, many "placed" emails), it publishes them as
one bundle (`RELAY_BUNDLE_SIZE` events at most), and the worker runs each event's actor on its
event loop, up to CONCURRENCY at once, exactly as if each had come alone: the actor takes the
event's payload, records the event id in the inbox in the transaction of its effect, and logs
with the event's id and request id.

Nothing is lost and nothing happens twice:
- an event whose actor raised is handed over to a message of its own (the message the relay
  publishes for a lone event: its id is the event's), with one retry counted and the first
  retry's backoff, so it goes on through Dramatiq's retries and dead letters as any message; an
  error its actor does not retry (`throws`) is handed over at once, to fail alone and be
  dead-lettered with its reason;
- when the handover cannot be enqueued (the broker is down), the bundle itself fails and is
  retried: its events that took effect are skipped by the inbox;
- a worker that dies with a bundle unacknowledged has the whole bundle delivered again, and the
  inbox skips what took effect; the outbox reconciler publishes again any event whose effect
  never shows up, bundled or not.

A batch's lone events and events of actors this release does not know still go one message
each, and a bundle the broker refuses while it answers is published again event by event.

An actor with a bundle handler (actors.registry.handles_bundles: the order emails) has its
bundles applied together instead: one connection, one transaction, one statement for the
events' inbox rows and one for what they read, one SMTP connection for their emails. The handler
gives each event's outcome; an event that failed has left nothing recorded (its inbox row is
taken back before the commit) and is handed over as above, and a handler that fails as a whole
(the database went away) hands every event over.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.errors import ActorNotFound

from actors.ops.stats import StatsMiddleware
from actors.registry import BUNDLE_HANDLERS, SPECS, Bundled
from domain.events import EVENTS

log = structlog.get_logger(__name__)

BUNDLE_ACTOR = "outbox.run_bundle"
# The bundle actor's own queue; its messages travel on their events' queue.
BUNDLE_QUEUE = "outbox"
# Events of one bundle in progress at once. Each holds a database connection while it runs, so
# the events of all bundles in progress in a worker process are also held to DATABASE_POOL_SIZE
# (the process's pool, which its threads share): they wait for a turn, not for a connection.
CONCURRENCY = 4
# The process's gate, made on its event loop (a worker started again has a new loop).
_IN_PROGRESS: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def event_message(
    broker: dramatiq.Broker,
    actor_name: str,
    event_id: str,
    payload: Any,
    request_id: str | None,
) -> dramatiq.Message[Any]:
    """The message that carries one event alone: its id is the event's, on the queue its payload
    routes it to. Raises ActorNotFound, and TypeError for a payload that is not an object."""
    actor = broker.get_actor(actor_name)  # raises ActorNotFound
    if not isinstance(payload, Mapping):
        raise TypeError(f"the payload is a JSON {type(payload).__name__}, not an object")
    options: dict[str, Any] = {"request_id": request_id} if request_id else {}
    message = actor.message_with_options(args=(), kwargs=dict(payload), **options)
    known = EVENTS.get(actor_name)  # the queue its payload routes it to
    queue = known.queue_for(payload) if known is not None else message.queue_name
    return message.copy(message_id=event_id, queue_name=queue)


def bundle_message(
    broker: dramatiq.Broker,
    actor_name: str,
    queue: str,
    events: Sequence[tuple[str, Mapping[str, Any], str | None]],
) -> dramatiq.Message[Any]:
    """One message carrying `events` ((event id, payload, request id) each) of `actor_name`, on
    `queue`."""
    message = broker.get_actor(BUNDLE_ACTOR).message_with_options(
        args=(),
        kwargs={
            "actor_name": actor_name,
            "events": [{"event_id": e, "payload": dict(p), "request_id": r} for e, p, r in events],
        },
    )
    return message.copy(message_id=str(uuid.uuid4()), queue_name=queue)


def bundle_runner(broker: dramatiq.Broker, resources: Any, *, min_backoff_ms: int) -> Any:
    """The bundle actor's function for Dramatiq (run on a worker thread): `resources` is the
    broker's ResourcesMiddleware, whose Resources the events' actors take; `min_backoff_ms`
    the retries' first delay."""

    def run_bundle(actor_name: str, events: list[dict[str, Any]]) -> None:
        if resources.resources is None:
            raise RuntimeError("actor resources are not open (is the worker booted?)")
        spec = SPECS.get(actor_name)
        if spec is None:  # the relay bundles only actors it knows: a release's mismatch
            raise ActorNotFound(actor_name)  # type: ignore[no-untyped-call]
        thread = get_event_loop_thread()
        if thread is None:
            raise RuntimeError("the AsyncIO middleware must come before the bundles")
        context = structlog.contextvars.get_contextvars()  # this thread's: LogContext's
        if actor_name in BUNDLE_HANDLERS:
            outcomes = thread.run_coroutine(
                _run_together(resources.resources, actor_name, events, context)
            )
        else:
            outcomes = thread.run_coroutine(
                _run_all(resources.resources, spec.fn, actor_name, events, context)
            )
        _count(broker, actor_name, events, outcomes)
        for event, (_, error) in zip(events, outcomes, strict=True):
            if error is not None:
                _hand_over(broker, actor_name, event, error, min_backoff_ms)

    run_bundle.__name__ = run_bundle.__qualname__ = "run_bundle"
    return run_bundle


Outcome = tuple[float, BaseException | None]  # an event's seconds, and what its actor raised


def _process_gate(res: Any) -> asyncio.Semaphore:
    """The process's gate on its running loop: DATABASE_POOL_SIZE events (or bundles applied
    together) at once, each holding a connection."""
    loop = asyncio.get_running_loop()
    if loop not in _IN_PROGRESS:
        _IN_PROGRESS.clear()  # an earlier worker's loop, stopped
        _IN_PROGRESS[loop] = asyncio.Semaphore(res.settings.database_pool_size)
    return _IN_PROGRESS[loop]


async def _run_together(
    res: Any, actor_name: str, events: list[dict[str, Any]], context: dict[str, Any]
) -> list[Outcome]:
    """Apply the bundle through its actor's bundle handler (one connection, one transaction);
    each event's outcome, its seconds a share of the whole. A handler that raises (the database
    went away) fails every event: each goes on alone."""
    handler = BUNDLE_HANDLERS[actor_name]
    bundled = [Bundled(e["event_id"], e["payload"], e.get("request_id")) for e in events]
    async with _process_gate(res):
        started = time.monotonic()
        structlog.contextvars.bind_contextvars(
            **{**context, "actor": actor_name, "bundle": context.get("message_id")}
        )
        try:
            errors: list[BaseException | None] = await handler(res, bundled)
        except Exception as exc:
            log.warning("bundle.failed", count=len(events), error=repr(exc), handed_over=True)
            errors = [exc] * len(events)
        share = (time.monotonic() - started) / max(len(events), 1)
    return [(share, error) for error in errors]


async def _run_all(
    res: Any,
    fn: Any,
    actor_name: str,
    events: list[dict[str, Any]],
    context: dict[str, Any],
) -> list[Outcome]:
    """Run every event's actor (CONCURRENCY at once), each logging with `context` and its own
    ids; each event's outcome."""
    gate = asyncio.Semaphore(CONCURRENCY)
    process_gate = _process_gate(res)

    async def run_one(event: dict[str, Any]) -> Outcome:
        async with gate, process_gate:
            started = time.monotonic()
            payload = event["payload"]
            # A task of its own: these bindings are this event's only.
            structlog.contextvars.bind_contextvars(
                **{
                    **context,
                    "message_id": event["event_id"],
                    "actor": actor_name,
                    "request_id": event.get("request_id"),
                    "bundle": context.get("message_id"),
                }
            )
            try:
                await fn(res, **payload)
            except Exception as exc:
                log.warning("message.failed", retries=0, error=repr(exc), handed_over=True)
                return time.monotonic() - started, exc
            return time.monotonic() - started, None

    outcomes = await asyncio.gather(*(run_one(event) for event in events), return_exceptions=True)
    return [
        (0.0, outcome) if isinstance(outcome, BaseException) else outcome for outcome in outcomes
    ]


def _count(
    broker: dramatiq.Broker,
    actor_name: str,
    events: Sequence[dict[str, Any]],
    outcomes: Sequence[Outcome],
) -> None:
    """Each event's attempt in the per-actor statistics (/ops/queues) and in Dramatiq's
    Prometheus metrics (dramatiq_messages_total and the rest, by actor_name), as if it came
    alone, on the queue its payload routes it to."""
    known = EVENTS.get(actor_name)
    queues = [known.queue_for(e["payload"]) if known else BUNDLE_QUEUE for e in events]
    now = time.time()
    for middleware in broker.middleware:
        record_event = getattr(middleware, "record_event", None)  # actors.ops.metrics
        for queue, (seconds, error) in zip(queues, outcomes, strict=True):
            if isinstance(middleware, StatsMiddleware):
                middleware.record(actor_name, queue, seconds, error, now)
            elif record_event is not None:
                record_event(queue, actor_name, seconds, error)


def _hand_over(
    broker: dramatiq.Broker,
    actor_name: str,
    event: dict[str, Any],
    error: BaseException,
    min_backoff_ms: int,
) -> None:
    """Enqueue the event's own message: as its first retry when its actor retries `error`, else
    at once (it fails alone and goes to its dead letters with its reason). Raises when the
    broker does not take it: the bundle is then retried (the inbox skips what took effect)."""
    message = event_message(
        broker, actor_name, event["event_id"], event["payload"], event.get("request_id")
    )
    options = broker.get_actor(actor_name).options
    throws = options.get("throws") or ()
    max_retries = options.get("max_retries", 1)
    if isinstance(error, throws) or max_retries < 1:
        broker.enqueue(message)
        return
    delay = int(options.get("min_backoff", min_backoff_ms))  # Dramatiq's first retry's, unjittered
    broker.enqueue(message.copy(options={**message.options, "retries": 1}), delay=delay)
