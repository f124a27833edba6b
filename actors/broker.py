"""Build the Dramatiq broker from Settings and bind every declared actor to it.

BROKER_URL chooses the broker: amqp:// gives RabbitMQ with publisher confirms (an enqueue returns
only once RabbitMQ has the message; one node or a cluster, classic or quorum queues: see
actors/rabbitmq.py), redis:// gives Redis (the embedded mode; it has no queue types). Both get
the same middleware: retries with exponential backoff (exhausted messages go to the queue's
dead letters, `<queue>.XQ` with the final attempt's error, and so does a message whose retry
could not be enqueued), time limits, the AsyncIO event-loop thread, the actors' Resources, the
log context (message id and the request id that caused the message), and in each worker process
Dramatiq's CLI starts, a bounded stop (actors.stopping).

Errors in PERMANENT_ERRORS are never retried, whichever actor raises them: they join every
actor's own `throws=`, so the message goes to the dead letters at once with its reason.
"""

from __future__ import annotations

import functools
import importlib
import signal
import threading
from contextlib import AsyncExitStack
from typing import Any

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from actors import bundles, dead_letters
from actors.dead_letters import BrokerUnavailable
from actors.mail.transport import MailRefused
from actors.ops.heartbeats import Heartbeats
from actors.ops.stats import StatsMiddleware
from actors.rabbitmq import ShopRabbitmqBroker
from actors.registry import SPECS, ActorFunction
from actors.resources import Resources, open_resources
from actors.stopping import StopDeadline
from configs.settings import Settings
from domain.events import EVENTS, QUEUES

log = structlog.get_logger(__name__)

# Every module that declares actors (each event names its own); importing them fills SPECS.
ACTOR_MODULES = tuple(sorted({event.actor_module for event in EVENTS.values()}))

MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000
DEFAULT_MAX_RETRIES = 10
DEFAULT_TIME_LIMIT_MS = 5 * 60_000
# Failures no retry can mend: dead-lettered on the first attempt, with their reason.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (MailRefused,)
# What Dramatiq's CLI makes a worker process stop on (SIGINT: ignored there; its parent sends
# SIGTERM instead).
WORKER_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class FinalErrors(Middleware):
    """Dead letters keep the error of the attempt that killed them, on both brokers.

    Both brokers dead-letter a message as it was last enqueued, so the final attempt's exception
    would be lost (and a message that died on its first run, by `throws` or `max_retries=0`, had
    none at all). First in the middleware list, this runs after every other
    `after_process_message`, once Retries has decided: a message marked failed is written to
    its dead letters with the error in its options (`actors.dead_letters.bury`) and then
    acknowledged instead of rejected. When the broker refuses the write, the message is
    rejected as before: it dies without its reason rather than being lost.
    """

    def __init__(self) -> None:
        self._attempt = threading.local()  # one message at a time per worker thread

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        # Retries counts the final failure before it gives up; the dead letter says how many
        # retries came before the final attempt, as Dramatiq's own dead letters do.
        self._attempt.retries = int(message.options.get("retries", 0))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None or not message.failed:
            return
        retries = getattr(self._attempt, "retries", 0)
        facts = {"message_id": message.message_id, "actor": message.actor_name}
        try:
            dead_letters.bury(broker, message, exception, retries=retries)
        except BrokerUnavailable as exc:
            log.warning("dead_letter.error_not_stored", error=repr(exc), **facts)
            return
        message.failed = False  # in the dead letters already: acknowledge, do not reject
        log.error("message.dead_lettered", retries=retries, error=repr(exception), **facts)


class BoundedStop(Middleware):
    """A worker process that Dramatiq's CLI started stops within `seconds` of SIGTERM.

    The CLI installs its signal handler in each worker process and then emits `process_boot`
    (nothing else emits it). Here that handler is wrapped in a StopDeadline: only the first
    signal reaches it (it makes the process leave its loop and call `Worker.stop`), the later
    ones are ignored instead of raising SystemExit wherever the main thread is, and the deadline
    ends a stop that hangs. Relied on in the CLI (dramatiq 2.2): the handler's first call only
    asks the main loop to stop.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if not callable(handler) or threading.current_thread() is not threading.main_thread():
            return  # not a process of Dramatiq's CLI

        def stop(sig: signal.Signals) -> None:
            handler(sig, None)

        StopDeadline(self.seconds, stop, signals=WORKER_STOP_SIGNALS).install()


class ResourcesMiddleware(Middleware):
    """Opens the actors' Resources on the event-loop thread when a worker boots.

    `before_worker_boot`, not after: Dramatiq starts consuming before `after_worker_boot` runs,
    and a message must never find the resources closed. AsyncIO comes earlier in the middleware
    list, so its loop is already running here.

    Closed in `after_worker_shutdown`, not before: Dramatiq emits `before_worker_shutdown` and
    only then waits for the messages in progress, which would find their pools and Redis
    closed (a message reindexing a product opened a new Redis connection on the closed client,
    left for the garbage collector). "After" hooks run in reverse middleware order, so this one
    runs while AsyncIO's loop still does.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.resources: Resources | None = None
        self._stack: AsyncExitStack | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stack = AsyncExitStack()
        self.resources = _loop().run_coroutine(open_resources(self.settings, self._stack))

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._stack is not None:
            _loop().run_coroutine(self._stack.aclose())
        self._stack, self.resources = None, None


