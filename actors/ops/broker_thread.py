"""A broker for a web process's operator pages (and its /metrics), on one thread of its own.

One thread does all of its work: pika connections must stay on the thread that made them, and
Dramatiq's RabbitMQ broker keeps one publishing connection per thread, so this keeps one. The
broker is built on first use (building it imports every actor module), not at start-up.

Every call is bounded: one that does not finish within its timeout raises BrokerUnavailable at
once, and the thread it hangs on is abandoned (its broker is closed there once the call ends) for
a new thread and broker, so a broker that stopped answering never holds up the next page.
The depth read is cached for actors.ops.queues.CACHE_SECONDS, shared by pages and scrapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import dramatiq
import structlog

from actors.dead_letters import BrokerUnavailable
from actors.ops.queues import DepthCache, DepthReading
from actors.ops.stats import stop_stats
from configs.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

READ_TIMEOUT_SECONDS = 10.0
ACT_TIMEOUT_SECONDS = 60.0  # requeueing or purging thousands of messages takes a while


@dataclass
class _Slot:
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ops-broker")
    )
    broker: dramatiq.Broker | None = None


class BrokerThread:
    """This process's broker for the operators: built on first use, on its own thread."""

    def __init__(self) -> None:
        self._slot = _Slot()
        self.depths = DepthCache()

    async def run(
        self,
        settings: Settings,
        call: Callable[[dramatiq.Broker], T],
        *,
        timeout: float = READ_TIMEOUT_SECONDS,
    ) -> T:
        """`call(broker)` on the broker's thread (building the broker first, once). Raises
        BrokerUnavailable when it takes longer than `timeout` seconds, and what `call` raises."""
        slot = self._slot
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(slot.executor, self._call, slot, settings, call)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._abandon(slot)
            log.warning("ops_broker.timed_out", seconds=timeout)
            raise BrokerUnavailable(f"the broker did not answer within {timeout:g} s") from None

    async def read_depths(self, settings: Settings) -> DepthReading:
        """Every queue's depth, from the cache when fresh; a failure is a reading with an error."""
        try:
            return await self.run(settings, lambda broker: self.depths.read(broker, settings))
        except BrokerUnavailable as exc:
            return DepthReading([], str(exc), 0.0)

    @staticmethod
    def _call(slot: _Slot, settings: Settings, call: Callable[[dramatiq.Broker], T]) -> T:
        if slot.broker is None:
            from actors.broker import build_broker  # imports every actor module: only when used

            slot.broker = build_broker(settings)
        return call(slot.broker)

    def _abandon(self, slot: _Slot) -> None:
        if self._slot is not slot:
            return  # already replaced
        self._slot = _Slot()
        self.depths.forget()
        slot.executor.submit(_close, slot)  # runs once the hung call ends
        slot.executor.shutdown(wait=False)

    async def close(self) -> None:
        """Close the broker's connections (if it was ever built) and stop its thread."""
        slot = self._slot
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(slot.executor, _close, slot),
                READ_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            log.warning("ops_broker.close_timed_out")
        finally:
            slot.executor.shutdown(wait=False)


def _close(slot: _Slot) -> None:
    if slot.broker is not None:
        try:
            stop_stats(slot.broker)
            slot.broker.close()
        except Exception as exc:  # closing a broken connection: nothing left to do
            log.warning("ops_broker.close_failed", error=repr(exc))
        slot.broker = None
