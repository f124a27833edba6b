"""Heartbeats of workers and relays in the shop's real Redis, on both brokers: written by an
in-process worker and by real `aioshop` processes, red on /ops/workers within three intervals
(and a second) of a SIGKILL, grey after a clean stop, and kept going while Redis is down."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from prometheus_client import REGISTRY

from actors.broker import build_broker
from actors.ops import heartbeats
from actors.ops.heartbeats import HeartbeatThread, Process
from actors.registry import SPECS, handles
from actors.resources import Resources
from configs.settings import Settings
from domain.events import Event
from storage.redis_client import open_redis
from tests.support.browser import signed_in
from tests.support.processes import ShopProcess, Worker
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually
from web.app import create_app

QUEUE = "tests_heartbeat"
ACTOR = "tests_heartbeat.hold"
INTERVAL = 0.5  # in-process tests
PROCESS_INTERVAL = 1.0  # real processes: their start-up load must not make a live one look red

RELEASE = threading.Event()


async def operator(client: Any, fresh_db: str) -> None:
    """Signed in as an admin: the role that reaches /ops whichever roles the guard knows."""
    await signed_in(client, role="admin", fresh_db=fresh_db)


async def hold(res: Resources, item: str) -> None:
    """Stays in progress until the test releases it."""
    await asyncio.get_running_loop().run_in_executor(None, RELEASE.wait, 10)


class HoldPayload(TypedDict):
    item: str


@pytest.fixture(params=["rabbitmq", "redis"])
def broker_settings(
    request: pytest.FixtureRequest,
    fresh_db: str,
    settings_for: Callable[..., Settings],
    redis_url: str,
) -> Settings:
    """Settings with a short heartbeat, on each broker (Redis: the test's own Redis DB)."""
    broker = {"broker_url": redis_url} if request.param == "redis" else {}
    return settings_for(fresh_db, heartbeat_interval_seconds=INTERVAL, **broker)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    client = open_redis(redis_url, timeout=1)
    yield client
    await client.aclose()


@pytest.fixture
def hold_broker(broker_settings: Settings) -> Iterator[dramatiq.Broker]:
    """A broker with the `hold` actor on its own queue (emptied), besides the shop's actors."""
    RELEASE.clear()
    handles(Event(ACTOR, QUEUE, HoldPayload, __name__), max_retries=0)(hold)
    broker = build_broker(broker_settings)
    try:
        if isinstance(broker, RabbitmqBroker):
            broker.declare_queue(QUEUE, ensure=True)
        broker.flush(QUEUE)
        yield broker
        broker.flush(QUEUE)
    finally:
        RELEASE.set()
        broker.close()
        SPECS.pop(ACTOR, None)


async def mine(client: Any, kind: str, pid: int | None = None) -> list[Process]:
    found = await heartbeats.processes(client)
    return [p for p in found if p.kind == kind and (pid is None or p.pid == pid)]


async def test_an_in_process_worker_beats_counts_its_messages_and_is_grey_once_stopped(
    hold_broker: dramatiq.Broker, redis_client: Any
) -> None:
    worker = dramatiq.Worker(hold_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        listed: list[Process] = []

        async def seen(predicate: Callable[[Process], bool]) -> bool:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                listed[:] = await mine(redis_client, "worker", os.getpid())
                if listed and predicate(listed[0]):
                    return True
                await asyncio.sleep(0.1)
            return False

        assert await seen(lambda p: p.status == "green"), listed
        process = listed[0]
        assert process.threads == 2 and QUEUE in process.queues and "orders" in process.queues
        assert not any(q.endswith((".DQ", ".XQ")) for q in process.queues)
        assert process.in_progress == 0 and process.processed == 0

        hold_broker.get_actor(ACTOR).send(item="one")
        assert await seen(lambda p: p.in_progress == 1), listed
        RELEASE.set()
        assert await seen(lambda p: p.in_progress == 0 and p.processed == 1), listed
    finally:
        worker.stop()
    [stopped] = await mine(redis_client, "worker", os.getpid())
    assert stopped.status == "grey" and stopped.reason.startswith("stopped")
    await asyncio.sleep(3 * INTERVAL + 0.5)  # long past the window: still grey, never red
    [stopped] = await mine(redis_client, "worker", os.getpid())
    assert stopped.status == "grey"


async def test_a_silent_process_turns_red_after_three_intervals(
    redis_url: str, redis_client: Any
) -> None:
    beat = HeartbeatThread(redis_url, kind="relay", interval=INTERVAL)
    beat.beat()  # one beat, then nothing: as if killed
    [fresh] = await mine(redis_client, "relay")
    assert fresh.status == "green" and fresh.reason.startswith("beat")
    later = fresh.last_beat + 3 * INTERVAL + 0.01
    [silent] = await heartbeats.processes(redis_client, now=later)
    assert silent.status == "red" and silent.reason == "silent for 2 s"
    [within] = await heartbeats.processes(redis_client, now=fresh.last_beat + 3 * INTERVAL)
    assert within.status == "green"


async def test_metric_families_count_alive_and_stale_processes_per_kind(
    redis_url: str, redis_client: Any
) -> None:
    alive = HeartbeatThread(redis_url, kind="worker", interval=60)
    silent = HeartbeatThread(redis_url, kind="worker", interval=INTERVAL)
    relay = HeartbeatThread(redis_url, kind="relay", interval=60)
    for thread in (alive, silent, relay):
        thread.beat()
    now = time.time() + 3 * INTERVAL + 1
    families = {f.name: f for f in await heartbeats.metric_families(redis_client, now=now)}
    values = {
        (family, sample.labels["kind"]): sample.value
        for family, f in families.items()
        for sample in f.samples
    }
    assert values == {
        ("aioshop_processes_alive", "worker"): 1,
        ("aioshop_processes_alive", "relay"): 1,
        ("aioshop_processes_stale", "worker"): 1,
        ("aioshop_processes_stale", "relay"): 0,
    }


async def test_the_heartbeat_survives_a_redis_outage_counts_it_and_resumes() -> None:
    with RedisServer() as server:
        client = open_redis(server.url, timeout=1)
        errors_before = (
            REGISTRY.get_sample_value("aioshop_heartbeat_errors_total", {"kind": "worker"}) or 0.0
        )
        beat = HeartbeatThread(server.url, kind="worker", interval=INTERVAL)
        try:
            server.stop()
            beat.start()
            assert await eventually(lambda: beat.failures >= 2, timeout=10)
            errors = REGISTRY.get_sample_value("aioshop_heartbeat_errors_total", {"kind": "worker"})
            assert errors is not None and errors >= errors_before + 2
            server.start()
            assert await eventually(lambda: beat.failures == 0, timeout=10)
            [process] = await mine(client, "worker", os.getpid())
            assert process.status == "green"
        finally:
            await asyncio.get_running_loop().run_in_executor(None, beat.stop)
            await client.aclose()


def process_settings(
    kind: str, fresh_db: str, settings_for: Callable[..., Settings], redis_url: str
) -> Settings:
    broker = {"broker_url": redis_url} if kind == "redis" else {}
    return settings_for(
        fresh_db, heartbeat_interval_seconds=PROCESS_INTERVAL, log_format="json", **broker
    )


def row_status(page: str, pid: int) -> str | None:
    """The status of the process `pid` on /ops/workers: its data-status and its words."""
    row = rf'<tr data-process="[^"]*:{pid}"[^>]*>\s*'
    match = re.search(row + r'<td class="[^"]*" data-status="(\w+)">([^<]*)</td>', page)
    return f"{match.group(1)}: {match.group(2)}" if match else None


@pytest.mark.parametrize("broker_kind", ["rabbitmq", "redis"])
async def test_a_killed_worker_process_turns_red_on_the_page_within_its_window(
    broker_kind: str,
    aiohttp_client: Any,
    fresh_db: str,
    settings_for: Callable[..., Settings],
    redis_url: str,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    settings = process_settings(broker_kind, fresh_db, settings_for, redis_url)
    client = await aiohttp_client(create_app(settings))
    worker = Worker(settings, tmp_path / "worker.log", threads=2)
    try:
        await operator(client, fresh_db)
        worker.start()
        found: list[Process] = []

        async def listed() -> bool:
            found[:] = [p for p in await mine(redis_client, "worker") if p.status == "green"]
            return bool(found)

        deadline = time.monotonic() + 60
        while not await listed():
            assert time.monotonic() < deadline, worker.log()
            await asyncio.sleep(0.2)
        [process] = found
        assert process.pid != os.getpid() and process.threads == 2
        page = await (await client.get("/ops/workers")).text()
        assert (row_status(page, process.pid) or "").startswith("green: beat"), page

        worker.kill()
        killed_at = time.monotonic()
        window = 3 * PROCESS_INTERVAL + 1
        status = None
        while time.monotonic() - killed_at <= window:
            status = row_status(await (await client.get("/ops/workers")).text(), process.pid)
            if status is not None and status.startswith("red"):
                break
            await asyncio.sleep(0.1)
        assert status is not None and status.startswith("red: silent for "), status
        overview = await (await client.get("/ops/")).text()
        assert 'data-component="Workers" data-status="red"' in overview
        assert f":{process.pid} silent for" in overview
    finally:
        worker.stop()
        await client.close()


@pytest.mark.parametrize("broker_kind", ["rabbitmq", "redis"])
async def test_worker_and_relay_processes_stopped_cleanly_are_grey(
    broker_kind: str,
    fresh_db: str,
    settings_for: Callable[..., Settings],
    redis_url: str,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    settings = process_settings(broker_kind, fresh_db, settings_for, redis_url)
    worker = Worker(settings, tmp_path / "worker.log", threads=1)
    relay = ShopProcess.aioshop(settings, tmp_path / "relay.log", "relay")
    try:
        worker.start()
        relay.start()
        for kind, process in (("worker", worker), ("relay", relay)):

            async def green(kind: str = kind) -> bool:
                return any(p.status == "green" for p in await mine(redis_client, kind))

            deadline = time.monotonic() + 60
            while not await green():
                assert time.monotonic() < deadline, process.log()
                await asyncio.sleep(0.2)
        [relay_beat] = await mine(redis_client, "relay")
        assert relay_beat.pid == relay.pid
        worker.stop()
        relay.stop()
        stopped = await heartbeats.processes(redis_client, now=time.time() + 10 * PROCESS_INTERVAL)
        assert {(p.kind, p.status) for p in stopped} == {("worker", "grey"), ("relay", "grey")}
    finally:
        worker.stop()
        relay.stop()


async def test_two_machines_with_one_pid_are_two_processes_by_their_host_names(
    redis_url: str, redis_client: Any
) -> None:
    """Pids are per machine: HOST_NAME tells apart two workers that happen to share one."""
    for host in ("machine-a", "machine-b"):
        HeartbeatThread(redis_url, kind="worker", interval=60, host=host).beat()
    found = await mine(redis_client, "worker", os.getpid())
    assert sorted(p.host for p in found) == ["machine-a", "machine-b"]
    assert all(p.status == "green" for p in found)
