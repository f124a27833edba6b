"""Shop processes with a stuck part, for the tests of bounded stops (actors/test_stopping.py).

`python -m tests.support.stuck web --port P [--processes N]`: the shop's app, served by the
`aioshop web` code (one process, or N under its supervisor, web/cli/processes.py), with two test
routes: `/test/slow` answers after SLOW_SECONDS (a request in progress at the signal),
`/test/freeze` blocks the event loop for good (a frozen process).

`dramatiq tests.support.stuck:worker_broker`: the shop's broker with one more actor,
`tests_stuck.freeze`, that blocks the worker's event loop for good (a message that never ends).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from typing import TYPE_CHECKING, TypedDict

import structlog
from aiohttp import web

from configs.logging import configure_logging
from configs.settings import Settings

if TYPE_CHECKING:  # imported late: the supervisor of `web --processes` sets metrics up first
    from actors.resources import Resources

SLOW_SECONDS = 2.0
FOREVER_SECONDS = 3600.0
FREEZE_QUEUE = "tests_stuck"
FREEZE_ACTOR = "tests_stuck.freeze"

log = structlog.get_logger(__name__)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(SLOW_SECONDS)
    return web.Response(text="done")


async def freeze(request: web.Request) -> web.Response:
    log.info("test.frozen")
    time.sleep(FOREVER_SECONDS)  # the event loop stops with it
    return web.Response(text="never")


class FreezePayload(TypedDict):
    pass


async def freeze_worker(res: Resources) -> None:
    log.info("test.frozen")
    time.sleep(FOREVER_SECONDS)  # the worker's event loop stops with it


def serve_web(argv: list[str]) -> None:
    from configs.metrics import mark_dead, prepare
    from web.cli import processes
    from web.cli.main import serve

    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["web"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    if args.processes is not None:  # the supervisor, its children this command without it
        prepare("web", settings.metrics_root)
        child = [sys.executable, "-m", "tests.support.stuck", "web", "--port", str(args.port)]
        raise SystemExit(
            asyncio.run(
                processes.supervise(
                    "127.0.0.1", args.port, args.processes, settings.stop_timeout_seconds, child
                )
            )
        )
    from web.app import create_app

    inherited = processes.inherited_socket(os.environ)
    app = create_app(settings)
    app.router.add_get("/test/slow", slow)
    app.router.add_get("/test/freeze", freeze)
    sock, on_ready = None, None
    if inherited is not None:
        sock, ready_fd = inherited
        on_ready = functools.partial(processes.say_ready, ready_fd)
    try:
        asyncio.run(
            serve(
                app,
                "127.0.0.1",
                args.port,
                settings.stop_timeout_seconds,
                sock=sock,
                on_ready=on_ready,
            )
        )
    finally:
        mark_dead()


def worker_broker() -> None:
    """The shop's broker plus the freezing actor, as Dramatiq's global broker: the CLI calls this
    in its worker process (`dramatiq tests.support.stuck:worker_broker`) and takes that one."""
    import dramatiq

    from actors.broker import build_broker

    declare_freeze()
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    dramatiq.set_broker(build_broker(settings))


def declare_freeze() -> None:
    """Declare the freezing actor (build the broker after this)."""
    from actors.registry import handles
    from domain.events import Event

    handles(Event(FREEZE_ACTOR, FREEZE_QUEUE, FreezePayload, __name__), max_retries=0)(
        freeze_worker
    )


if __name__ == "__main__":
    serve_web(sys.argv[1:])
