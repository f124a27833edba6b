"""The shop's real process tree for a soak run, on real services of the run's own.

Services: a PostgreSQL primary with a streaming replica (tests/support/pgcluster.py, own ports),
a redis-server of the run's own (no persistence; the injector stops and starts it), RabbitMQ in a
vhost of the run's own reached through a TCP proxy in this process (the injector cuts it), and a
real SMTP server in this process (the injector makes it refuse).

The shop runs on "machines" (Machine): each a set of web, worker and relay processes with its own
settings, as a host of its own would have them: HOST_NAME (what /ops/workers and every log line
show), DATA_DIR, METRICS_DIR, its worker's and relay's metrics ports, its worker processes and
threads. They share what machines share in production: the database, Redis, the broker, SMTP,
and MEDIA_DIR (the shared storage uploads go to). Each process runs in its own process group, its
JSON log in the run directory as <machine>-<process>.log; its name, "machine-a/worker-0", says
which machine it is on. By default two machines, each with a web, a worker and a relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import dramatiq

from actors.broker import build_broker
from configs.settings import Settings
from storage.database import create_pool
from tests.support.isolation import IsolationError, Vhost, create_vhost, new_run_id
from tests.support.orders import stocked_product
from tests.support.pgcluster import PgCluster, PgClusterError, free_ports
from tests.support.processes import environment
from tests.support.smtp import SmtpServer
from tests.support.tcp_proxy import TcpProxy
from web.cli.services import redis_server_path

BROKER_BASE_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
DATABASE = "shop"
STAFF_PASSWORD = "soak-staff-" + "s3cret-" * 3
OPERATOR_EMAIL = "operator@soak.example.com"  # role ops, the same password: tests/soak/operator.py
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
READY_MARKS = {"worker": "ready for action", "relay": "relay.started"}
# One web process per web (the supervisor would start one per CPU): the soak counts processes.
ONE_PROCESS = ("--processes", "1")


class TreeError(RuntimeError):
    """A service or process of the tree did not start; the message says which and why."""


class ShopProcess:
    """One shop process (`python -m web.cli ...`) in its own process group, output in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.kills = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: a kill reaches its children
            )
        self.starts += 1

    async def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no cleanup, as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.kills += 1

    async def stop(self) -> str | None:
        """SIGTERM the process (its parent only: Dramatiq's parent passes it on, and a second
        signal would make a worker kill itself mid-shutdown), SIGKILL the group after
        STOP_TIMEOUT_SECONDS. Returns what went wrong, if anything."""
        if self.process is None:
            return None
        problem = None
        if self.process.returncode is None:
            began = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
                problem = f"{self.name} did not stop within {STOP_TIMEOUT_SECONDS:.0f} s of SIGTERM"
            else:
                if self.process.returncode not in (0, -signal.SIGTERM):
                    problem = f"{self.name} exited {self.process.returncode} on SIGTERM"
                elif time.monotonic() - began > STOP_TIMEOUT_SECONDS / 2:
                    problem = f"{self.name} took {time.monotonic() - began:.0f} s to stop"
        # Children of a killed parent (a Dramatiq fork) may outlive it: the group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if problem is not None:
            self.note(problem)
        return problem

    def note(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(json.dumps({"event": "soak.note", "process": self.name, "text": text}) + "\n")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def events(self) -> Iterator[dict[str, Any]]:
        """The JSON lines of the process's log."""
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    yield json.loads(line)


class RedisServer:
    """A redis-server of the run's own on a fixed port (no persistence); stop and start it."""

    def __init__(self, directory: Path, port: int) -> None:
        self.binary = shutil.which("redis-server") or redis_server_path()
        self.directory = directory
        self.port = port
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        argv = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while not await self._pong():
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise TreeError(f"redis-server did not start on port {self.port}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGKILL)  # no persistence: nothing to save
        await self.process.wait()

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
        except (TimeoutError, OSError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass
class HotProduct:
    """A product with little stock that many users want (where stock is fought over)."""

    product_id: int
    slug: str
    variants: dict[str, int]  # sku -> variant id


@dataclass(frozen=True)
class MachineSpec:
    """What runs on one machine: its name (its HOST_NAME) and how many of each process."""

    name: str
    webs: int = 1
    workers: int = 1
    relays: int = 1
    worker_processes: int = 1  # `aioshop worker --processes`
    worker_threads: int | None = None  # None: TreeOptions.worker_threads


DEFAULT_MACHINES = (MachineSpec("machine-a"), MachineSpec("machine-b"))


@dataclass
class Machine:
    """One machine's processes and the settings they share (and no other machine has)."""

    spec: MachineSpec
    settings: Settings
    web_ports: list[int]
    webs: list[ShopProcess] = field(default_factory=list)
    workers: list[ShopProcess] = field(default_factory=list)
    relays: list[ShopProcess] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def processes(self) -> list[ShopProcess]:
        return [*self.webs, *self.workers, *self.relays]

    @property
    def alive(self) -> bool:
        """Every process of the machine runs."""
        return all(p.alive for p in self.processes)


@dataclass
class TreeOptions:
    seed: int
    products: int = 200  # the generated catalog (`aioshop seed --products N --seed S`)
    hot_products: int = 6
    staff: int = 1
    heartbeat_seconds: float = 5.0  # HEARTBEAT_INTERVAL_SECONDS (a worker is red after 3 of them)
    pool_size: int = 4
    unpaid_order_minutes: int = 1
    worker_threads: int = 4
    machines: tuple[MachineSpec, ...] = DEFAULT_MACHINES


@dataclass
class Tree:
    """Everything a run starts; `await tree.start()`, then `await tree.close()` (always)."""

    options: TreeOptions
    run_dir: Path
    run_id: str = field(default_factory=new_run_id)
    cluster: PgCluster | None = None
    redis: RedisServer | None = None
    vhost: Vhost | None = None
    proxy: TcpProxy | None = None
    smtp: SmtpServer | None = None
    settings: Settings | None = None
    env: dict[str, str] = field(default_factory=dict)
    pool: asyncpg.Pool | None = None
    broker: dramatiq.Broker | None = None  # straight to the vhost, not through the proxy
    machines: list[Machine] = field(default_factory=list)
    hot: list[HotProduct] = field(default_factory=list)
    staff_emails: list[str] = field(default_factory=list)
    _began: float = 0.0

    @property
    def dsn(self) -> str:
        assert self.cluster is not None
        return self.cluster.primary_dsn(DATABASE)

    @property
    def webs(self) -> list[ShopProcess]:
        return [p for m in self.machines for p in m.webs]

    @property
    def workers(self) -> list[ShopProcess]:
        return [p for m in self.machines for p in m.workers]

    @property
    def relays(self) -> list[ShopProcess]:
        return [p for m in self.machines for p in m.relays]

    @property
    def web_ports(self) -> list[int]:
        return [port for m in self.machines for port in m.web_ports]

    @property
    def processes(self) -> list[ShopProcess]:
        return [p for m in self.machines for p in m.processes]

    def progress(self, text: str) -> None:
        """One line on stderr: start-up takes a while, and a hang should say where it is."""
        print(f"soak: {time.monotonic() - self._began:5.1f} s {text}", file=sys.stderr, flush=True)

    async def start(self) -> None:
        """Start the services, prepare the database, start the processes; raises TreeError."""
        try:
            await self._start()
        except (PgClusterError, IsolationError, OSError, asyncpg.PostgresError) as exc:
            raise TreeError(f"{type(exc).__name__}: {exc}") from exc

    async def _start(self) -> None:
        self._began = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cluster = PgCluster()
        self.smtp = SmtpServer()
        self.smtp.start()
        [redis_port] = free_ports(1)
        self.redis = RedisServer(self.run_dir, redis_port)
        await asyncio.gather(
            asyncio.to_thread(self.cluster.start), self.redis.start(), self._broker_vhost()
        )
        assert self.vhost is not None and self.proxy is not None
        self.progress("services up (PostgreSQL pair, Redis, RabbitMQ vhost, SMTP)")
        self.settings = Settings(
            database_url=self.cluster.primary_dsn(DATABASE),
            replica_database_url=self.cluster.replica_dsn(DATABASE),
            redis_url=self.redis.url,
            broker_url=self.proxy.url_through(self.vhost.url),
            smtp_url=self.smtp.url,
            secret_key=secrets.token_urlsafe(48),
            data_dir=self.run_dir / "data",  # the CLI's (migrate, seed): no machine's
            media_dir=self.run_dir / "media",  # shared by every machine, as production's storage
            trust_forwarded_headers=True,  # the users send X-Forwarded-For, as NGINX would
            database_pool_size=self.options.pool_size,
            relay_poll_interval_seconds=0.5,
            unpaid_order_minutes=self.options.unpaid_order_minutes,
            heartbeat_interval_seconds=self.options.heartbeat_seconds,
            log_format="json",
        )
        self.env = environment(self.settings)
        self.machines = [self._machine(spec) for spec in self.options.machines]
        await self._create_database()
        self.progress("database migrated")
        self.pool = await create_pool(self.dsn, 3)
        # The processes boot while the catalog is seeded: nobody asks them anything before.
        await asyncio.gather(self._start_processes(), self._seed())
        self.progress("catalog seeded; web, worker and relay processes ready")
        direct = Settings.model_validate(
            {**self.settings.model_dump(), "broker_url": self.vhost.url}
        )
        self.broker = await asyncio.to_thread(build_broker, direct)

    async def _broker_vhost(self) -> None:
        self.vhost = await asyncio.to_thread(create_vhost, BROKER_BASE_URL, f"soak-{self.run_id}")
        self.proxy = TcpProxy.of(self.vhost.url, 5672)
        await self.proxy.start()

    async def _create_database(self) -> None:
        assert self.cluster is not None
        conn = await asyncpg.connect(self.cluster.primary_dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()
        await self.cli("migrate")

    async def _seed(self) -> None:
        seed = ["--products", str(self.options.products), "--seed", str(self.options.seed)]
        await self.cli("seed", *seed)
        self.staff_emails = [f"staff{i}@soak.example.com" for i in range(self.options.staff)]
        await asyncio.gather(
            *(
                self.cli("createadmin", "--email", email, "--name", f"Staff {i}", "--role", "staff")
                for i, email in enumerate(self.staff_emails)
            ),
            self.cli(
                "createadmin", "--email", OPERATOR_EMAIL, "--name", "Operator", "--role", "ops"
            ),
        )
        rng = random.Random(f"{self.options.seed}-hot")
        for i in range(self.options.hot_products):
            slug = f"soak-hot-{i}"
            stocks = {f"SOAK-HOT-{i}-{v}": rng.randint(8, 30) for v in range(rng.choice((1, 2)))}
            variants = await stocked_product(self.dsn, slug, stocks, price=rng.randint(5, 60) * 100)
            product_id = await self._product_id(slug)
            self.hot.append(HotProduct(product_id, slug, variants))

    async def _product_id(self, slug: str) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval("SELECT id FROM products WHERE slug = $1", slug))
        finally:
            await conn.close()

    async def cli(self, *arguments: str) -> str:
        """Run `python -m web.cli <arguments>` with the tree's environment; its output."""
        env = {**self.env, "AIOSHOP_ADMIN_PASSWORD": STAFF_PASSWORD}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "web.cli",
            *arguments,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise TreeError(f"aioshop {' '.join(arguments)} exited {process.returncode}:\n{text}")
        return text

    def _machine(self, spec: MachineSpec) -> Machine:
        """A machine's settings (its own name, directories and metrics ports; every service
        shared) and its processes, not started."""
        assert self.settings is not None
        home = self.run_dir / spec.name
        worker_port, relay_port, *web_ports = free_ports(2 + spec.webs)
        settings = Settings.model_validate(
            {
                **self.settings.model_dump(),
                "host_name": spec.name,
                "data_dir": home / "data",
                "metrics_dir": home / "metrics",
                "worker_metrics_port": worker_port,
                "relay_metrics_port": relay_port,
            }
        )
        machine = Machine(spec, settings, web_ports)
        env = environment(settings)

        def process(name: str, *arguments: str) -> ShopProcess:
            argv = [sys.executable, "-m", "web.cli", *arguments]
            log_path = self.run_dir / f"{spec.name}-{name}.log"
            return ShopProcess(f"{spec.name}/{name}", argv, env, log_path)

        machine.webs = [
            process(f"web-{i}", "web", "--host", "127.0.0.1", "--port", str(port), *ONE_PROCESS)
            for i, port in enumerate(web_ports)
        ]
        threads = str(spec.worker_threads or self.options.worker_threads)
        workers = ["worker", "--processes", str(spec.worker_processes), "--threads", threads]
        machine.workers = [process(f"worker-{i}", *workers) for i in range(spec.workers)]
        machine.relays = [process(f"relay-{i}", "relay") for i in range(spec.relays)]
        return machine

    async def _start_processes(self) -> None:
        await asyncio.gather(*(self.start_machine(m) for m in self.machines))

    async def start_machine(self, machine: Machine) -> None:
        """Start every process of `machine` and wait until each is ready; raises TreeError."""
        for process in machine.processes:
            await process.start()
        await asyncio.gather(
            *(self.web_ready(port) for port in machine.web_ports),
            *(self.ready(p, READY_MARKS["worker"]) for p in machine.workers),
            *(self.ready(p, READY_MARKS["relay"]) for p in machine.relays),
        )

    async def web_ready(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with aiohttp.ClientSession() as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with session.get(
                        f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise TreeError(f"the web process on port {port} never answered /healthz")
                await asyncio.sleep(0.2)

    async def ready(
        self, process: ShopProcess, mark: str, timeout: float = START_TIMEOUT_SECONDS
    ) -> None:
        """Wait until the process's log shows `mark` (since its latest start)."""
        deadline = time.monotonic() + timeout
        while process.log_text().count(mark) < process.starts:
            if not process.alive:
                tail = "\n".join(process.log_text().splitlines()[-20:])
                raise TreeError(f"{process.name} exited at start-up:\n{tail}")
            if time.monotonic() > deadline:
                raise TreeError(f"{process.name} did not log {mark!r} within {timeout:.0f} s")
            await asyncio.sleep(0.2)

    async def close(self) -> list[str]:
        """Stop everything that was started, whatever failed before; what went wrong stopping
        the shop's processes. Never raises."""
        stopped = await asyncio.gather(*(p.stop() for p in self.processes), return_exceptions=True)
        problems = [str(p) for p in stopped if p is not None]
        steps: list[Any] = []
        if self.pool is not None:
            steps.append(self.pool.close())
        if self.broker is not None:
            steps.append(asyncio.to_thread(self.broker.close))
        if self.proxy is not None:
            steps.append(self.proxy.stop())
        if self.redis is not None:
            steps.append(self.redis.stop())
        await asyncio.gather(*steps, return_exceptions=True)
        if self.smtp is not None:
            with contextlib.suppress(Exception):
                self.smtp.stop()
        if self.vhost is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.vhost.delete)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.cluster.stop)
        return problems
