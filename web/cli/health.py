"""`aioshop health worker|relay`: is this machine's worker (or relay) alive? For a container's
health check (compose.yml) or a service manager's.

Workers and relays write a heartbeat to the shop's Redis every HEARTBEAT_INTERVAL_SECONDS, naming
their host (actors/ops/heartbeats.py). The answer is yes while at least one process of that kind
on this host beat within three of its intervals (green on /ops/workers): exit status 0, else 1,
with one line saying why. An earlier run's heartbeat from the same host (a restarted container
keeps its host name) does not count: red or grey is not alive.
"""

from __future__ import annotations

from actors.ops.heartbeats import Kind, Process, processes
from storage.redis_client import open_redis

TIMEOUT_SECONDS = 2.0  # each Redis call; the whole check stays well inside Docker's timeout


def verdict(found: list[Process], kind: Kind, host: str) -> tuple[bool, str]:
    """Whether `found` holds a live `kind` process of `host`, and a line saying so."""
    mine = [p for p in found if p.kind == kind and p.host == host]
    alive = [p for p in mine if p.status == "green"]
    if alive:
        pids = ", ".join(str(p.pid) for p in alive)
        return True, f"{kind} on {host}: alive (pid {pids})"
    if not mine:
        return False, f"{kind} on {host}: no heartbeat"
    latest = max(mine, key=lambda p: p.last_beat)
    return False, f"{kind} on {host}: {latest.reason}"


async def check(redis_url: str, kind: Kind, host: str) -> tuple[bool, str]:
    """verdict() on the heartbeats in Redis; (False, why) when Redis does not answer."""
    client = open_redis(redis_url, timeout=TIMEOUT_SECONDS)
    try:
        found = await processes(client)
    except Exception as exc:  # unreachable, timed out, refused: not known to be alive
        return False, f"{kind} on {host}: cannot read the heartbeats in Redis ({exc!r})"
    finally:
        await client.aclose()
    return verdict(found, kind, host)
