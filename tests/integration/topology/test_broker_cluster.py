"""Orders survive the loss of RabbitMQ nodes: a three-node cluster of the test's own with quorum
queues, a real worker and a real relay given all three nodes in BROKER_URL, and orders placed
all the while the node they are connected to is killed, brought back, and another one stopped.

Each round finds the node that holds the relay's connection (rabbitmqctl list_connections: the
shop names its connections after the process), checks the worker is connected there too, stops
that node and places more orders; once they are paid, the relay and the worker must be connected
to a surviving node. At the end every order was paid and told exactly once, the outbox is empty,
no message is in a dead-letter queue and every queue is a quorum queue.

`make cluster` runs a longer form (CLUSTER_ROUNDS rounds of CLUSTER_ORDERS orders).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from configs.settings import Settings
from tests.support.orders import (
    assert_each_paid_and_told_once,
    place_orders_now,
    stocked_product,
    wait_until_paid,
)
from tests.support.processes import ShopProcess, Worker
from tests.support.rabbit_cluster import Node, RabbitCluster, available
from tests.support.smtp import SmtpServer

ROUNDS = int(os.environ.get("CLUSTER_ROUNDS", "2"))
ORDERS = int(os.environ.get("CLUSTER_ORDERS", "10"))  # at least, before and after each stop
PACE_SECONDS = 0.5  # between two groups of orders: a steady trickle, not a load test
# The Erlang VMs boot in tens of seconds on a busy machine, three of them at once.
pytestmark = pytest.mark.timeout(240 + 90 * ROUNDS)


@pytest.fixture
def cluster() -> Iterator[RabbitCluster]:
    reason = available()
    if reason is not None:  # fail, never skip: RabbitMQ's server is on every machine we test on
        pytest.fail(reason)
    with RabbitCluster(size=3) as started:  # killed and removed even when the test fails
        yield started


class Holders:
    """Which of the shop's processes hold connections on which node, by connection name."""

    def __init__(self, cluster: RabbitCluster, relay: ShopProcess, worker: ShopProcess) -> None:
        self.cluster, self.relay, self.worker = cluster, relay, worker

    def on(self, node: Node) -> set[str]:
        """ "relay" and/or "worker", as connected to `node` now."""
        found = set()
        for name in self.cluster.connection_names(node):
            pid = int(name.rpartition(" ")[2]) if name.startswith("aioshop pid ") else -1
            if pid == self.relay.pid:
                found.add("relay")
            elif pid > 0 and _group_of(pid) == self.worker.pid:
                found.add("worker")
        return found

    async def node_of_relay(self, among: list[Node], timeout: float = 60.0) -> Node:
        """The node holding both the relay's and the worker's connections."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for node in among:
                if await asyncio.to_thread(self.on, node) >= {"relay", "worker"}:
                    return node
            seen = {n.name: await asyncio.to_thread(self.on, n) for n in among}
            assert asyncio.get_running_loop().time() < deadline, f"not connected: {seen}"
            await asyncio.sleep(1.0)


class Traffic:
    """Orders placed in small groups, PACE_SECONDS apart, while `flowing()`."""

    def __init__(self, dsn: str, variant_id: int, group: int = 2) -> None:
        self.dsn, self.variant_id, self.group = dsn, variant_id, group
        self.placed: list[int] = []

    @property
    def count(self) -> int:
        return len(self.placed)

    @asynccontextmanager
    async def flowing(self) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(self._place(stop))
        try:
            yield
        finally:
            stop.set()
            await task  # a failed checkout fails the test here

    async def placed_at_least(self, count: int, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.count < count:
            assert asyncio.get_running_loop().time() < deadline, "the orders are not placed"
            await asyncio.sleep(0.1)

    async def _place(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.placed += await place_orders_now(self.dsn, self.variant_id, self.group)
            await asyncio.sleep(PACE_SECONDS)


def _group_of(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


async def test_orders_survive_losing_the_node_the_processes_use(
    cluster: RabbitCluster, settings_for, fresh_db: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    settings: Settings = settings_for(
        fresh_db,
        smtp_url=smtp.url,
        broker_url=cluster.broker_url,
        rabbitmq_queue_type="quorum",
    )
    skus = await stocked_product(fresh_db, "tee", {"TEE": 100_000}, price=2500)
    worker = Worker(settings, tmp_path / "worker.log")
    relay = ShopProcess.aioshop(settings, tmp_path / "relay.log", "relay")
    holders = Holders(cluster, relay, worker)
    placed: list[int] = []
    stopped: list[tuple[str, str, set[str]]] = []  # (node, how, who was connected there)
    down: Node | None = None
    try:
        worker.start()
        relay.start()
        for round_number in range(ROUNDS):
            traffic = Traffic(fresh_db, skus["TEE"])
            async with traffic.flowing():
                await traffic.placed_at_least(ORDERS)
                up = [node for node in cluster.nodes if node is not down]
                target = await holders.node_of_relay(up)
                connected = await asyncio.to_thread(holders.on, target)
                # Even rounds crash the node; odd ones stop RabbitMQ on it the orderly way.
                if round_number % 2 == 0:
                    await asyncio.to_thread(cluster.kill, target)
                    how = "killed"
                else:
                    await asyncio.to_thread(cluster.stop_app, target)
                    how = "stopped"
                stopped.append((target.name, how, connected))
                if down is not None:  # the node of the previous round comes back meanwhile
                    await asyncio.to_thread(cluster.restart, down)
                down = target
                await traffic.placed_at_least(traffic.count + ORDERS)
            placed += traffic.placed
            await wait_until_paid(fresh_db, smtp, placed, timeout=150)
            survivors = [node for node in cluster.nodes if node is not down]
            moved = await holders.node_of_relay(survivors)
            assert moved is not target
        queues = await asyncio.to_thread(cluster.queues, survivors[0])
    finally:
        relay.stop()
        worker.stop()
    print(f"stopped: {stopped}; {len(placed)} orders")
    assert len(stopped) == ROUNDS
    # The relay and the worker were connected to every node that was stopped: the faults hit.
    assert all(who >= {"relay", "worker"} for _, _, who in stopped), stopped
    await assert_each_paid_and_told_once(fresh_db, smtp, placed)
    assert len(smtp.messages) == 2 * len(placed)
    # Every queue the shop declared is a quorum queue, and no message died on the way.
    assert {"orders", "orders.DQ", "orders.XQ", "email", "email.DQ", "email.XQ"} <= set(queues)
    assert {kind for kind, _ in queues.values()} == {"quorum"}, queues
    dead = {name: count for name, (_, count) in queues.items() if name.endswith(".XQ") and count}
    assert not dead, dead
    assert not list(relay.events("outbox.event_parked"))
