"""The ops broker thread bounds every call: a hung one gives BrokerUnavailable at its timeout,
and the next call runs at once on a fresh thread and broker instead of queueing behind it."""

from __future__ import annotations

import threading
import time

import pytest

from actors.dead_letters import BrokerUnavailable
from actors.ops.broker_thread import BrokerThread


async def test_a_hung_call_times_out_and_the_next_runs_on_a_fresh_thread(settings) -> None:
    ops = BrokerThread()
    release = threading.Event()
    seen: list[tuple[int, object]] = []

    def hang(broker: object) -> None:
        seen.append((threading.get_ident(), broker))
        release.wait(10)

    def quick(broker: object) -> str:
        seen.append((threading.get_ident(), broker))
        return "answered"

    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=r"did not answer within 0\.3 s"):
            await ops.run(settings, hang, timeout=0.3)
        assert time.monotonic() - started < 2
        started = time.monotonic()
        assert await ops.run(settings, quick, timeout=5) == "answered"
        assert time.monotonic() - started < 2  # not behind the hung call
        (hung_thread, hung_broker), (fresh_thread, fresh_broker) = seen
        assert hung_thread != fresh_thread and hung_broker is not fresh_broker
    finally:
        release.set()
        await ops.close()


async def test_depths_read_through_the_thread_are_cached(settings) -> None:
    ops = BrokerThread()
    try:
        first = await ops.read_depths(settings)
        assert first.error is None and {d.queue for d in first.depths} >= {"email", "orders"}
        assert await ops.read_depths(settings) is first  # within the cache's seconds
        ops.depths.forget()
        assert await ops.read_depths(settings) is not first
    finally:
        await ops.close()
