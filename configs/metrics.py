"""Prometheus multiprocess mode, one directory per kind of process (web, worker, relay).

prometheus-client reads PROMETHEUS_MULTIPROC_DIR once, when it is first imported: with it, every
metric's value lives in a memory-mapped file per process in that directory, and an exposition
built with `MultiProcessCollector` sums (counters, histograms, `livesum` gauges) over every
process of the kind, those that died included (until the kind starts again). So the entry points
of `aioshop web|worker|relay` call `prepare(kind, settings.metrics_root)` before anything imports
prometheus_client (web/cli/main.py); a worker's forked processes inherit the variable.

Starting a kind clears its directory of the files of processes that are gone, keeping those of
live ones: a second `aioshop web` on the machine does not wipe the first one's counters. The files
of a process are named `<type>_<pid>.db` (prometheus-client's naming), so "gone" is "no process
with that pid here", which holds as long as METRICS_DIR is not shared between machines or
containers (it is per machine, like the pids). A process that exits calls `mark_dead()`, which
drops its `live*` gauges; its counters stay, so the totals of the kind do not fall when one
process stops.

Without `prepare` (pytest running the app in its own process, a script), nothing is set and the
metrics live in prometheus_client's default registry, as in any single process.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
KIND_ENV = "AIOSHOP_METRICS_KIND"  # which kind this process is, for the code that cares (workers)
Kind = Literal["web", "worker", "relay"]
KINDS: tuple[Kind, ...] = ("web", "worker", "relay")
# counter_123.db, histogram_123.db, gauge_livesum_123.db, gauge_all_123.db ...
_FILE = re.compile(r"^[a-z]+(?:_[a-z]+)?_(\d+)\.db$")


class MetricsSetupError(RuntimeError):
    """prepare() came after prometheus_client was imported: the mode can no longer change."""


def prepare(kind: Kind, root: Path) -> Path:
    """Put this process (and the children it starts) in multiprocess mode for `kind`, in
    `root/kind`, cleared of the files of processes that no longer run. Returns the directory.

    Call it before anything imports prometheus_client; raises MetricsSetupError otherwise (the
    mode would silently not apply and the kind's metrics would be one process's)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of process {kind!r}")
    if "prometheus_client" in sys.modules:
        raise MetricsSetupError(f"prometheus_client was imported before the {kind} metrics setup")
    directory = root / kind
    directory.mkdir(parents=True, exist_ok=True)
    clear_stale(directory)
    os.environ[MULTIPROC_ENV] = str(directory)
    os.environ[KIND_ENV] = kind
    return directory


def clear_stale(directory: Path, *, own_pid: int | None = None) -> list[Path]:
    """Remove the metric files of processes that no longer run (and of this process's pid: a
    file under our pid comes from an earlier process that had it). Returns what was removed."""
    own = os.getpid() if own_pid is None else own_pid
    removed = []
    for path in directory.iterdir():
        match = _FILE.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != own and _alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    # A zombie (killed, not reaped yet: in a container whose init does not reap, for long)
    # still answers signal 0; Linux tells it by its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def multiprocess_dir() -> Path | None:
    """The directory this process writes its metrics to, or None (the default registry)."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def process_kind() -> str | None:
    """The kind `prepare` set for this process (inherited by its children), or None."""
    return os.environ.get(KIND_ENV) or None


def mark_dead(pid: int | None = None) -> None:
    """A process of the kind has exited: drop its live gauges (its counters stay)."""
    directory = multiprocess_dir()
    if directory is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
        os.getpid() if pid is None else pid, str(directory)
    )
