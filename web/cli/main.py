"""The `aioshop` command: up, web, worker, relay, migrate, seed, reindex, createadmin, health.

Every subcommand builds Settings from the environment first, so a missing or malformed variable
stops it with one line naming the variable, and an unreachable service with one line naming it.
web, worker and relay stop within STOP_TIMEOUT_SECONDS of SIGTERM or SIGINT, sent to them or to
their whole process group, however often (actors/stopping.py).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.metadata
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import structlog

from actors.stopping import StopDeadline, grace_seconds
from configs.logging import configure_logging
from configs.metrics import Kind, MetricsSetupError, mark_dead, prepare
from configs.settings import Settings, SettingsError
from domain.events import EXPIRE_UNPAID, RECONCILE_OUTBOX
from web.cli.services import UNREACHABLE, describe_unreachable
from web.cli.usage import COMMANDS, command_epilog, overview, settings_class

if TYPE_CHECKING:
    from aiohttp import web

log = structlog.get_logger(__name__)

# After a stop signal: how long requests still arriving on open connections are answered
# (web.cli.main.drain), and how often it looks whether any connection is left.
DRAIN_SECONDS = 1.0
DRAIN_POLL_SECONDS = 0.02


def fail(message: str) -> NoReturn:
    """Stop with one line on stderr and exit status 2."""
    print(f"aioshop: {message}", file=sys.stderr)
    raise SystemExit(2)


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    """`asyncio.run(main)` on the event loop EVENT_LOOP names: uvloop for `auto` when it is
    installed (it measured faster: tests/bench/catalog_bench.py), asyncio's own otherwise."""
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        return runner.run(main)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's new_event_loop, or None (asyncio's default) for `asyncio` or without uvloop."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            fail("EVENT_LOOP=uvloop, but uvloop is not installed")
        return None
    return uvloop.new_event_loop


def load_settings(command: str) -> Settings:
    """Settings for `command` from the environment, or a one-line exit. It needs only the
    required settings it reads (web.cli.usage). With no DATABASE_URL, a running `aioshop up` in
    DATA_DIR lends its services (web.cli.services.services_of_up); one that is not running is
    named rather than the missing variables."""
    if "DATABASE_URL" not in os.environ:
        from web.cli.services import UP_ENV, services_of_up

        data_dir = Path(os.environ.get("DATA_DIR", "var"))
        lent = services_of_up(data_dir)
        if lent:
            for name, value in lent.items():
                os.environ.setdefault(name, value)
            print(
                f"aioshop: using the services of `aioshop up` ({data_dir / UP_ENV})",
                file=sys.stderr,
            )
        elif (data_dir / "postgres").is_dir():
            fail(
                f"{data_dir / 'postgres'} holds the data of `aioshop up`, which is not running:"
                " start `aioshop up` first, or set DATABASE_URL"
            )
    try:
        settings = settings_class(command).from_env()
    except SettingsError as exc:
        fail(f"bad settings: {exc}")
    configure_logging(settings.log_format, settings.log_level, host_name=settings.host_name)
    return settings


def setup_metrics(kind: Kind, settings: Settings) -> Path:
    """Multiprocess metrics for `kind` (configs/metrics.py): before prometheus_client loads."""
    try:
        directory = prepare(kind, settings.metrics_root)
    except (MetricsSetupError, OSError) as exc:
        fail(f"metrics: {exc}")
    log.info("metrics.prepared", kind=kind, directory=str(directory))
    return directory


