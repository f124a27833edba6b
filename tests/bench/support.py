"""What the benchmark scripts share: throwaway databases, servers on free ports, wrk."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from configs.settings import Settings

ADMIN_DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def dsn_for(database: str) -> str:
    return f"{ADMIN_DSN.rpartition('/')[0]}/{database}"


async def execute(dsn: str, statement: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def healthy(base_url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as probe, probe.get(base_url + "/healthz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


def clean_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any shop setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    return env | dict(settings)


def run_cli(env: Mapping[str, str], *argv: str) -> str:
    """Run `aioshop <argv>` to the end; its output, or SystemExit with it on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "web.cli", *argv], env=dict(env), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"aioshop {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


@asynccontextmanager
async def serving(argv: list[str], env: Mapping[str, str], log_path: Path) -> AsyncIterator[str]:
    """Run `python <argv>` (a server taking --port) on a free port until /healthz answers;
    yields its base URL and stops it afterwards."""
    async with served(argv, env, log_path) as server:
        yield server.url


@dataclass(frozen=True)
class Served:
    """A running server: its base URL and the id of the process started (a supervisor, for
    `aioshop web`, whose children are the web processes)."""

    url: str
    pid: int


# What PostgreSQL answers when max_connections are taken: on a shared server other work may hold
# them for a while, so a server refused that way is started again (STARTS times, PAUSE s apart).
NO_FREE_CONNECTION = "too many clients"
STARTS = 4
PAUSE = 10.0


@asynccontextmanager
async def served(
    argv: list[str], env: Mapping[str, str], log_path: Path, *, cpus: Collection[int] = ()
) -> AsyncIterator[Served]:
    """serving(), yielding the process id too (for process_memory); `cpus`: the only CPUs the
    server (and the processes it starts) may run on (all when empty)."""
    for attempt in range(1, STARTS + 1):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = await _start([*argv, "--port", str(port)], env, log_path, cpus)
        if await _ready(server, base_url):
            break
        await _stop(server)
        output = log_path.read_text()
        if attempt == STARTS or NO_FREE_CONNECTION not in output:
            raise RuntimeError(f"the server did not start: {output[-2000:]}")
        print(f"{log_path.stem}: PostgreSQL has no free connection; starting again in {PAUSE:g} s")
        await asyncio.sleep(PAUSE)
    try:
        yield Served(base_url, server.pid)
    finally:
        await _stop(server)


async def _start(
    argv: list[str], env: Mapping[str, str], log_path: Path, cpus: Collection[int] = ()
) -> asyncio.subprocess.Process:
    with log_path.open("wb") as log:  # a new session: Ctrl-C reaches only us; we stop it below
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            env=dict(env),
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=pinned(cpus),
        )


def pinned(cpus: Collection[int], nice: int | None = None) -> Callable[[], None] | None:
    """A child's preexec_fn that keeps it (and what it starts) on `cpus` (all when empty) at
    scheduling priority `nice` (unchanged when None); None when it has nothing to do."""
    if not cpus and nice is None:
        return None
    chosen = set(cpus)

    def set_up() -> None:
        if chosen:
            os.sched_setaffinity(0, chosen)
        if nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    return set_up


async def _ready(server: asyncio.subprocess.Process, base_url: str) -> bool:
    """Whether the server answers /healthz within 30 s (False as soon as it exits)."""
    deadline = time.monotonic() + 30
    while not await healthy(base_url):
        if server.returncode is not None or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def _stop(server: asyncio.subprocess.Process) -> None:
    if server.returncode is not None:
        return
    with suppress(ProcessLookupError):  # it exited meanwhile
        server.terminate()
    try:
        await asyncio.wait_for(server.wait(), 10)
    except TimeoutError:
        server.kill()
        await server.wait()


@dataclass(frozen=True)
class Memory:
    """Resident memory of a server's web processes, in MiB: now and the peak of its life."""

    processes: int
    rss_mib: float  # the largest process's, now
    peak_mib: float  # the largest process's high-water mark (VmHWM)
    total_mib: float  # all of them, now


def process_memory(pid: int) -> Memory:
    """The memory of `pid`'s children (the web processes of a supervisor), or of `pid` itself
    when it has none. Linux only (/proc): the benchmarks run on Debian."""
    children = _children(pid)
    figures = [_status_kib(child) for child in children or [pid]]
    rss = [now for now, _ in figures]
    return Memory(len(figures), max(rss) / 1024, max(p for _, p in figures) / 1024, sum(rss) / 1024)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _status_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@dataclass(frozen=True)
class Load:
    """What wrk measured for one row."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text}")
    return float(match.group(1)) * UNITS[match.group(2)]


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `make bench-catalog` installs it (Debian's wrk)")
    return found


def paths_lua(paths: list[str], headers: Mapping[str, str] | None = None) -> str:
    """wrk's Lua script requesting `paths` in turn (each thread from its own offset), each
    request with `headers`."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (
        "local paths = {\n"
        + ",\n".join(quoted(p) for p in paths)
        + "\n}\n"
        + "".join(f"wrk.headers[{quoted(k)}] = {quoted(v)}\n" for k, v in (headers or {}).items())
        + "local n = 0\n"
        "function setup(thread) thread:set('offset', math.random(#paths)) end\n"
        "function request()\n"
        "  n = n + 1\n"
        "  return wrk.format('GET', paths[((n + (offset or 0)) % #paths) + 1])\n"
        "end\n"
    )


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    paths: list[str] | None,
    workdir: Path,
    lua: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Load:
    """Load `url` with wrk (2 threads), cycling through `paths` when given (each request with
    `headers`), or running the Lua script `lua` (its text) instead."""
    argv = [wrk_path(), "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if lua is None and paths:
        lua = paths_lua(paths, headers)
    if lua is not None:
        script = workdir / f"script-{abs(hash(lua))}.lua"
        script.write_text(lua)
        argv += ["-s", str(script)]
    done = subprocess.run([*argv, url], capture_output=True, text=True, check=True)
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}\n{done.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(
        float(rate.group(1)),
        _ms(p50.group(1)),
        _ms(p99.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
    )
