"""The outbox reconciler's last run, for /ops/outbox: when, what it did, how long, its error.

Kept in the shop's Redis, one key overwritten by every run (every minute, actors.reconcile), not
in PostgreSQL: it is a fact about the machinery, not the shop's data, so it needs no table that
grows or a purge, and writing it never adds a write to the database the reconciler is there to
check. Losing it (Redis flushed or replaced) costs the page one minute of "no run recorded yet".
Every run records itself, a failed one too, with the error that stopped it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

KEY = "aioshop:ops:reconciler-last-run"
ERROR_CHARACTERS = 500


@dataclass(frozen=True)
class ReconcileRun:
    """One run of the reconciler, as it ended."""

    started_at: datetime
    duration_seconds: float
    checked: int
    settled: int
    republished: int  # events handed back to the relays (published again)
    parked: int  # events given up on, for an operator
    error: str | None = None  # what stopped the run (it is retried), None when it finished

    @property
    def failed(self) -> bool:
        return self.error is not None


async def record(redis: aioredis.Redis, run: ReconcileRun) -> None:
    """Store `run` as the last one (the client's own timeouts bound the wait)."""
    fields: dict[str, Any] = asdict(run)
    fields["started_at"] = run.started_at.isoformat()
    if run.error is not None:
        fields["error"] = run.error[:ERROR_CHARACTERS]
    await redis.set(KEY, json.dumps(fields))


async def last(redis: aioredis.Redis) -> ReconcileRun | None:
    """The last run recorded, None if there is none (or it cannot be read back)."""
    raw = await redis.get(KEY)
    if raw is None:
        return None
    try:
        fields = json.loads(raw)
        return ReconcileRun(
            started_at=datetime.fromisoformat(fields["started_at"]),
            duration_seconds=float(fields["duration_seconds"]),
            checked=int(fields["checked"]),
            settled=int(fields["settled"]),
            republished=int(fields["republished"]),
            parked=int(fields["parked"]),
            error=str(fields["error"]) if fields.get("error") is not None else None,
        )
    except (ValueError, KeyError, TypeError):  # written by another release: not worth a 500
        return None
