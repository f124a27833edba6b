"""Relays for tests: one that fails on purpose, one running beside a test, and a relay with a
worker (what a shop runs beside its web app)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dramatiq

from actors.broker import build_broker
from actors.relay import Relay
from configs.settings import Settings
from storage.database import create_pool
from storage.outbox import OutboxEvent


class CrashAfterPublish(Relay):
    """A relay that dies after the broker confirmed the batch and before marking it published."""

    async def _send(self, events: list[OutboxEvent]) -> None:  # type: ignore[override]
        await super()._send(events)
        raise SystemExit("relay killed between publish and mark")


@asynccontextmanager
async def relaying(dsn: str, broker: dramatiq.Broker) -> AsyncIterator[None]:
    """A relay draining `dsn`'s outbox into `broker` (polling every 0.2 s) until the block ends."""
    pool = await create_pool(dsn, 2)
    stop = asyncio.Event()
    task = asyncio.create_task(Relay(pool, broker, poll_interval=0.2).run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await pool.close()


@asynccontextmanager
async def relay_and_worker(settings: Settings) -> AsyncIterator[None]:
    """The relay and a Dramatiq worker on `settings`' broker (flushed before and after), as
    `aioshop relay` and `aioshop worker` run them, until the block ends."""
    broker = build_broker(settings)
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        async with relaying(str(settings.database_url), broker):
            yield
    finally:
        await asyncio.to_thread(worker.stop)
        broker.flush_all()
        broker.close()
