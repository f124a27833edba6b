"""`aioshop web --processes N`: N web processes on one listening socket, kept running.

The model (docs/architecture.md, "Web processes"): this supervisor binds the socket once and
starts N children (`aioshop web` again, told the inherited socket's descriptor and a pipe to say
they are ready on); each child serves the app on that socket (web.cli.main.serve) and the kernel
hands each new connection to one of them. One socket rather than SO_REUSEPORT: with
SO_REUSEPORT each process has its own accept queue, and connections waiting in the queue of a
process that closes its socket (a stop, a reload) are reset; here the queue belongs to the socket,
which the supervisor keeps open, so a connection waits for whichever process accepts next.

Signals to the supervisor:
  SIGTERM, SIGINT  stop: every child gets SIGTERM, finishes its requests in progress and exits
                   within STOP_TIMEOUT_SECONDS (its own bound, actors/stopping.py); one still
                   running a moment after that is killed. Later signals change nothing.
  SIGHUP           reload: N new children start; once every one of them is ready (serving), the
                   old ones get SIGTERM and finish what they are doing. A new child that fails to
                   start cancels the reload (the old ones keep serving).
A child that dies outside a stop or a reload is replaced; its live gauges are dropped
(configs.metrics.mark_dead), its counters stay in METRICS_DIR/web for /metrics to sum. A child
that dies before the first start finished ends the supervisor with its status (a bad setting or
an unreachable service is not retried forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from configs.metrics import mark_dead

log = structlog.get_logger(__name__)

SOCKET_FD_ENV = "AIOSHOP_WEB_SOCKET_FD"  # set for a child: the listening socket it inherits
READY_FD_ENV = "AIOSHOP_WEB_READY_FD"  # set for a child: the pipe it writes b"1" to once serving
STOPPED_BY = (signal.SIGTERM, signal.SIGINT)
BACKLOG = 1024
KILL_MARGIN_SECONDS = 1.5  # past the children's own bound (their last log line, their exit)
RESTART_PAUSE_SECONDS = 1.0  # between replacements of a child that keeps dying
START_TIMEOUT_SECONDS = 60.0  # a child not serving by then has failed to start


def default_processes() -> int:
    """One web process per CPU this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def listen(host: str, port: int) -> socket.socket:
    """The one listening socket of every web process (inheritable: the children get it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def inherited_socket(environ: Mapping[str, str]) -> tuple[socket.socket, int] | None:
    """In a child: the listening socket and the ready pipe the supervisor gave it, else None."""
    fd = environ.get(SOCKET_FD_ENV)
    if fd is None:
        return None
    return socket.socket(fileno=int(fd)), int(environ[READY_FD_ENV])


def say_ready(ready_fd: int) -> None:
    """In a child: tell the supervisor it serves (once; closes the pipe)."""
    with contextlib.suppress(OSError):
        os.write(ready_fd, b"1")
    os.close(ready_fd)


@dataclass
class Child:
    """One web process: its exit and whether it said it serves."""

    process: asyncio.subprocess.Process
    ready: asyncio.Future[bool]
    exited: asyncio.Future[int] = field(init=False)

    def __post_init__(self) -> None:
        self.exited = asyncio.ensure_future(self.process.wait())

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)


class Supervisor:
    """Runs `count` children serving `sock` until a stop signal (module docstring)."""

    def __init__(
        self, sock: socket.socket, count: int, stop_timeout: float, child: Sequence[str]
    ) -> None:
        self.sock = sock
        self.child = list(child)
        self.count = count
        self.stop_timeout = stop_timeout
        self.children: list[Child] = []
        self.retiring: set[asyncio.Future[None]] = set()
        self.stop_signal: signal.Signals | None = None
        self.reloads = 0
        self.wake = asyncio.Event()

    async def run(self) -> int:
        """Serve until a stop signal: its exit status (0 unless a child stopped badly)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            started = await self._start_set()
            if started is None or isinstance(started, int):
                return await self._stop(failed=started)
            self.children = started
            log.info("web.processes_started", processes=self.count, pids=self._pids())
            return await self._watch()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
                # Stopping already: a later signal changes nothing, up to the very exit (an
                # ignored signal stays ignored while the interpreter finalises).
                signal.signal(sig, signal.SIG_IGN)

    def _on_signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGHUP:
            self.reloads += 1
        elif self.stop_signal is None:
            self.stop_signal = sig
            log.info("web.stopping", signal=sig.name, within_seconds=self.stop_timeout)
        else:
            log.info("process.signal_ignored", signal=sig.name, reason="stopping already")
        self.wake.set()

    def _pids(self) -> list[int]:
        return [child.pid for child in self.children]

    async def _spawn(self) -> Child:
        ready_read, ready_write = os.pipe()
        env = dict(os.environ)
        env[SOCKET_FD_ENV] = str(self.sock.fileno())
        env[READY_FD_ENV] = str(ready_write)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.child,
                env=env, stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(self.sock.fileno(), ready_write),
            )  # fmt: skip
        finally:
            os.close(ready_write)  # the child holds the only writing end: EOF when it dies
        return Child(process, asyncio.ensure_future(_read_ready(ready_read)))

    async def _start_set(self) -> list[Child] | int | None:
        """`count` new children, once all serve; a dead one's status (the others stopped), or
        None when a stop signal came first (the new ones stopped)."""
        new = [await self._spawn() for _ in range(self.count)]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            self.wake.clear()
            if all(c.ready.done() and c.ready.result() for c in new):
                return new
            died = next((c for c in new if c.exited.done() or _failed(c.ready)), None)
            if died is not None or self.stop_signal is not None or time.monotonic() > deadline:
                for child in new:
                    child.signal(signal.SIGTERM)
                await self._wait_out(new)
                if died is None:
                    return None if self.stop_signal is not None else 1
                return died.exited.result() or 1
            waiters = [self.wake.wait(), *(c.exited for c in new), *(c.ready for c in new)]
            await _first(waiters, deadline - time.monotonic())

    async def _watch(self) -> int:
        while True:
            self.wake.clear()
            if self.stop_signal is not None:
                return await self._stop()
            if self.reloads:
                self.reloads = 0
                await self._reload()
                continue
            for child in [c for c in self.children if c.exited.done()]:
                await self._replace(child)
            if self.stop_signal is not None or self.reloads:
                continue
            await _first([self.wake.wait(), *(c.exited for c in self.children)], None)

    async def _replace(self, child: Child) -> None:
        status = child.exited.result()
        mark_dead(child.pid)
        log.error("web.process_died", pid=child.pid, status=status)
        self.children.remove(child)
        await asyncio.sleep(RESTART_PAUSE_SECONDS)
        replacement = await self._spawn()
        self.children.append(replacement)
        log.info("web.process_replaced", pid=replacement.pid, replaced=child.pid)

    async def _reload(self) -> None:
        log.info("web.reloading", old=self._pids())
        new = await self._start_set()
        if not isinstance(new, list):
            log.error("web.reload_failed", status=new, kept=self._pids())
            return
        old, self.children = self.children, new
        for child in old:
            child.signal(signal.SIGTERM)
            retiring = asyncio.ensure_future(self._retire(child))
            self.retiring.add(retiring)
            retiring.add_done_callback(self.retiring.discard)
        log.info("web.reloaded", pids=self._pids(), retiring=[c.pid for c in old])

    async def _retire(self, child: Child) -> None:
        """An old child finishing its requests after a reload: killed at its own bound."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(child.exited), self.stop_timeout + KILL_MARGIN_SECONDS
            )
        if not child.exited.done():
            child.signal(signal.SIGKILL)
            await child.exited
        mark_dead(child.pid)

    async def _stop(self, failed: int | None = None) -> int:
        """Every child (old ones too) gets SIGTERM; wait for them, kill any left at the bound."""
        for child in self.children:
            child.signal(signal.SIGTERM)
        statuses = await self._wait_out(self.children)
        if self.retiring:
            await asyncio.wait(self.retiring)
        if failed is not None:  # the child said why, in the last line of stderr
            return failed
        # A repeated stop signal that lands while a child's interpreter is finalising (its
        # handlers back to the default) ends it by that signal: stopped as asked, all the same.
        statuses = [0 if -status in STOPPED_BY else status for status in statuses]
        log.info("web.stopped", statuses=statuses)
        return next((status for status in statuses if status != 0), 0)

    async def _wait_out(self, children: list[Child]) -> list[int]:
        if children:
            await asyncio.wait(
                [c.exited for c in children], timeout=self.stop_timeout + KILL_MARGIN_SECONDS
            )
        for child in children:
            if not child.exited.done():
                log.error("web.process_killed", pid=child.pid, reason="stop overdue")
                child.signal(signal.SIGKILL)
        statuses = [await child.exited for child in children]
        for child in children:
            mark_dead(child.pid)
        return statuses


async def supervise(
    host: str, port: int, count: int, stop_timeout: float, child: Sequence[str] | None = None
) -> int:
    """Run `count` web processes (`child`, the command of one; `aioshop web` by default) on
    host:port until a stop signal; the exit status."""
    if child is None:  # host and port only for its log lines: it serves the inherited socket
        child = [sys.executable, "-m", "web.cli", "web", "--host", host, "--port", str(port)]
    sock = listen(host, port)
    try:
        log.info("web.started", url=f"http://{host}:{port}/", processes=count)
        return await Supervisor(sock, count, stop_timeout, child).run()
    finally:
        sock.close()


async def _read_ready(fd: int) -> bool:
    """Whether the child wrote its ready byte before closing the pipe (it died otherwise)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        return await reader.read(1) == b"1"
    finally:
        transport.close()


def _failed(ready: asyncio.Future[bool]) -> bool:
    return ready.done() and not ready.result()


async def _first(waiters: Sequence[Awaitable[object]], timeout: float | None) -> None:
    """Until the first of `waiters` is done, or `timeout`; cancels the tasks made for it."""
    futures = [asyncio.ensure_future(waiter) for waiter in waiters]
    try:
        await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter, future in zip(waiters, futures, strict=True):
            if future is not waiter:
                future.cancel()
