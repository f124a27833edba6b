"""The whole shop through a database failover, with real processes and real servers.

A synchronous streaming pair (tests/support/pgcluster.py); one web, one worker and one relay
process whose DATABASE_URL and REPLICA_DATABASE_URL name both servers (target_session_attrs);
RabbitMQ, Redis and an SMTP server of the test. Clients keep checking out through the API while
the primary is stopped as a crash (pg_ctl stop -m immediate) and, a moment later, the standby is
promoted (pg_ctl promote) with no standby behind it. Nothing of the shop is restarted or told.

What must hold: every answer (checkouts, and a product read after each order) is 2xx or 503 with
Retry-After (no 500, no hang); the processes
find the new primary by themselves (a checkout succeeds after the promotion, the same processes
still run); every order a client was told about exists afterwards, and every order, those placed
before the crash first, gets its side effects exactly once in effect (paid once, both emails once,
the outbox drained).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.failover import BROWSE, REQUEST_TIMEOUT_SECONDS, CheckoutLoad, FailoverShop
from tests.support.orders import assert_each_paid_and_told_once, wait_until_paid
from tests.support.smtp import SmtpServer

# Start-up of three processes and a pair on a loaded machine, then the run itself.
pytestmark = pytest.mark.timeout(300)
OUTAGE_SECONDS = 1.5  # the primary stays down this long before the operator promotes
RECOVERY_BOUND_SECONDS = 30.0  # after the promotion, a checkout must succeed by then
ORDERS_EACH_SIDE = 8


@pytest.fixture
async def shop(
    tmp_path: Path, redis_url: str, broker_url: str, smtp: SmtpServer
) -> AsyncIterator[FailoverShop]:
    running = FailoverShop(tmp_path, redis_url, broker_url, smtp.url)
    try:
        await running.start()
        yield running
    finally:
        await running.close()


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.05)


async def readiness_during(base_url: str, seconds: float) -> list[tuple[int, dict[str, Any]]]:
    """/readyz asked every 0.1 s for `seconds`: (status, body) of each answer."""
    answers = []
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < deadline:
            async with http.get(base_url + "/readyz") as resp:
                answers.append((resp.status, await resp.json()))
            await asyncio.sleep(0.1)
    return answers


async def test_checkouts_survive_a_crashed_primary_and_a_promoted_standby(
    shop: FailoverShop, smtp: SmtpServer
) -> None:
    load = CheckoutLoad(shop.base_url, clients=4)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    try:
        await until(lambda: len(load.placed) >= ORDERS_EACH_SIDE, 60, "orders before the crash")
        old = shop.cluster.primary_node
        old_pid = shop.cluster.postmaster_pid(old)
        killed = time.monotonic()
        await asyncio.to_thread(shop.cluster.stop_primary)
        placed_before = [p.number for p in load.placed if p.answered < killed]
        readiness = await readiness_during(shop.base_url, OUTAGE_SECONDS)
        new = await asyncio.to_thread(shop.cluster.promote)
        promoted = time.monotonic()
        await until(
            lambda: load.first_checkout_after(promoted) is not None,
            RECOVERY_BOUND_SECONDS,
            "a checkout after the promotion",
        )
        after = len(load.placed)
        await until(lambda: len(load.placed) >= after + ORDERS_EACH_SIDE, 60, "orders after")
    finally:
        stop.set()
        await asyncio.wait_for(running, 4 * REQUEST_TIMEOUT_SECONDS)

    # The fault happened: the old primary's postmaster is gone, the promoted one takes writes.
    assert old_pid is not None and shop.cluster.postmaster_pid(old) is None
    assert new != old
    recovery = await asyncio.to_thread(
        shop.cluster.psql, shop.primary_dsn(), "SELECT pg_is_in_recovery()"
    )
    assert recovery == "f"
    during = [a for a in load.answers if a.sent >= killed]
    assert any(a.status == 503 for a in during), "no client met the switch"
    # While the replica serves browsing alone, the process stays ready (degraded: no primary), so
    # a load balancer following /readyz keeps it and shoppers keep browsing.
    serving = [body for status, body in readiness if status == 200]
    assert serving and all("primary" in body["degraded"] for body in serving), readiness

    # Every answer was 2xx or 503 with Retry-After, within the client's bound.
    bad = [a for a in load.answers if not a.acceptable]
    assert not bad, bad[:5]
    # The same processes found the new primary by themselves.
    assert shop.alive() == {"web": True, "worker": True, "relay": True}

    # No order a client was told about is lost; every order gets its side effects.
    numbers = [p.number for p in load.placed]
    ids = await shop.order_ids(numbers)
    assert sorted(ids) == sorted(numbers)
    assert set(placed_before) <= set(ids)
    every_order = await shop.all_order_ids()
    await wait_until_paid(shop.primary_dsn(), smtp, every_order, timeout=120)
    effects_done = time.monotonic()
    await assert_each_paid_and_told_once(shop.primary_dsn(), smtp, every_order)

    first = load.first_checkout_after(promoted)
    assert first is not None
    unavailable = [a for a in during if a.status == 503]
    outage = [a for a in load.answers if killed <= a.sent < promoted and a.path == BROWSE]
    relay = shop.processes["relay"]
    print(
        f"\norders={len(every_order)} (before the crash {len(placed_before)})"
        f" 503s={len(unavailable)} slowest answer={max(a.seconds for a in load.answers):.2f} s"
        f"\nkill->promote={promoted - killed:.2f} s"
        f" promote->first checkout={first - promoted:.2f} s"
        f" kill->first checkout={first - killed:.2f} s"
        f" kill->all side effects={effects_done - killed:.1f} s"
        f"\nproduct reads between kill and promotion: {len(outage)},"
        f" answered 200: {sum(a.status == 200 for a in outage)}"
        f"\nrelay: {len(list(relay.events('outbox.publish_failed')))} failed passes logged,"
        f" resumed={len(list(relay.events('outbox.publish_resumed')))}"
    )