def cmd_web(args: argparse.Namespace) -> None:
    """The supervisor of N web processes (web.cli.processes), or one of them (a child)."""
    from web.cli import processes

    settings = load_settings("web")
    inherited = processes.inherited_socket(os.environ)
    if inherited is None:
        count = args.processes or settings.web_processes or processes.default_processes()
        if args.processes is not None and args.processes < 1:
            fail("--processes must be at least 1")
        setup_metrics("web", settings)  # once: the children inherit it, and keep each other's
        status = asyncio.run(
            processes.supervise(args.host, args.port, count, settings.stop_timeout_seconds)
        )
        raise SystemExit(status)
    sock, ready_fd = inherited
    from web.app import create_app

    try:
        run_loop(
            serve(
                create_app(settings),
                args.host,
                args.port,
                settings.stop_timeout_seconds,
                sock=sock,
                on_ready=lambda: processes.say_ready(ready_fd),
            ),
            settings,
        )
    except UNREACHABLE as exc:
        fail(describe_unreachable(exc))
    finally:
        mark_dead()


async def serve(
    app: web.Application,
    host: str,
    port: int,
    stop_timeout: float,
    *,
    sock: socket.socket | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve `app` on host:port (or the listening `sock`) until SIGINT or SIGTERM, then stop
    within `stop_timeout` seconds; `on_ready` once it accepts connections.

    Not `web.run_app`: its second signal cancels the graceful shutdown half-way, and a blocked
    event loop never sees the first. Here requests in progress get `grace_seconds` to finish
    (aiohttp's shutdown timeout, then they are cancelled), cleanup_ctx closes the pools, and the
    StopDeadline ends the process at the bound whatever the loop is doing.
    """
    from aiohttp import web

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    StopDeadline(stop_timeout, lambda _: loop.call_soon_threadsafe(stop.set)).install()
    draining = False

    async def close_when_draining(_: web.Request, response: web.StreamResponse) -> None:
        if draining:  # the client is told, and reconnects to a process that accepts
            response.force_close()  # closed after this response...
            response.headers["Connection"] = "close"  # ...and said so (the head is built by now)

    app.on_response_prepare.append(close_when_draining)
    grace = grace_seconds(stop_timeout)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=grace)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port) if sock is None else web.SockSite(runner, sock)
        await site.start()
        log.info("web.serving", url=f"http://{host}:{port}/", pid=os.getpid())
        if on_ready is not None:
            on_ready()
        await stop.wait()
    finally:
        draining = True
        await drain(runner, min(DRAIN_SECONDS, grace / 2))
        await runner.cleanup()
    log.info("web.stopped")


async def drain(runner: web.AppRunner, seconds: float) -> None:
    """Stop accepting, then answer for up to `seconds` what still arrives on open connections
    (each answer with "Connection: close"), until none is left.

    Closing an idle keep-alive connection at once races with the client's next request on it: a
    request that arrives as the server closes is reset, and a connection accepted just before
    the listener closed may carry its first request a moment later. Either is answered here;
    after the window only connections idle all along are closed, and a client retrying on a new
    connection reaches a process that still accepts (the other web processes, after a reload).
    """
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    deadline = asyncio.get_running_loop().time() + seconds
    while server is not None and server.connections:
        if asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(DRAIN_POLL_SECONDS)


def cmd_migrate(args: argparse.Namespace) -> None:
    from storage.migrate import migrate

    settings = load_settings("migrate")
    try:
        applied = asyncio.run(migrate(str(settings.database_url)))
    except UNREACHABLE as exc:
        fail(describe_unreachable(exc))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


def cmd_seed(args: argparse.Namespace) -> None:
    from storage.cache import announce_change
    from storage.demo import seed_demo
    from storage.errors import Conflict
    from storage.seed import seed_catalog
    from web.cli.progress import Meter

    if args.products is None and args.seed is not None:
        fail("--seed needs --products")
    if args.products is not None and args.products < 1:
        fail("--products must be at least 1")
    settings = load_settings("seed")
    dsn = str(settings.database_url)
    try:
        if args.products is None:
            created = asyncio.run(seed_demo(dsn, settings.media_dir))
            print(f"seeded {created} demo product(s)")
        else:
            with Meter() as meter:
                report = asyncio.run(
                    seed_catalog(
                        dsn,
                        args.products,
                        seed=1 if args.seed is None else args.seed,
                        progress=meter,
                    )
                )
            for step in report.steps:
                print(f"{step.name:<9} {step.rows:>9} rows {step.seconds:>8.2f} s")
            totals = f"{report.products} products, {report.variants} variants"
            print(f"{'total':<9} {totals} {report.seconds:>8.2f} s")
        # The seed writes straight to the database: tell the catalog cache (and, with
        # Elasticsearch, whoever runs this that its index needs the new products).
        if not asyncio.run(announce_change(str(settings.redis_url), dsn)):
            print(
                "warning: Redis did not answer: pages cached before the seed stay until they"
                f" expire ({settings.catalog_cache_seconds} s)",
                file=sys.stderr,
            )
        if settings.elasticsearch_url is not None:
            print("Elasticsearch does not have the new products yet: run `aioshop reindex`.")
    except UNREACHABLE as exc:
        fail(describe_unreachable(exc))
    except Conflict as exc:
        fail(str(exc))


def cmd_reindex(args: argparse.Namespace) -> None:
    from elasticsearch import ApiError, TransportError
    from elasticsearch.helpers import BulkIndexError

    from search.reindex import Step, reindex
    from web.cli.progress import Meter

    if args.batch < 1:
        fail("--batch must be at least 1")
    settings = load_settings("reindex")

    def show(step: Step) -> None:
        print(f"{step.name:<9} {step.count:>9} {step.seconds:>8.2f} s  {step.detail}", flush=True)

    elastic = settings.elasticsearch_url
    try:
        with Meter() as meter:
            report = asyncio.run(
                reindex(
                    str(settings.database_url),
                    None if elastic is None else str(elastic),
                    batch=args.batch,
                    progress=show,
                    advance=meter,
                )
            )
    except UNREACHABLE as exc:
        fail(describe_unreachable(exc))
    except (ApiError, TransportError) as exc:
        fail(f"Elasticsearch failed: {exc}")
    except BulkIndexError as exc:
        # One line: how many were refused and why the first one was (errors: bulk items).
        first: dict[str, Any] = next(iter(exc.errors[0].values()), {}) if exc.errors else {}
        error = first.get("error") or {}
        reason = str(error.get("reason", error) if isinstance(error, dict) else error)
        reason = reason.splitlines()[0] if reason else "-"
        fail(f"Elasticsearch refused documents: {exc} First: id {first.get('_id')}: {reason}")
    print(f"{'total':<9} {'':>9} {report.seconds:>8.2f} s")


EXPIRE_UNPAID_EVERY_SECONDS = 60.0
RECONCILE_OUTBOX_EVERY_SECONDS = 60.0


def cmd_relay(args: argparse.Namespace) -> None:
    settings = load_settings("relay")
    setup_metrics("relay", settings)
    try:
        run_loop(_relay(settings), settings)
    except UNREACHABLE as exc:
        fail(describe_unreachable(exc))
    finally:
        mark_dead()


async def _relay(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The batch in progress is published and marked; one that outlives the bound is published
    # again by the next relay (same message ids: the inbox drops the copies). Taken over before
    # the slow imports below, so a signal during start-up is a stop like any other.
    StopDeadline(
        settings.stop_timeout_seconds, lambda _: loop.call_soon_threadsafe(stop.set)
    ).install()
    from actors.broker import build_broker
    from actors.ops import metrics
    from actors.ops.heartbeats import HeartbeatThread
    from actors.relay import Relay
    from storage.database import create_pool

    # A daemon thread: a start-up failure below ends the process, and the server with it.
    stop_metrics = metrics.serve(settings.metrics_host, settings.relay_metrics_port)
    broker = build_broker(settings)
    pool = await create_pool(
        str(settings.database_url), 2, acquire_timeout=settings.database_acquire_timeout_seconds
    )
    try:
        relay = Relay(
            pool,
            broker,
            batch_size=settings.relay_batch_size,
            bundle_size=settings.relay_bundle_size,
            linger=settings.relay_linger_seconds,
            poll_interval=settings.relay_poll_interval_seconds,
            ticks=[
                (EXPIRE_UNPAID.name, EXPIRE_UNPAID_EVERY_SECONDS),
                (RECONCILE_OUTBOX.name, RECONCILE_OUTBOX_EVERY_SECONDS),
            ],
            max_attempts=settings.outbox_max_attempts,
        )
        heartbeat = HeartbeatThread(
            str(settings.redis_url),
            kind="relay",
            interval=settings.heartbeat_interval_seconds,
            host=settings.host_name,
        )
        heartbeat.start()
        log.info("relay.started", broker=settings.broker_kind)
        try:
            await relay.run(stop)
        finally:
            await loop.run_in_executor(None, heartbeat.stop)  # grey on /ops/workers, not red
    finally:
        await pool.close()
        broker.close()
        if stop_metrics is not None:
            stop_metrics()
        log.info("relay.stopped")


def cmd_worker(args: argparse.Namespace) -> None:
    settings = load_settings("worker")  # fail here, in one line, not in every worker process
    # Every process of the worker (and Dramatiq's exposition fork) inherits the environment.
    directory = setup_metrics("worker", settings)
    from actors.ops.metrics import worker_environment

    os.environ.update(
        worker_environment(directory, settings.metrics_host, settings.worker_metrics_port)
    )
    # Messages in progress get the grace to finish; the rest of the bound is for requeueing the
    # prefetched ones and closing (actors.broker.BoundedStop ends the process at the bound).
    shutdown_ms = int(grace_seconds(settings.stop_timeout_seconds) * 1000)
    queues = worker_queues(args.queues or [])
    count, threads = worker_concurrency(settings, args.processes, args.threads)
    log.info("worker.starting", processes=count, threads=threads, queues=queues or "all")
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "actors.main:broker",
        "--processes",
        str(count),
        "--threads",
        str(threads),
        "--worker-shutdown-timeout",
        str(shutdown_ms),
    ]
    if queues:
        argv += ["--queues", *queues]
    os.execv(sys.executable, argv)


DEFAULT_WORKER_THREADS = 8


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def worker_concurrency(
    settings: Settings, processes_arg: int | None, threads_arg: int | None
) -> tuple[int, int]:
    """(processes, threads per process) of `aioshop worker`: the command's options, else
    WORKER_PROCESSES and WORKER_THREADS, else one process per CPU this process may run on (a
    process's actors share one event loop: one CPU) and DEFAULT_WORKER_THREADS threads each (a
    thread waits while its message waits on SMTP, the database or the payment gateway)."""
    from web.cli import processes

    count = processes_arg or settings.worker_processes or processes.default_processes()
    threads = threads_arg or settings.worker_threads or DEFAULT_WORKER_THREADS
    return count, threads


def worker_queues(given: Sequence[str]) -> list[str]:
    """The queues `--queues` names (spaces or commas between them), each checked against the
    shop's queues; exits with the list of them on an unknown one."""
    from domain.events import QUEUES

    names = [name for each in given for name in each.split(",") if name]
    unknown = [name for name in names if name not in QUEUES]
    if unknown:
        fail(f"no such queue: {', '.join(unknown)} (the queues: {', '.join(QUEUES)})")
    return list(dict.fromkeys(names))


def cmd_createadmin(args: argparse.Namespace) -> None:
    from auth.admins import admin_email, create_admin

    settings = load_settings("createadmin")
    try:  # before asking for a password: the address decides whether there will be an account
        email = admin_email(args.email or input("Email: "))
    except ValueError as exc:
        fail(str(exc))
    name = args.name or input("Name: ").strip() or email.split("@")[0]
    password = args.password or os.environ.get("AIOSHOP_ADMIN_PASSWORD")
    if password is None:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            fail("the passwords differ")
    try:
        outcome = asyncio.run(
            create_admin(
                str(settings.database_url),
                email=email,
                name=name,
                password=password,
                role=args.role,
            )
        )
    except UNREACHABLE as exc:
        fail(describe_unreachable(exc))
    except ValueError as exc:
        fail(str(exc))
    print(outcome)


def cmd_health(args: argparse.Namespace) -> None:
    """Exit 0 while a `args.kind` process of this host beats, else 1 (web.cli.health)."""
    from web.cli.health import check

    settings = load_settings("health")
    host = args.host or settings.host_name
    healthy, line = asyncio.run(check(str(settings.redis_url), args.kind, host))
    print(line, file=sys.stdout if healthy else sys.stderr)
    raise SystemExit(0 if healthy else 1)


def cmd_up(args: argparse.Namespace) -> None:
    from web.cli.supervisor import run_up

    raise SystemExit(run_up(args))


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written (the tables of web.cli.usage); room for `createadmin` in the list."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `aioshop` (compose.yml's commands are checked against it): each
    command's line, variables and examples come from web.cli.usage.COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="aioshop",
        description=__doc__.splitlines()[0],
        epilog=overview(),
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    handlers: dict[str, Callable[[argparse.Namespace], None]] = {
        "up": cmd_up,
        "web": cmd_web,
        "worker": cmd_worker,
        "relay": cmd_relay,
        "migrate": cmd_migrate,
        "seed": cmd_seed,
        "reindex": cmd_reindex,
        "createadmin": cmd_createadmin,
        "health": cmd_health,
    }
    commands = {}
    for name, usage in COMMANDS.items():
        commands[name] = sub.add_parser(
            name,
            help=usage.summary,
            description=usage.summary[0].upper() + usage.summary[1:] + ".",
            epilog=command_epilog(name),
            formatter_class=Formatter,
        )
        commands[name].set_defaults(handler=handlers[name])

    up = commands["up"]
    up.add_argument("--data-dir", default=None, help="where embedded data lives (default ./var)")
    up.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    up.add_argument("--port", type=int, default=8080, help="default %(default)s")

    web_cmd = commands["web"]
    web_cmd.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    web_cmd.add_argument("--port", type=int, default=8080, help="default %(default)s")
    web_cmd.add_argument(
        "--processes",
        type=int,
        default=None,
        help="web processes on the port (default WEB_PROCESSES, else one per CPU)",
    )

    worker = commands["worker"]
    worker.add_argument(
        "--processes",
        type=positive_int,
        default=None,
        help="worker processes (default WORKER_PROCESSES, else one per CPU)",
    )
    worker.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help=f"per process (default WORKER_THREADS, else {DEFAULT_WORKER_THREADS})",
    )
    worker.add_argument(
        "--queues",
        nargs="*",
        help="only these queues (e.g. payments,email_urgent: a worker for the urgent ones)",
    )

    seed = commands["seed"]
    seed.add_argument(
        "--products", type=int, help="generate N products with variants (bulk COPY; adds on rerun)"
    )
    seed.add_argument("--seed", type=int, help="random seed for --products (default 1)")

    reindex = commands["reindex"]
    reindex.add_argument("--batch", type=int, default=1000, help="products per batch")

    admin = commands["createadmin"]
    admin.add_argument("--email", help="asked for when missing")
    admin.add_argument("--name", help="asked for when missing")
    admin.add_argument(
        "--password", help="for scripts; prefer AIOSHOP_ADMIN_PASSWORD or the prompt"
    )
    admin.add_argument("--role", choices=("staff", "ops", "admin"), default="admin")

    health = commands["health"]
    health.add_argument("kind", choices=("worker", "relay"), help="the process kind to ask about")
    health.add_argument(
        "--host", default=None, help="whose heartbeat (default: HOST_NAME, this machine's name)"
    )
    return parser


def version() -> str:
    """The installed package's version (its metadata, not a constant to keep in step)."""
    try:
        return importlib.metadata.version("aioshop")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `aioshop` console script."""
    args = build_parser().parse_args(argv)
    args.handler(args)