class DurableRetries(Retries):
    """Dramatiq's Retries, except that a retry that cannot be enqueued does not lose the message.

    Retries enqueues the retry from an after-processing hook, and Dramatiq swallows what such a
    hook raises and then acknowledges the original: with the broker refusing the worker's
    publishing connection (or nacking the retry), the message was simply gone. Here it fails
    instead, so the worker hands it to the queue's dead letters (/ops/dead-letters). The outbox
    reconciler publishes the event again in any case, since no inbox row records its effect.
    """

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        try:
            super().after_process_message(  # type: ignore[no-untyped-call]
                broker, message, result=result, exception=exception
            )
        except Exception as exc:
            log.error(
                "message.retry_not_enqueued",
                message_id=message.message_id,
                retries=message.options.get("retries", 0),
                error=repr(exc),
            )
            message.fail()


class LogContext(Middleware):
    """Binds message_id, actor and the originating request_id to every log line of a message."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id,
            actor=message.actor_name,
            request_id=message.options.get("request_id"),
        )
        # RabbitMQ marks a message it delivers again (its consumer died before the ack); the
        # inbox makes that harmless, and this line makes it visible.
        if getattr(message, "redelivered", False):
            log.info("message.redelivered", retries=message.options.get("retries", 0))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is not None:
            log.warning(
                "message.failed",
                retries=message.options.get("retries", 0),
                error=repr(exception),
            )
        structlog.contextvars.clear_contextvars()


def _loop() -> Any:
    thread = get_event_loop_thread()
    if thread is None:
        raise RuntimeError("the AsyncIO middleware must come before ResourcesMiddleware")
    return thread


def bind(fn: ActorFunction, resources: ResourcesMiddleware) -> Any:
    """A sync callable for Dramatiq that runs `fn(resources, **kwargs)` on the event loop.

    Dramatiq's own async wrapper would lose the worker thread's log context; this one carries it.
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        context = structlog.contextvars.get_contextvars()
        if resources.resources is None:
            raise RuntimeError("actor resources are not open (is the worker booted?)")
        res = resources.resources

        async def with_context() -> None:
            structlog.contextvars.bind_contextvars(**context)
            await fn(res, *args, **kwargs)

        _loop().run_coroutine(with_context())

    return run


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for `settings` with every actor declared on it (not set as Dramatiq's global)."""
    for module in ACTOR_MODULES:
        importlib.import_module(module)
    resources = ResourcesMiddleware(settings)
    middleware = [
        FinalErrors(),  # first: its "after" hooks run last
        # Before anything that may skip a message: its counts see every one. Beats only in a
        # process that boots a Worker.
        Heartbeats(
            str(settings.redis_url), settings.heartbeat_interval_seconds, host=settings.host_name
        ),
        BoundedStop(settings.stop_timeout_seconds),
        AgeLimit(),
        TimeLimit(time_limit=DEFAULT_TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        DurableRetries(
            max_retries=DEFAULT_MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS
        ),
        AsyncIO(),
        resources,
        LogContext(),
        StatsMiddleware(settings),  # per-actor and per-queue counts for /ops/queues
    ]
    broker: dramatiq.Broker
    if settings.broker_kind == "rabbitmq":
        broker = ShopRabbitmqBroker(
            urls=settings.broker_urls,
            queue_type=settings.rabbitmq_queue_type,
            delivery_limit=settings.rabbitmq_delivery_limit,
            middleware=middleware,
        )
    else:
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.broker_url, middleware=middleware
        )
    # Every queue a message may be routed to, also those no actor is declared on (an order's
    # confirmation email goes by the urgent email queue): a worker consumes what is declared.
    for queue in QUEUES:
        broker.declare_queue(queue)
    for spec in SPECS.values():
        dramatiq.Actor(
            bind(spec.fn, resources),
            broker=broker,
            actor_name=spec.name,
            queue_name=spec.queue_name,
            priority=0,
            options=dict(spec.options, throws=_throws(spec.options.get("throws"))),
        )
    # Several events of one actor in one message (actors.bundles): the relay's, for a busy shop.
    dramatiq.Actor(
        bundles.bundle_runner(broker, resources, min_backoff_ms=MIN_BACKOFF_MS),
        broker=broker,
        actor_name=bundles.BUNDLE_ACTOR,
        queue_name=bundles.BUNDLE_QUEUE,
        priority=0,
        options={"max_retries": DEFAULT_MAX_RETRIES, "throws": PERMANENT_ERRORS},
    )
    return broker


def _throws(
    own: type[Exception] | tuple[type[Exception], ...] | None,
) -> tuple[type[Exception], ...]:
    """An actor's `throws=` (one class, a tuple or none) plus PERMANENT_ERRORS."""
    declared = () if own is None else own if isinstance(own, tuple) else (own,)
    return tuple(dict.fromkeys((*declared, *PERMANENT_ERRORS)))
