"""When requests hang, say what the processes were holding: a snapshot of pg_stat_activity on
the primary and the replica, each connection named by the shop process that owns it.

A request unanswered after 10 s already breaks the first invariant; the snapshot taken then is
the evidence (connections idle in a transaction while their process waits for another, locks
waited on, a pool with nothing left) that the end state cannot show any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from pathlib import Path

import asyncpg

from tests.soak.journal import Journal
from tests.soak.tree import ShopProcess, Tree

STALL_SECONDS = 10.0
WATCH_EVERY_SECONDS = 1.0
MAX_SNAPSHOTS = 3
SELECT_ACTIVITY = """
    SELECT client_port, state, wait_event_type, wait_event,
           coalesce(extract(epoch FROM now() - xact_start), 0)::int AS xact_seconds,
           coalesce(extract(epoch FROM now() - state_change), 0)::int AS state_seconds,
           left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query
    FROM pg_stat_activity
    WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()
    ORDER BY xact_start NULLS LAST
"""


async def watch(tree: Tree, journal: Journal, stop: asyncio.Event) -> None:
    """Until `stop`: when a request has waited STALL_SECONDS, snapshot the databases (once per
    web process, at most MAX_SNAPSHOTS times in a run)."""
    seen_ports: set[int] = set()
    while not stop.is_set() and len(journal.stalls) < MAX_SNAPSHOTS:
        now = time.time()
        waiting = [
            r for r in journal.requests if r.ended == 0.0 and now - r.started > STALL_SECONDS
        ]
        ports = {r.port for r in waiting} - seen_ports
        if ports:
            seen_ports |= ports
            oldest = min(r.started for r in waiting)
            what = ", ".join(
                sorted({f"{r.method} {r.path.partition('?')[0]}" for r in waiting})[:8]
            )
            heading = (
                f"stall at +{now - journal.started:.0f}s: {len(waiting)} request(s) waiting over "
                f"{STALL_SECONDS:.0f} s (ports {sorted({r.port for r in waiting})}, the oldest "
                f"since +{oldest - journal.started:.0f}s: {what})"
            )
            try:
                journal.stalls.append(f"{heading}; {await snapshot(tree)}")
            except Exception as exc:  # a diagnosis must not end the run
                journal.stalls.append(f"{heading}; no snapshot: {exc!r}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_EVERY_SECONDS)


async def snapshot(tree: Tree) -> str:
    """Per database server and owning process: its connections' states, and the ones that
    have been in a transaction or waiting for over a second, with their last statement."""
    assert tree.cluster is not None
    owners = await asyncio.to_thread(port_owners, tree.processes)
    parts = []
    for node, dsn in (
        ("primary", tree.cluster.primary_dsn()),
        ("replica", tree.cluster.replica_dsn()),
    ):
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            rows = await conn.fetch(SELECT_ACTIVITY, "shop", timeout=5)
        finally:
            await conn.close()
        by_owner: dict[str, Counter[str]] = {}
        long = []
        for row in rows:
            owner = owners.get(row["client_port"], "harness/other")
            state = row["state"] or "?"
            if row["wait_event_type"] in ("Lock", "Client", "IPC") and state == "active":
                state += f" waiting on {row['wait_event_type']}:{row['wait_event']}"
            by_owner.setdefault(owner, Counter())[state] += 1
            if row["xact_seconds"] > 1 and state != "idle":
                long.append(
                    f"{owner} {state} {row['xact_seconds']} s in a transaction: {row['query']!r}"
                )
        counts = "; ".join(
            f"{owner}: " + ", ".join(f"{n} {state}" for state, n in states.most_common())
            for owner, states in sorted(by_owner.items())
        )
        parts.append(f"{node} [{counts}]" + (f" long: {' | '.join(long[:6])}" if long else ""))
    return " ".join(parts)


def port_owners(processes: list[ShopProcess]) -> dict[int, str]:
    """Local TCP port -> the name of the shop process (or its child) whose socket it is."""
    inodes: dict[int, int] = {}  # socket inode -> local port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                inodes[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    groups = {p.process.pid: p.name for p in processes if p.process is not None and p.alive}
    owners: dict[int, str] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            group = os.getpgid(int(entry.name))
        except (ProcessLookupError, PermissionError):
            continue
        name = groups.get(group)
        if name is None:
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    port = inodes.get(int(target[8:-1]))
                    if port is not None:
                        owners[port] = name
    return owners
