"""SIGTERM and SIGINT stop every process within STOP_TIMEOUT_SECONDS, and lose nothing.

Each way a process is told to stop: the signal to the process alone (`kill`), or to its whole
process group (systemd, container runtimes, a terminal's Ctrl-C), and the same again a moment
later while it stops (a second Ctrl-C, a supervisor passing the signal on). A worker's forked
process gets each group signal twice (from the group and from Dramatiq's parent process); a
second one inside `Worker.stop` used to leave it consuming with its executors shut down. Real
parts: the `aioshop` commands as processes, RabbitMQ, PostgreSQL, an SMTP server in this process.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import dramatiq
import pytest

from actors import dead_letters
from actors.broker import build_broker
from actors.registry import SPECS
from actors.stopping import OVERDUE_EXIT_STATUS
from configs.settings import Settings
from tests.support import stuck
from tests.support.orders import (
    assert_each_paid_and_told_once,
    count,
    place_orders_now,
    stocked_product,
    wait_until_paid,
)
from tests.support.processes import ShopProcess, Worker
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually, until

STOP_TIMEOUT = 10.0  # the bound under test: the smallest STOP_TIMEOUT_SECONDS allows
OVERDUE_SLACK = 3.0  # past the bound: the last log line (up to 1 s) and the exit itself
AGAIN_AFTER = 0.8  # seconds: the signal comes again if the process still runs by then
WAYS = [
    (signal.SIGTERM, False),
    (signal.SIGTERM, True),
    (signal.SIGINT, False),
    (signal.SIGINT, True),
]
SHUTDOWN_ERROR = "cannot schedule new futures after shutdown"
CONFIRMED = "SELECT count(*) FROM orders WHERE status = 'confirmed'"

pytestmark = pytest.mark.timeout(400)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def way(sig: signal.Signals, whole_group: bool) -> str:
    return f"{sig.name} to the {'whole group' if whole_group else 'process'}"


async def answers(url: str, timeout: float = 30.0) -> bool:
    """Whether `url` answers 200 within `timeout` seconds (the process is up)."""

    async def get() -> bool:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            try:
                async with session.get(url) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

    return await until(get, timeout, every=0.2)


# What each process logs once it has taken its stop signals over and is at work.
READY = {"relay": "relay.started", "worker": "Worker process is ready for action."}


async def started(process: ShopProcess, name: str, before: int = 0) -> bool:
    """Whether `process` logs that it is at work (more than `before` times) within 60 s."""
    return await eventually(lambda: len(list(process.events(READY[name]))) > before, timeout=60)


async def test_each_process_stops_within_the_bound_each_way_while_orders_flow(
    settings_for, fresh_db: str, smtp: SmtpServer, broker: dramatiq.Broker, tmp_path: Path
) -> None:
    settings: Settings = settings_for(
        fresh_db, smtp_url=smtp.url, stop_timeout_seconds=STOP_TIMEOUT
    )
    variant = (await stocked_product(fresh_db, "tee", {"TEE": 10_000}, price=2500))["TEE"]
    port = free_port()
    healthz = f"http://127.0.0.1:{port}/healthz"
    processes = {
        "relay": ShopProcess.aioshop(settings, tmp_path / "relay.log", "relay"),
        "worker": ShopProcess.aioshop(
            settings, tmp_path / "worker.log", "worker", "--processes", "1", "--threads", "4"
        ),
        "web": ShopProcess.aioshop(settings, tmp_path / "web.log", "web", "--port", str(port)),
    }
    placed: list[int] = []
    stops: list[str] = []
    try:
        for process in processes.values():
            process.start()
        assert await answers(healthz), "web did not start"
        for name in ("relay", "worker"):
            assert await started(processes[name], name), f"{name} did not start"
        for name, process in processes.items():
            for sig, whole_group in WAYS:
                # Orders are flowing (the relay publishing, the worker paying and emailing)
                # when the signal comes.
                before = await count(fresh_db, CONFIRMED)
                placed += await place_orders_now(fresh_db, variant, 15)
                deadline = asyncio.get_running_loop().time() + 60
                while await count(fresh_db, CONFIRMED) < before + 3:
                    assert asyncio.get_running_loop().time() < deadline, "no work is done"
                    await asyncio.sleep(0.05)
                process.send(sig, whole_group=whole_group)
                status, seconds = await process.exited(AGAIN_AFTER)
                if status is None:
                    process.send(sig, whole_group=whole_group)
                    status, seconds = await process.exited(STOP_TIMEOUT + OVERDUE_SLACK)
                    seconds += AGAIN_AFTER
                stops.append(f"{name} {way(sig, whole_group)}: {seconds:.1f} s")
                assert status is not None, f"{name} still runs after {way(sig, whole_group)}"
                assert status == 0, f"{name} exited {status} after {way(sig, whole_group)}"
                assert seconds < STOP_TIMEOUT
                # The next signal is for a running process, not one still importing its modules
                # (a signal before the process takes it over ends it the default way).
                ready = len(list(process.events(READY[name]))) if name != "web" else 0
                process.start()
                if name == "web":
                    assert await answers(healthz), "web did not start again"
                else:
                    assert await started(process, name, ready), f"{name} did not start again"
        await wait_until_paid(fresh_db, smtp, placed, timeout=120)
    finally:
        for process in processes.values():
            process.stop()
    print("\n".join(stops))
    await assert_each_paid_and_told_once(fresh_db, smtp, placed)
    for name, process in processes.items():
        log = process.log()
        assert SHUTDOWN_ERROR not in log, f"{name}: {SHUTDOWN_ERROR}"
        assert not list(process.events("process.stop_overdue")), f"{name} needed its deadline"
        assert len(list(process.events("process.stopping"))) >= len(WAYS)
    # The worker was still stopping when the signal came again (its forked process ignored it).
    assert list(processes["worker"].events("process.signal_ignored"))
    letters = await asyncio.to_thread(dead_letters.counts, broker)
    assert sum(letters.values()) == 0, letters


async def test_a_web_request_in_progress_is_finished_and_a_frozen_web_is_ended(
    settings_for, fresh_db: str, tmp_path: Path
) -> None:
    settings: Settings = settings_for(fresh_db, stop_timeout_seconds=STOP_TIMEOUT)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "tests.support.stuck", "web", "--port", str(port)]
    web = ShopProcess(argv, settings, tmp_path / "web.log")
    try:
        # A request in progress when SIGTERM comes is answered before the process exits.
        web.start()
        assert await answers(f"{base}/healthz"), "web did not start"
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(session.get(f"{base}/test/slow"))
            await asyncio.sleep(0.5)
            web.send(signal.SIGTERM, whole_group=False)
            response = await request
            assert response.status == 200 and await response.text() == "done"
        status, seconds = await web.exited(STOP_TIMEOUT + OVERDUE_SLACK)
        assert status == 0 and seconds < STOP_TIMEOUT

        # A handler blocks the event loop: the signal still ends the process at the bound.
        web.start()
        assert await answers(f"{base}/healthz"), "web did not start again"
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(session.get(f"{base}/test/freeze"))
            assert await eventually(lambda: bool(list(web.events("test.frozen"))))
            web.send(signal.SIGTERM, whole_group=True)
            status, seconds = await web.exited(STOP_TIMEOUT + OVERDUE_SLACK)
            if status is None:
                request.cancel()
            else:
                with pytest.raises(aiohttp.ClientError):
                    await request  # the connection closed with the process
    finally:
        web.stop()
    assert status == OVERDUE_EXIT_STATUS, web.log()[-3000:]
    assert seconds >= STOP_TIMEOUT - 0.5  # not earlier
    [overdue] = web.events("process.stop_overdue")
    assert overdue["seconds"] == STOP_TIMEOUT


@pytest.fixture
def stuck_broker(settings) -> Iterator[dramatiq.Broker]:  # type: ignore[no-untyped-def]
    """A broker with the freezing actor declared, its queue emptied."""
    stuck.declare_freeze()
    broker = build_broker(settings)
    try:
        broker.declare_queue(stuck.FREEZE_QUEUE, ensure=True)  # type: ignore[call-arg]
        broker.flush(stuck.FREEZE_QUEUE)
        yield broker
        broker.flush(stuck.FREEZE_QUEUE)
    finally:
        broker.close()
        SPECS.pop(stuck.FREEZE_ACTOR, None)


async def test_a_worker_with_a_frozen_message_is_ended_and_the_message_kept(
    settings_for, fresh_db: str, stuck_broker: dramatiq.Broker, tmp_path: Path
) -> None:
    # Run as `dramatiq ...` directly: Dramatiq's own shutdown timeout (10 minutes) applies, and
    # the bound must still hold.
    settings: Settings = settings_for(fresh_db, stop_timeout_seconds=STOP_TIMEOUT)
    worker = Worker(
        settings, tmp_path / "worker.log", threads=1, broker="tests.support.stuck:worker_broker"
    )
    try:
        worker.start()
        await asyncio.to_thread(stuck_broker.get_actor(stuck.FREEZE_ACTOR).send)
        assert await eventually(lambda: bool(list(worker.events("test.frozen"))), timeout=60)
        worker.send(signal.SIGTERM, whole_group=True)
        status, seconds = await worker.exited(STOP_TIMEOUT + OVERDUE_SLACK)
    finally:
        worker.stop()
    assert status == OVERDUE_EXIT_STATUS, worker.log()[-3000:]
    assert seconds >= STOP_TIMEOUT - 0.5
    assert list(worker.events("process.stop_overdue"))
    assert list(worker.events("process.signal_ignored")), "the parent's SIGTERM came too"
    # Never acknowledged: RabbitMQ put it back in its queue when the connection dropped.
    assert await eventually(
        lambda: stuck_broker.get_queue_message_counts(stuck.FREEZE_QUEUE)[0] == 1, timeout=10
    )
