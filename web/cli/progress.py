"""Progress of `seed --products` and `reindex`: rich's bar on a terminal, lines in logs.

The work reports `(step, done, total)` through a callback and knows nothing of the drawing. On a
terminal each step gets a rich.progress bar with its count, rate and time left; when stderr is
not a terminal (a pipe, a log file, CI) the same figures, computed by rich, go out as one plain
line per step every LINE_EVERY_SECONDS and when the step is done, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text

LINE_EVERY_SECONDS = 5.0
SPEED_WINDOW_SECONDS = 120.0


class RateColumn(ProgressColumn):
    """Items per second (rich's own rate column counts bytes)."""

    def render(self, task: Task) -> Text:
        return Text(rate(task), style="progress.data.speed")


class EtaColumn(ProgressColumn):
    """Time left while the step runs, the time it took once done."""

    def render(self, task: Task) -> Text:
        return Text(eta(task), style="progress.remaining")


def speed(task: Task) -> float | None:
    """Recent items per second (rich's estimate over its window); the average over the step
    once it is done, or while rich has no estimate yet (one batch reported so far)."""
    recent = None if task.finished else task.speed
    elapsed = task.finished_time if task.finished else task.elapsed
    if recent is None and elapsed and task.completed:
        return task.completed / elapsed
    return recent


def rate(task: Task) -> str:
    value = speed(task)
    if value is None:
        return "-/s"
    return f"{value:,.1f}/s" if value < 10 else f"{value:,.0f}/s"


def eta(task: Task) -> str:
    if task.finished:
        return f"took {task.finished_time or 0:,.1f} s"
    value = speed(task)
    if not value or task.total is None:
        return "ETA -"
    left = max(0.0, task.total - task.completed) / value
    return f"ETA {left:,.1f} s" if left < 10 else f"ETA {left:,.0f} s"


class Meter:
    """Draws the steps a callback reports; use as a context manager around the work."""

    def __init__(self, stream: TextIO | None = None, *, every: float = LINE_EVERY_SECONDS) -> None:
        self.stream = sys.stderr if stream is None else stream
        console = Console(file=self.stream)
        self.bar = console.is_interactive  # a terminal, and not TERM=dumb
        self.every = every
        self.progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            EtaColumn(),
            console=console,
            # Batches of a large seed take tens of seconds: rich's 30 s window would often
            # hold a single report, and no rate.
            speed_estimate_period=SPEED_WINDOW_SECONDS,
            # Lines printed meanwhile go above the bar, but only those bound for the terminal:
            # a redirected stdout keeps its own.
            redirect_stdout=sys.stdout.isatty(),
            disable=not self.bar,  # still counts: rate and ETA for the plain lines
        )
        self.tasks: dict[str, TaskID] = {}
        self.printed: dict[str, float] = {}

    def __enter__(self) -> Meter:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def __call__(self, step: str, done: int, total: int) -> None:
        """The callback: `done` of `total` items of `step` are finished."""
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=max(total, 1))
            self.printed[step] = float("-inf")  # its first report is printed
        task_id = self.tasks[step]
        self.progress.update(task_id, completed=done, total=max(total, 1))
        if self.bar:
            return
        task = next(each for each in self.progress.tasks if each.id == task_id)
        now = time.monotonic()
        if task.finished or now - self.printed[step] >= self.every:
            self.printed[step] = now
            print(
                f"{step:<9} {done:>9,}/{total:,} {task.percentage:>5.1f}% {rate(task)} {eta(task)}",
                file=self.stream,
                flush=True,
            )
