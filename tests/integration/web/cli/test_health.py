"""`aioshop health worker|relay` against real heartbeats in the shop's Redis: alive while this
host's process beats, not alive without one, after a clean stop, for another host, or when
Redis does not answer; the command's exit status is Docker's health check answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from actors.ops.heartbeats import HeartbeatThread
from tests.support.cli import run_cli
from web.cli.health import check

INTERVAL = 0.5


@pytest.fixture
def relay_beating(redis_url: str) -> Iterator[HeartbeatThread]:
    """A relay's heartbeat of this host, written as `aioshop relay` writes it."""
    thread = HeartbeatThread(redis_url, kind="relay", interval=INTERVAL)
    thread.start()
    yield thread
    thread.stop()


async def test_a_beating_process_of_this_host_is_alive(
    redis_url: str, relay_beating: HeartbeatThread
) -> None:
    host = socket.gethostname()
    relay_beating.beat()  # one written now (the thread's first may still be on its way)
    answer = await check(redis_url, "relay", host)
    assert answer == (True, f"relay on {host}: alive (pid {relay_beating.pid})")
    # The relay's heartbeat says nothing of a worker, nor of another host's relay.
    assert await check(redis_url, "worker", host) == (False, f"worker on {host}: no heartbeat")
    assert await check(redis_url, "relay", "elsewhere") == (
        False,
        "relay on elsewhere: no heartbeat",
    )


async def test_a_cleanly_stopped_process_is_not_alive(redis_url: str) -> None:
    thread = HeartbeatThread(redis_url, kind="worker", interval=INTERVAL)
    thread.beat()
    assert (await check(redis_url, "worker", thread.host))[0]
    thread.stop()
    healthy, line = await check(redis_url, "worker", thread.host)
    assert not healthy
    assert line.startswith(f"worker on {thread.host}: stopped ")


async def test_redis_that_does_not_answer_is_not_alive() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    healthy, line = await check(f"redis://127.0.0.1:{port}/0", "worker", "any")
    assert not healthy
    assert "cannot read the heartbeats in Redis" in line


def test_the_command_exits_0_while_alive_and_1_otherwise(
    redis_url: str, relay_beating: HeartbeatThread
) -> None:
    relay_beating.beat()
    alive = run_cli("health", "relay", REDIS_URL=redis_url)
    assert alive.returncode == 0, alive.stderr
    assert alive.stdout.startswith(f"relay on {socket.gethostname()}: alive")
    missing = run_cli("health", "worker", REDIS_URL=redis_url)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"worker on {socket.gethostname()}: no heartbeat"
    other = run_cli("health", "relay", "--host", "shop-2", REDIS_URL=redis_url)
    assert (other.returncode, other.stderr.strip()) == (1, "relay on shop-2: no heartbeat")


def test_the_command_knows_only_workers_and_relays() -> None:
    refused = run_cli("health", "web", REDIS_URL="redis://127.0.0.1:6379/0")
    assert refused.returncode == 2
    assert "invalid choice" in refused.stderr
