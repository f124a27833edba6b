"""`aioshop web --processes N` (web/cli/processes.py): the supervisor and its web processes.

Real parts: the supervisor and its children as processes (the shop's app, plus the slow route of
tests/support/stuck.py where a request must be in progress), PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from configs.settings import Settings
from tests.support.pgcluster import free_ports
from tests.support.processes import ShopProcess
from tests.support.prometheus import scrape, value
from tests.support.waiting import eventually, get_loop

pytestmark = pytest.mark.timeout(120)

STOP_TIMEOUT = 10.0  # the smallest STOP_TIMEOUT_SECONDS allows
HEALTHZ = "aioshop_http_request_duration_seconds_count"


@pytest.fixture
def shop(settings_for, fresh_db: str, tmp_path: Path) -> Iterator[tuple[ShopProcess, str]]:
    """Two web processes of the shop's app (with the slow test route) under the supervisor."""
    settings: Settings = settings_for(fresh_db, stop_timeout_seconds=STOP_TIMEOUT)
    [port] = free_ports(1)
    argv = [sys.executable, "-m", "tests.support.stuck", "web", "--port", str(port)]
    process = ShopProcess([*argv, "--processes", "2"], settings, tmp_path / "web.log")
    process.start()
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def children(shop: ShopProcess) -> list[int]:
    """The pids of the web processes serving now, from the supervisor's log."""
    current: list[int] = []
    for line in shop.log().splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") in ("web.processes_started", "web.reloaded"):
            current = list(event["pids"])
        elif event.get("event") == "web.process_replaced":
            current = [pid for pid in current if pid != event["replaced"]] + [event["pid"]]
    return current


async def serving(shop: ShopProcess) -> bool:
    return await eventually(lambda: bool(list(shop.events("web.processes_started"))), timeout=60)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_sigterm_lets_a_slow_request_in_progress_finish(
    shop: tuple[ShopProcess, str],
) -> None:
    process, base = shop
    assert await serving(process), process.log()[-3000:]
    # An idle keep-alive connection: a request sent on it after the stop signal is answered
    # (and the connection closed after it), not reset (web.cli.main.drain).
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    assert (await exchange(reader, writer)).startswith(b"HTTP/1.1 200")
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(session.get(f"{base}/test/slow"))
        await asyncio.sleep(0.5)
        process.send(signal.SIGTERM, whole_group=False)  # the supervisor passes it on
        await asyncio.sleep(0.3)
        answer = await exchange(reader, writer)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b"\r\nConnection: close\r\n" in answer, answer
        response = await request
        assert response.status == 200 and await response.text() == "done"
    status, seconds = await process.exited(STOP_TIMEOUT + 3)
    assert status == 0 and seconds < STOP_TIMEOUT, process.log()[-3000:]
    assert not [pid for pid in children(process) if running(pid)]


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """GET /healthz on a kept-alive connection: the response head and body ("" on a closed or
    reset connection)."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        return repr(exc).encode()
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), 10)


async def test_sighup_replaces_every_process_without_losing_a_request(
    shop: tuple[ShopProcess, str],
) -> None:
    process, base = shop
    assert await serving(process), process.log()[-3000:]
    old = children(process)
    stop = asyncio.Event()
    loop = asyncio.create_task(get_loop(base, stop))
    await asyncio.sleep(0.3)
    process.send(signal.SIGHUP, whole_group=False)
    assert await eventually(lambda: bool(list(process.events("web.reloaded"))), timeout=60)
    assert await eventually(lambda: not any(running(pid) for pid in old))
    await asyncio.sleep(0.3)  # and the new ones answer too
    stop.set()
    answered, failures = await loop
    assert failures == [] and answered > 0
    new = children(process)
    assert len(new) == 2 and not set(new) & set(old)


async def healthz_ten_times(base: str) -> None:
    # A connection per request: whichever process accepts next answers it.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(10):
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200


async def test_killed_processes_are_replaced_and_metrics_count_every_process(
    shop: tuple[ShopProcess, str], tmp_path: Path
) -> None:
    process, base = shop
    assert await serving(process), process.log()[-3000:]
    await healthz_ten_times(base)
    killed = children(process)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)  # no shutdown: their metric files stay as they were
    assert await eventually(lambda: not set(children(process)) & set(killed), timeout=30), (
        process.log()[-3000:]
    )
    await healthz_ten_times(base)  # answered by the replacements
    # Every process that served the first ten is gone: /metrics still counts them all.
    text = await scrape(f"{base}/metrics")
    assert value(text, HEALTHZ, route="/healthz", status="200") == 20
    pids = {path.stem.rpartition("_")[2] for path in (tmp_path / "metrics" / "web").iterdir()}
    assert {str(pid) for pid in killed} <= pids
