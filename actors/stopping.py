"""Bounded stops: after SIGTERM or SIGINT a process exits within STOP_TIMEOUT_SECONDS, whatever
its main thread is doing.

The first signal asks the process to stop gracefully (`on_stop`, called on this module's own
thread, so it must be thread-safe: `loop.call_soon_threadsafe`) and starts the deadline. Later
signals change nothing. A signal to a process group reaches every member and supervisors pass
signals on, so one stop often brings two or three; Dramatiq's CLI turns the second into a
SystemExit raised wherever the worker's main thread is, and inside `Worker.stop` that left the
process alive, consuming, with its executors shut ("cannot schedule new futures after shutdown").

At the deadline the process logs `process.stop_overdue` and exits at once with status 70. Nothing
is lost by it: a message it held unacknowledged goes back to its queue (RabbitMQ when the
connection drops; Redis when the worker's heartbeat expires), an outbox batch it had not marked is
published again (the inbox drops the copy), and an HTTP request still running gets a closed
connection.

The signal reaches the deadline's thread through `signal.set_wakeup_fd`, which the interpreter's
C-level handler writes, so the deadline holds while the main thread is stuck (a handler blocking
the event loop, a join that never returns). Only code that holds the GIL forever defeats it; the
supervisor's SIGKILL is for that.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

import structlog

log = structlog.get_logger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
OVERDUE_EXIT_STATUS = 70  # EX_SOFTWARE: stopped by the deadline, not by itself
CLOSE_RESERVE_SECONDS = 5.0  # of the bound, kept for closing pools and connections
LAST_WORDS_SECONDS = 1.0  # the overdue log line may wait this long for a blocked stderr


def grace_seconds(stop_timeout: float) -> float:
    """How long requests and messages in progress may run on once a stop begins."""
    return max(1.0, stop_timeout - CLOSE_RESERVE_SECONDS)


class StopDeadline:
    """Turns the first of `signals` into `on_stop(signal)`, and exits hard `seconds` later."""

    def __init__(
        self,
        seconds: float,
        on_stop: Callable[[signal.Signals], object],
        *,
        signals: Sequence[signal.Signals] = STOP_SIGNALS,
        on_overdue: Callable[[], None] | None = None,
    ) -> None:
        self.seconds = seconds  # read when the first signal comes: a supervisor may set it later
        self.on_stop = on_stop
        self.signals = tuple(signals)
        self.on_overdue = on_overdue

    def install(self) -> None:
        """Take over `signals` (from the main thread; once per process)."""
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        for sig in self.signals:
            # A Python-level handler makes the C-level one write the signal's number to the
            # wakeup fd; the handler itself does nothing (no KeyboardInterrupt, no SystemExit).
            signal.signal(sig, _ignore)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._keep = (reader, writer)  # the wakeup fd must stay open as long as the process
        # Python's finalisation puts a handler it installed back to the default, so a repeated
        # stop signal in the process's last moments (a supervisor or a group passing it on)
        # would end it by that signal, not with its status; an ignored signal stays ignored.
        atexit.register(self._ignore_from_now)
        threading.Thread(
            target=self._watch, args=(reader,), name="stop-deadline", daemon=True
        ).start()

    def _ignore_from_now(self) -> None:
        """At exit (atexit, main thread): later signals change nothing, up to the very end."""
        for sig in self.signals:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, signal.SIG_IGN)

    def _watch(self, reader: socket.socket) -> None:
        numbers = {int(sig) for sig in self.signals}
        deadline: float | None = None
        while True:
            reader.settimeout(None if deadline is None else max(0.01, deadline - time.monotonic()))
            try:
                data = reader.recv(64)
            except TimeoutError:
                self._overdue()
                return
            except OSError as exc:  # never expected; a watcher that gives up must say so
                log.error("process.stop_watch_failed", error=repr(exc))
                return
            for number in data:
                if number not in numbers:
                    continue
                sig = signal.Signals(number)
                if deadline is not None:
                    log.info("process.signal_ignored", signal=sig.name, reason="stopping already")
                    continue
                deadline = time.monotonic() + self.seconds
                log.info("process.stopping", signal=sig.name, within_seconds=self.seconds)
                try:
                    self.on_stop(sig)
                except Exception as exc:  # the deadline still stands
                    log.exception("process.stop_failed", error=repr(exc))

    def _overdue(self) -> None:
        # Logging takes the handler's lock, which a stuck main thread may hold (a write to a
        # full pipe): the last words get a moment on a thread of their own, then the exit.
        def last_words() -> None:
            log.error("process.stop_overdue", seconds=self.seconds, status=OVERDUE_EXIT_STATUS)
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()

        words = threading.Thread(target=last_words, name="stop-overdue", daemon=True)
        words.start()
        words.join(LAST_WORDS_SECONDS)
        if self.on_overdue is not None:
            with contextlib.suppress(Exception):
                self.on_overdue()
        os._exit(OVERDUE_EXIT_STATUS)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: the wakeup fd carries the signal to the deadline's thread."""
