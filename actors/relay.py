"""The outbox relay: move committed outbox events into the broker, at least once.

A batch is claimed with `FOR UPDATE SKIP LOCKED` (so several relays share the work), published
by PUBLISH_THREADS threads at once, each one message at a time (RabbitMQ confirms each message
before `enqueue` returns), and marked published in the same transaction. Several events of one
actor bound for one queue go as one message (`bundle_size`; actors.bundles), each event alone
otherwise. A relay that dies
after publishing and before committing leaves the rows unpublished; the next relay publishes
them again with the same message ids, and the consumers' inbox makes the second delivery a
no-op. The relay wakes on LISTEN/NOTIFY and also polls, so a lost notification or a dropped
LISTEN connection only costs latency. It also sends
the periodic jobs their ticks (`ticks`: the unpaid-order expiry and the outbox reconciler every
minute), so a shop needs no separate scheduler.

One row never holds up the others. When a message cannot be published, the relay asks whether
the broker answers at all: if it does, the row is at fault (an actor this release does not know,
as during a rolling deploy; a payload that is not an object); its failure is counted, it is tried
again after a growing delay, and after `max_attempts` it is parked with its error for an
operator (/ops/outbox), while the rest of the batch goes on. If the broker does not answer, the
batch stops (what was sent so far is marked), nothing is blamed on the row, and the relay tries
again within a second, so publishing resumes as soon as the broker is back. Nor is a queue that
RabbitMQ holds with another type than RABBITMQ_QUEUE_TYPE (actors.rabbitmq.QueueTypeMismatch):
the relay stops publishing and logs `outbox.queue_type_mismatch` until the operator mends it.

On a RabbitMQ cluster (BROKER_URL lists its nodes) a publish whose node dies before it confirms
raises, and Dramatiq's enqueue publishes it again on a new connection to a node that answers:
the row is marked only once a node confirmed it, so nothing is lost, and a message that was
stored twice is dropped by the consumers' inbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import dramatiq
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import Counter

from actors.bundles import bundle_message, event_message
from actors.rabbitmq import QueueTypeMismatch
from domain.events import EVENTS
from storage import outbox
from storage.outbox import OutboxEvent

log = structlog.get_logger(__name__)

PURGE_EVERY_SECONDS = 3600.0
# After a failure of the broker or the database, the relay tries again after 0.1 s, doubling up
# to this: each try costs one small query and one connection attempt, and a broker that comes
# back is used again within this long.
MAX_ERROR_BACKOFF_SECONDS = 1.0
# A failure while the dependency stays down is logged on the first try and then every this many.
LOG_EVERY_FAILURES = 30
ACQUIRE_TIMEOUT_SECONDS = 10.0
# A row that cannot be published: tried again after FIRST_RETRY_SECONDS, doubling, at most
# MAX_RETRY_SECONDS apart; parked after DEFAULT_MAX_ATTEMPTS failures (about 8 minutes).
DEFAULT_MAX_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
MAX_ERROR_CHARACTERS = 2000
# Threads publishing one batch at once. Each waits for RabbitMQ's confirm of every message before
# the next (publisher confirms, message by message), so one thread published at most one message
# per round trip, about 2 ms here: fewer than a busy shop's 4-5 events per order need.
PUBLISH_THREADS = 4

PUBLISHED = Counter(
    "aioshop_relay_published_total", "Outbox events the relay published, by queue.", ["queue"]
)
PUBLISH_FAILURES = Counter(
    "aioshop_relay_publish_failures_total",
    "Outbox rows the broker refused, and relay passes that failed (broker or database down).",
)


class BrokerDown(Exception):
    """The broker did not answer: the batch stopped, and no row is to blame."""


@dataclass
class PublishReport:
    """What one batch's publishing did, row by row."""

    published: list[uuid.UUID] = field(default_factory=list)
    failed: dict[uuid.UUID, str] = field(default_factory=dict)  # the row's fault: its error
    broker_error: BaseException | None = None  # the broker stopped answering part-way


