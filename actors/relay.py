"""The outbox relay: move committed outbox events into the broker, at least once.

A batch is claimed with `FOR UPDATE SKIP LOCKED` (so several relays share the work), published
(RabbitMQ confirms each message before `enqueue` returns), and marked published in the same
transaction. A relay that dies after publishing and before committing leaves the rows unpublished;
the next relay publishes them again with the same message ids, and the consumers' inbox makes the
second delivery a no-op. The relay wakes on LISTEN/NOTIFY and also polls, so a lost notification or
a dropped LISTEN connection only costs latency. It also sends the periodic jobs their ticks
(`ticks`: the unpaid-order expiry every minute), so a shop needs no separate scheduler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import asyncpg
import dramatiq
import structlog

from storage import outbox
from storage.outbox import OutboxEvent

log = structlog.get_logger(__name__)

PURGE_EVERY_SECONDS = 3600.0
MAX_ERROR_BACKOFF_SECONDS = 30.0


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
    ) -> None:
        self.primary = primary
        self.broker = broker
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # Periodic jobs: (actor name, seconds). The relay sends each actor a message that often;
        # a lost tick costs one period, and the jobs tolerate running twice at once.
        self.ticks = list(ticks)
        self._next_tick = {name: 0.0 for name, _ in self.ticks}
        self._wake = asyncio.Event()
        # pika is blocking and keeps one connection per thread: one thread keeps one connection.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-publish")

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch; returns how many events it published."""
        async with self.primary.acquire() as conn, conn.transaction():
            events = await outbox.claim(conn, self.batch_size)
            if not events:
                return 0
            await self._send(events)
            await outbox.mark_published(conn, [event.event_id for event in events])
        log.info("outbox.published", count=len(events))
        return len(events)

    async def drain(self) -> int:
        """Publish batches until the outbox is empty; returns how many events were published."""
        total = 0
        while published := await self.publish_batch():
            total += published
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set."""
        listener = asyncio.create_task(self._listen(stop), name="outbox-listen")
        errors = 0
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.drain()
                    errors = 0
                    await self._send_due_ticks(loop.time())
                    if loop.time() - last_purge > PURGE_EVERY_SECONDS:
                        async with self.primary.acquire() as conn:
                            await outbox.purge_published(conn)
                        last_purge = loop.time()
                except Exception as exc:  # the broker or the database is down: back off, retry
                    errors += 1
                    log.warning("outbox.publish_failed", error=repr(exc), attempt=errors)
                    await _sleep_or_stop(stop, min(MAX_ERROR_BACKOFF_SECONDS, 0.5 * 2**errors))
                    continue
                await _first_of(stop, self._wake, timeout=self.poll_interval)
        finally:
            listener.cancel()
            with suppress(asyncio.CancelledError):
                await listener
            self._executor.shutdown(wait=True)

    async def _send_due_ticks(self, now: float) -> None:
        due = [name for name, _ in self.ticks if now >= self._next_tick[name]]
        if not due:
            return
        messages = [self.broker.get_actor(name).message() for name in due]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._enqueue_all, messages)
        for name, every in self.ticks:
            if name in due:
                self._next_tick[name] = now + every

    async def _send(self, events: Sequence[OutboxEvent]) -> None:
        messages = [self._message(event) for event in events]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._enqueue_all, messages)

    def _message(self, event: OutboxEvent) -> dramatiq.Message[Any]:
        actor = self.broker.get_actor(event.actor_name)
        options: dict[str, Any] = {"request_id": event.request_id} if event.request_id else {}
        message = actor.message_with_options(args=(), kwargs=event.payload, **options)
        return message.copy(message_id=str(event.event_id))

    def _enqueue_all(self, messages: Sequence[dramatiq.Message[Any]]) -> None:
        for message in messages:
            self.broker.enqueue(message)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Hold a LISTEN connection; reconnect when it drops. Polling covers the gaps."""
        while not stop.is_set():
            try:
                async with self.primary.acquire() as conn:
                    await conn.add_listener("outbox", self._notified)
                    try:
                        while not stop.is_set() and not conn.is_closed():
                            await _sleep_or_stop(stop, 5.0)
                    finally:
                        with suppress(Exception):
                            await conn.remove_listener("outbox", self._notified)
            except Exception as exc:  # the database is down or busy (PoolExhausted): again soon
                log.warning("outbox.listen_failed", error=repr(exc))
                await _sleep_or_stop(stop, 2.0)

    def _notified(self, *_: object) -> None:
        self._wake.set()


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
