"""A test actor on a queue of its own, on either broker, that fails until the test fixes it.

`poisoned(settings)` declares it (in actors.registry, so every broker built by build_broker in
this process knows it, the web's own too), empties its queue and its delay and dead-letter parts
before and after, and yields the broker. `POISON` records what the actor saw and did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from actors.broker import build_broker
from actors.ops.stats import stop_stats
from actors.registry import SPECS, handles
from actors.resources import Resources
from configs.settings import Settings
from domain.events import Event

# Who may use /ops (web.guards.operators_only: the roles ops and admin).
OPERATOR_ROLE = "ops"
QUEUE = "tests_ops"
ACTOR = "tests_ops.poison"
MAX_RETRIES = 1


@dataclass
class Poison:
    """What the actor saw and did; `fixed` is the bug fix the test ships, `sleeps` the seconds
    an item takes."""

    fixed: bool = False
    attempts: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    sleeps: dict[str, float] = field(default_factory=dict)


POISON = Poison()


class PoisonPayload(TypedDict):
    item: str


async def poison(res: Resources, item: str, **secrets: Any) -> None:
    """Fails on every item whose name starts with "bad" until the bug is fixed."""
    POISON.attempts.append(item)
    if item in POISON.sleeps:
        await asyncio.sleep(POISON.sleeps[item])  # a known duration
    if item.startswith("bad") and not POISON.fixed:
        raise ValueError(f"poison: cannot handle {item}")
    POISON.effects.append(item)


@contextmanager
def poisoned(settings: Settings) -> Iterator[dramatiq.Broker]:
    """A broker with the poison actor declared, its queue emptied before and after."""
    POISON.fixed = False
    POISON.attempts.clear()
    POISON.effects.clear()
    POISON.sleeps.clear()
    event = Event(ACTOR, QUEUE, PoisonPayload, __name__)
    handles(event, max_retries=MAX_RETRIES, min_backoff=10, max_backoff=50)(poison)
    broker = build_broker(settings)
    try:
        if isinstance(broker, RabbitmqBroker):
            broker.declare_queue(QUEUE, ensure=True)
        broker.flush(QUEUE)
        yield broker
        broker.flush(QUEUE)
    finally:
        stop_stats(broker)  # its last counts land now, not in the next test's Redis database
        broker.close()
        SPECS.pop(ACTOR, None)


@contextmanager
def running_worker(broker: dramatiq.Broker, threads: int = 1) -> Iterator[dramatiq.Worker]:
    """A real worker consuming only QUEUE (and its delay queue)."""
    worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def settings_for_kind(kind: str, settings_for: Any, fresh_db: str, redis_url: str) -> Settings:
    """Settings on RabbitMQ (the run's vhost) or on Redis (the test's database)."""
    if kind == "redis":
        return settings_for(fresh_db, broker_url=redis_url)  # type: ignore[no-any-return]
    return settings_for(fresh_db)  # type: ignore[no-any-return]
