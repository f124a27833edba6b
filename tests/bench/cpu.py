"""CPU time per process group, read from /proc: what a stretch of a benchmark cost each part of
the pipeline, independent of how loaded the shared machine was (Linux only).

A `CpuMeter` names groups of processes (a process and its descendants, every process with a
given command name, a list found by a callable such as PostgreSQL's backends of one database);
`snapshot()` reads each group's user + system seconds per process, and `spent(before, after)`
sums per group what the processes spent in between (a process that started in between counts
from zero; one that ended in between is not counted).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")

Snapshot = dict[str, dict[int, float]]


def cpu_seconds(pid: int) -> float | None:
    """User + system seconds of `pid` (all its threads), or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found, todo = [], [pid]
    while todo:
        each = todo.pop()
        found.append(each)
        try:
            for task in Path(f"/proc/{each}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def named(command: str) -> list[int]:
    """Every process whose command name (comm) is `command`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


class CpuMeter:
    """Groups of processes, each found anew at every snapshot by its callable."""

    def __init__(self) -> None:
        self.groups: dict[str, Callable[[], Iterable[int]]] = {}

    def add(self, name: str, pids: Callable[[], Iterable[int]]) -> None:
        self.groups[name] = pids

    def snapshot(self, extra: dict[str, Iterable[int]] | None = None) -> Snapshot:
        """Each group's seconds per process; `extra`: groups of pids known only now."""
        found = {name: list(pids()) for name, pids in self.groups.items()} | dict(extra or {})
        return {
            name: {pid: s for pid in pids if (s := cpu_seconds(pid)) is not None}
            for name, pids in found.items()
        }


def spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Seconds each group spent between two snapshots."""
    return {
        name: sum(max(0.0, s - before.get(name, {}).get(pid, 0.0)) for pid, s in pids.items())
        for name, pids in after.items()
    }
