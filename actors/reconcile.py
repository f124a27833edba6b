"""The outbox reconciler: every committed event reaches its effect at least once.

The relay publishes an event once; after that the event can still be lost without anything
failing loudly: Dramatiq enqueues a retry in an after-processing hook and acks the original even
when that enqueue failed (the broker refused the connection, or nacked), and an operator may
purge a queue. So the relay ticks this actor every minute, and it looks at the events published
more than RECONCILE_AFTER_SECONDS ago: those whose consumer recorded them in the inbox
(`processed_events`, keyed by the event's name and id) are settled, and the others are handed
back to the relays with the same id, so a consumer that did apply one meanwhile skips the copy.

Every actor of an event records its inbox row in the transaction of its effect, including when
it decides there is nothing to do (a duplicate, an order no longer pending, a deleted image, a
user gone): only a failure leaves none. An event published RECONCILE_MAX_REPUBLISHES times
without an effect is parked for an operator (/ops/outbox) instead of being tried forever; if it
takes effect later (its message was waiting behind a stopped worker), it is settled then.
Published rows are purged only once settled, so none is deleted before this has looked at it.

Each run, finished or failed, records itself in Redis (storage.reconcile_runs: when, how many
it checked, settled, published again and parked, how long it took, its error) for /ops/outbox; a
run that cannot record itself still does its work. The same tick prunes the email delivery log
(storage.emails) of rows older than EMAIL_LOG_RETENTION_DAYS, a bounded batch per run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Counter

from actors.registry import handles
from actors.resources import Resources
from domain.events import RECONCILE_OUTBOX
from storage import emails, outbox, reconcile_runs

log = structlog.get_logger(__name__)

CHECK_BATCH = 500  # rows looked at per transaction
MAX_BATCHES = 20  # per run: the next tick goes on where this one stopped
RECORD_TIMEOUT_SECONDS = 5.0
PRUNE_TIMEOUT_SECONDS = 30.0

BOOKKEEPING_ERRORS = Counter(
    "aioshop_reconcile_bookkeeping_errors_total",
    "Reconciler runs that could not record themselves or prune the email log, by step.",
    ["step"],
)
REPUBLISHED = Counter(
    "aioshop_outbox_republished_total",
    "Published events the reconciler sent back to the relay because no effect was recorded.",
)


@dataclass
class Tally:
    """What one run did so far."""

    checked: int = 0
    settled: int = 0
    republished: int = 0
    parked: int = 0


@handles(RECONCILE_OUTBOX, max_retries=3)
async def reconcile_outbox(res: Resources) -> None:
    """Settle, publish again (at most RECONCILE_MAX_PER_RUN) or park the published events whose
    effect has not been recorded after RECONCILE_AFTER_SECONDS; then prune the email log. Several
    at once are harmless: each locks the rows it looks at, and the others skip them. Records the
    run (storage.reconcile_runs) whether it finished or failed; a failure is raised (retried)."""
    started_at, clock = datetime.now(UTC), time.monotonic()
    tally = Tally()
    error: str | None = None
    try:
        await _reconcile(res, tally)
    except Exception as exc:
        error = repr(exc)
        raise
    finally:
        run = reconcile_runs.ReconcileRun(
            started_at=started_at,
            duration_seconds=time.monotonic() - clock,
            checked=tally.checked,
            settled=tally.settled,
            republished=tally.republished,
            parked=tally.parked,
            error=error,
        )
        await _record(res, run)
    await _prune_email_log(res)


async def _reconcile(res: Resources, tally: Tally) -> None:
    settings = res.settings
    older_than = timedelta(seconds=settings.reconcile_after_seconds)
    budget = settings.reconcile_max_per_run
    for _ in range(MAX_BATCHES):
        async with res.db.primary.acquire() as conn, conn.transaction():
            done = await outbox.reconcile(
                conn,
                older_than=older_than,
                max_republishes=settings.reconcile_max_republishes,
                republish_limit=budget,
                batch=CHECK_BATCH,
            )
        tally.checked += done.checked
        tally.settled += done.settled
        tally.republished += len(done.republished)
        REPUBLISHED.inc(len(done.republished))  # committed: the relay publishes them again
        tally.parked += len(done.parked)
        budget -= len(done.republished)
        for event_id in done.republished:
            log.warning("outbox.event_republished", event_id=str(event_id))
        for event_id in done.parked:
            log.error("outbox.event_parked", event_id=str(event_id), reason="no effect recorded")
        if done.checked < CHECK_BATCH or budget <= 0:
            break
    if tally.checked or tally.settled:
        log.info(
            "outbox.reconciled",
            checked=tally.checked,
            settled=tally.settled,
            republished=tally.republished,
            parked=tally.parked,
        )


async def _record(res: Resources, run: reconcile_runs.ReconcileRun) -> None:
    """Store the run for /ops/outbox; a failure is logged and counted, never raised."""
    try:
        async with asyncio.timeout(RECORD_TIMEOUT_SECONDS):
            await reconcile_runs.record(res.redis, run)
    except Exception as exc:
        BOOKKEEPING_ERRORS.labels(step="record_run").inc()
        log.warning("outbox.reconcile_run_not_recorded", error=repr(exc))


async def _prune_email_log(res: Resources) -> None:
    """Delete one batch of email log rows past the retention; logged and counted on failure."""
    keep = timedelta(days=res.settings.email_log_retention_days)
    try:
        async with res.db.primary.acquire() as conn:
            deleted = await emails.prune(conn, older_than=keep, timeout=PRUNE_TIMEOUT_SECONDS)
    except Exception as exc:
        BOOKKEEPING_ERRORS.labels(step="prune_email_log").inc()
        log.warning("email_log.prune_failed", error=repr(exc))
        return
    if deleted:
        log.info("email_log.pruned", deleted=deleted)
