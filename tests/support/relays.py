"""Relays for tests: one that fails on purpose, and one running beside a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dramatiq

from actors.relay import Relay
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
