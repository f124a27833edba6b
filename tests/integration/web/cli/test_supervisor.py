"""`aioshop up` runs the whole shop on embedded services, stops cleanly and keeps its data."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import aiohttp
import pytest

from storage.demo import DEMO_SIZE
from tests.conftest import SERVICE_VARIABLES

READY_LINE = "aioshop is up: "
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 30
OPERATOR = "night-ops@example.com"
OPERATOR_PASSWORD = "a very long operator password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def processes_using(data_dir: Path) -> list[str]:
    """`pid: command` of every live process that belongs to the `up` on data_dir.

    That is: data_dir in its command line, its working directory in data_dir (Redis renames its
    command line; its --dir and PostgreSQL's PGDATA are its working directory), or DATA_DIR in
    its environment (web, worker, relay and the Dramatiq worker processes).
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone already, or not ours to read
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:  # gone, a zombie, or a kernel thread
            cwd = ""
        if (
            str(data_dir) in cmdline
            or cwd == str(data_dir)
            or cwd.startswith(f"{data_dir}/")
            or f"DATA_DIR={data_dir}".encode() in environ
        ):
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def kill_leftovers(data_dir: Path) -> None:
    for entry in processes_using(data_dir):
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)


class Up:
    """One `aioshop up` subprocess, in its own session so the test can signal its whole group."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.url = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in self.log().splitlines():
            with suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == name:
                    found.append(record)
        return found

    async def wait_ready(self) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    pytest.fail(f"`aioshop up` exited before it was up:\n{self.log()[-5000:]}")
                if line.startswith(READY_LINE):
                    self.url = line.removeprefix(READY_LINE).strip()
                    return

    async def stop(self, *, whole_group: bool, sig: signal.Signals = signal.SIGINT) -> int:
        """`sig` to `up` alone, or to its whole process group (a terminal's Ctrl-C, systemd)."""
        if whole_group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
            return await self.process.wait()


@asynccontextmanager
async def aioshop_up(data_dir: Path, port: int) -> AsyncIterator[Up]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env["LOG_FORMAT"] = "json"
    log_path = data_dir.parent / f"up-{port}.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("aioshop")),
            *("up", "--data-dir", str(data_dir), "--port", str(port)),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    up = Up(process, log_path)
    try:
        await up.wait_ready()
        yield up
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        # Before waiting: a leftover (embedded PostgreSQL, in its own session) can hold our
        # stdout pipe open, and the wait would then last until the test's timeout, hiding why
        # the test failed.
        kill_leftovers(data_dir)
        await process.wait()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def assert_shop_serves_demo_products(url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        status, html = await get(session, url)
        assert status == 200, html[:2000]
        assert html.count('href="/products/') >= 6, html[:2000]  # the newest products
        status, body = await get(session, url + "api/v1/search?q=shirt")
        assert status == 200 and '"total":0' not in body, body[:2000]
        status, body = await get(session, url + "readyz")
        assert status == 200, body


async def assert_pictures_get_renditions(url: str, timeout: float = 120) -> None:
    """The demo's pictures are there at once, and their srcset once the worker made renditions."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, html = await get(session, url)
            assert status == 200 and '<img src="/media/products/' in html, html[:2000]
            if 'srcset="/media/products/' in html:
                break
            assert asyncio.get_running_loop().time() < deadline, "no renditions in time"
            await asyncio.sleep(1)
        rendition = html.split('srcset="/media/', 1)[1].split(" ", 1)[0]
        async with session.get(url + "media/" + rendition) as response:
            assert response.status == 200 and response.content_type == "image/webp"


async def assert_an_operator_can_be_created_beside_it(data_dir: Path, url: str) -> None:
    """As the README says: `aioshop createadmin` in another terminal, with nothing set but the
    data dir, creates an account on the running shop's database (it reads DATA_DIR/up.env)."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(DATA_DIR=str(data_dir), AIOSHOP_ADMIN_PASSWORD=OPERATOR_PASSWORD)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("aioshop")),
        *("createadmin", "--email", OPERATOR, "--name", "Night operator", "--role", "ops"),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, (out + err).decode()
    assert b"aioshop up" in err  # it says whose services it used
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        login = {"email": OPERATOR, "password": OPERATOR_PASSWORD}
        async with session.post(url + "api/v1/auth/login", json=login) as response:
            assert response.status == 200, await response.text()


@pytest.mark.timeout(300)
async def test_up_runs_embedded_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    # Cold start on an empty data dir; SIGINT to `up` alone (as `kill -INT` does).
    port = free_port()
    async with aioshop_up(data_dir, port) as up:
        assert up.url == f"http://127.0.0.1:{port}/"
        await assert_shop_serves_demo_products(up.url)
        await assert_pictures_get_renditions(up.url)
        await assert_an_operator_can_be_created_beside_it(data_dir, up.url)
        assert await up.stop(whole_group=False) == 0, up.log()[-5000:]
        [prepared] = up.events("database.prepared")
        assert prepared["demo_products_created"] == DEMO_SIZE
    assert not (data_dir / "up.env").exists()  # gone with `up`: no command finds stale services
    assert processes_using(data_dir) == []
    # Beside the data of the stopped `up`, a command says so instead of listing variables.
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    stopped = subprocess.run(
        [str(Path(sys.executable).with_name("aioshop")), "createadmin"],
        env={**env, "DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert stopped.returncode == 2
    assert stopped.stderr.splitlines() == [
        f"aioshop: {data_dir / 'postgres'} holds the data of `aioshop up`, which is not running:"
        " start `aioshop up` first, or set DATABASE_URL"
    ]
    assert not up.events("process.killed"), "a child needed SIGKILL"
    secret = (data_dir / "secret_key").read_text()
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600

    # Warm start on the same data dir; SIGINT to the whole group (as a terminal's Ctrl-C does).
    port = free_port()
    async with aioshop_up(data_dir, port) as up:
        await assert_shop_serves_demo_products(up.url)
        assert await up.stop(whole_group=True) == 0, up.log()[-5000:]
        [prepared] = up.events("database.prepared")
        assert prepared["migrations_applied"] == 0  # the database survived the restart
        assert prepared["demo_products_created"] == 0
    assert processes_using(data_dir) == []
    assert not up.events("process.killed"), "a child needed SIGKILL"
    assert (data_dir / "secret_key").read_text() == secret
    assert (data_dir / "redis" / "appendonly.aof").stat().st_size > 0

    # SIGTERM to the whole group (systemd, a container runtime): the worker's forked process
    # gets it from the group, from Dramatiq's parent and from `up`, and still stops cleanly.
    port = free_port()
    async with aioshop_up(data_dir, port) as up:
        await assert_shop_serves_demo_products(up.url)
        assert await up.stop(whole_group=True, sig=signal.SIGTERM) == 0, up.log()[-5000:]
    assert processes_using(data_dir) == []
    assert not up.events("process.killed"), "a child needed SIGKILL"
    assert not up.events("process.stop_overdue"), "a process needed its deadline"
    assert "cannot schedule new futures after shutdown" not in up.log()