class Relay:
    """Drains the outbox of one database into one broker."""

    def __init__(
        self,
        primary: asyncpg.Pool,
        broker: dramatiq.Broker,
        *,
        batch_size: int = 100,
        poll_interval: float = 2.0,
        ticks: Sequence[tuple[str, float]] = (),
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        first_retry_seconds: float = FIRST_RETRY_SECONDS,
        bundle_size: int = 1,
        linger: float = 0.0,
    ) -> None:
        self.primary = primary
        self.broker = broker
        self.batch_size = batch_size
        # Up to this many events of one actor and queue in one message (actors.bundles); 1: each
        # event is a message of its own.
        self.bundle_size = bundle_size
        # Seconds a notified relay waits before it claims, for the batch to gather more events.
        self.linger = linger
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.first_retry_seconds = first_retry_seconds
        # Periodic jobs: (actor name, seconds). The relay sends each actor a message that often;
        # a lost tick costs one period, and the jobs tolerate running twice at once.
        self.ticks = list(ticks)
        self._next_tick = {name: 0.0 for name, _ in self.ticks}
        self._wake = asyncio.Event()
        # pika is blocking and keeps one connection per thread: each publishing thread keeps
        # one, and waits for RabbitMQ's confirm of each message it sends; PUBLISH_THREADS of them
        # have as many confirms in flight.
        self._executor = ThreadPoolExecutor(
            max_workers=PUBLISH_THREADS, thread_name_prefix="relay-publish"
        )

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch; returns how many events it published (or parked
        or put off: how many it claimed). Raises BrokerDown when the broker stopped answering,
        after committing what it did publish."""
        async with (
            self.primary.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn,
            conn.transaction(),
        ):
            events = await outbox.claim(conn, self.batch_size)
            if not events:
                return 0
            report = await self._send(events)
            if report.published:
                await outbox.mark_published(conn, report.published)
            for event_id, error in report.failed.items():
                await self._record_failure(conn, events, event_id, error)
        if report.published:
            log.info("outbox.published", count=len(report.published))
            _count_published(events, report.published)
        PUBLISH_FAILURES.inc(len(report.failed))
        if report.broker_error is not None:
            raise BrokerDown(repr(report.broker_error)) from report.broker_error
        return len(events)

    async def _record_failure(
        self,
        conn: asyncpg.Connection,
        events: Sequence[OutboxEvent],
        event_id: uuid.UUID,
        error: str,
    ) -> None:
        parked = await outbox.record_failure(
            conn,
            event_id,
            error,
            max_attempts=self.max_attempts,
            first_delay=self.first_retry_seconds,
            max_delay=MAX_RETRY_SECONDS,
        )
        actor_name = next(e.actor_name for e in events if e.event_id == event_id)
        fields = {"event_id": str(event_id), "actor_name": actor_name, "error": error}
        if parked:
            log.error("outbox.event_parked", **fields)
        else:
            log.warning("outbox.event_failed", **fields)

    async def drain(self) -> int:
        """Publish batches until no event is due; returns how many events were claimed."""
        total = 0
        while claimed := await self.publish_batch():
            total += claimed
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set. Survives any failure: logs it and tries again soon."""
        listener = asyncio.create_task(self._listen(stop), name="outbox-listen")
        errors = 0
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.drain()
                    await self._send_due_ticks(loop.time())
                    if loop.time() - last_purge > PURGE_EVERY_SECONDS:
                        async with self.primary.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                            await outbox.purge_published(conn)
                        last_purge = loop.time()
                except Exception as exc:  # the broker or the database is down: retry soon
                    errors += 1
                    PUBLISH_FAILURES.inc()
                    if errors % LOG_EVERY_FAILURES == 1 and isinstance(
                        exc.__cause__, QueueTypeMismatch
                    ):
                        log.error("outbox.queue_type_mismatch", error=str(exc.__cause__))
                    elif errors % LOG_EVERY_FAILURES == 1:
                        log.warning("outbox.publish_failed", error=repr(exc), attempt=errors)
                    await _sleep_or_stop(stop, error_backoff(errors))
                    continue
                if errors:
                    log.info("outbox.publish_resumed", failed_attempts=errors)
                    errors = 0
                await _first_of(stop, self._wake, timeout=self.poll_interval)
                if self.linger and self._wake.is_set():
                    # Let the commits of the next few milliseconds join this batch: fewer
                    # passes, and more events of one actor per message (bundles).
                    await _sleep_or_stop(stop, self.linger)
        finally:
            listener.cancel()
            with suppress(asyncio.CancelledError):
                await listener
            self._executor.shutdown(wait=True)

    async def _send_due_ticks(self, now: float) -> None:
        due = [name for name, _ in self.ticks if now >= self._next_tick[name]]
        if not due:
            return
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(self._executor, self._send_ticks, due)
        if report.broker_error is not None:
            raise BrokerDown(repr(report.broker_error)) from report.broker_error
        for name, every in self.ticks:
            if name in due:  # sent, or failing for its own reason: a period later either way
                self._next_tick[name] = now + every

    def _send_ticks(self, names: Sequence[str]) -> PublishReport:
        report = PublishReport()
        for name in names:
            try:
                self.broker.enqueue(self.broker.get_actor(name).message())
            except QueueTypeMismatch as exc:
                report.broker_error = exc
                break
            except Exception as exc:
                if not self._broker_answers():
                    report.broker_error = exc
                    break
                log.error("outbox.tick_failed", actor_name=name, error=repr(exc))
        return report

    async def _send(self, events: Sequence[OutboxEvent]) -> PublishReport:
        """Publish the batch in up to PUBLISH_THREADS parts at once (each keeps its messages'
        order), one report for all of them."""
        loop = asyncio.get_running_loop()
        units = self._bundled(events)
        parts = [units[n::PUBLISH_THREADS] for n in range(min(PUBLISH_THREADS, len(units)))]
        reports = await asyncio.gather(
            *(loop.run_in_executor(self._executor, self._publish_each, part) for part in parts)
        )
        report = PublishReport()
        for each in reports:
            report.published += each.published
            report.failed.update(each.failed)
            report.broker_error = report.broker_error or each.broker_error
        return report

    def _bundled(self, events: Sequence[OutboxEvent]) -> list[list[OutboxEvent]]:
        """The batch as messages to send, in the order of their first events: the events of one
        known actor bound for one queue together, up to `bundle_size` a message; the rest alone."""
        units: list[list[OutboxEvent]] = []
        open_units: dict[tuple[str, str], list[OutboxEvent]] = {}
        for event in events:
            known = EVENTS.get(event.actor_name)
            if (
                self.bundle_size < 2
                or known is None
                or not isinstance(event.payload, Mapping)
                or event.actor_name not in self.broker.actors
            ):
                units.append([event])
                continue
            key = (event.actor_name, known.queue_for(event.payload))
            unit = open_units.get(key)
            if unit is None:
                unit = open_units[key] = []
                units.append(unit)
            unit.append(event)
            if len(unit) == self.bundle_size:
                del open_units[key]  # full: the next such event starts another
        return units

    def _publish_each(self, units: Sequence[Sequence[OutboxEvent]]) -> PublishReport:
        """On the publishing thread: each message on its own, so one bad row fails alone (a
        bundle the broker refuses while it answers goes again event by event)."""
        report = PublishReport()
        for unit in units:
            if len(unit) > 1:
                try:
                    self.broker.enqueue(self._bundle(unit))
                except QueueTypeMismatch as exc:  # the operator's to mend
                    report.broker_error = exc
                    break
                except Exception as exc:
                    if not self._broker_answers():
                        report.broker_error = exc
                        break
                    log.warning("outbox.bundle_refused", count=len(unit), error=repr(exc))
                else:
                    report.published += [event.event_id for event in unit]
                    continue
            if not all(self._publish_one(event, report) for event in unit):
                break
        return report

    def _publish_one(self, event: OutboxEvent, report: PublishReport) -> bool:
        """Publish one event alone, noting the outcome in `report`; False when the broker
        stopped answering (the part stops)."""
        try:
            self.broker.enqueue(self._message(event))
        except QueueTypeMismatch as exc:  # the operator's to mend, not the row's fault
            report.broker_error = exc
            return False
        except Exception as exc:
            if not self._broker_answers():
                report.broker_error = exc
                return False
            report.failed[event.event_id] = repr(exc)[:MAX_ERROR_CHARACTERS]
        else:
            report.published.append(event.event_id)
        return True

    def _broker_answers(self) -> bool:
        """Whether the broker takes a connection now (on the publishing thread). A failed
        publish with a broker that answers is the message's fault."""
        try:
            if isinstance(self.broker, RabbitmqBroker):
                self.broker.channel  # noqa: B018 - opens this thread's connection if it must
                self.broker.connection.process_data_events(time_limit=0)
            elif isinstance(self.broker, RedisBroker):
                self.broker.client.ping()
        except Exception:
            if isinstance(self.broker, RabbitmqBroker):
                with suppress(Exception):
                    del self.broker.connection  # the next try starts a new one
            return False
        return True

    def _message(self, event: OutboxEvent) -> dramatiq.Message[Any]:
        return event_message(
            self.broker, event.actor_name, str(event.event_id), event.payload, event.request_id
        )

    def _bundle(self, events: Sequence[OutboxEvent]) -> dramatiq.Message[Any]:
        first = events[0]
        known = EVENTS[first.actor_name]
        return bundle_message(
            self.broker,
            first.actor_name,
            known.queue_for(first.payload),
            [(str(event.event_id), event.payload, event.request_id) for event in events],
        )

    async def _listen(self, stop: asyncio.Event) -> None:
        """Hold a LISTEN connection; reconnect when it drops. Polling covers the gaps."""
        while not stop.is_set():
            try:
                async with self.primary.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                    await conn.add_listener("outbox", self._notified)
                    try:
                        while not stop.is_set() and not conn.is_closed():
                            await _sleep_or_stop(stop, 5.0)
                    finally:
                        with suppress(Exception):
                            await conn.remove_listener("outbox", self._notified)
            except Exception as exc:  # keep listening whatever happened; polling covers it
                log.warning("outbox.listen_failed", error=repr(exc))
                await _sleep_or_stop(stop, 2.0)

    def _notified(self, *_: object) -> None:
        self._wake.set()


def _count_published(events: Sequence[OutboxEvent], published: Sequence[uuid.UUID]) -> None:
    done = set(published)
    for event in events:
        if event.event_id in done:
            known = EVENTS.get(event.actor_name)  # the label is a queue of domain.events, or other
            queue = known.queue_for(event.payload) if known is not None else "other"
            PUBLISHED.labels(queue).inc()


def error_backoff(failures: int) -> float:
    """Seconds to wait after `failures` failed tries in a row: 0.1 s doubling, at most 1 s."""
    return float(min(MAX_ERROR_BACKOFF_SECONDS, 0.1 * 2 ** min(failures - 1, 10)))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
