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
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from prometheus_client import Counter

from actors.registry import handles
from actors.resources import Resources
from domain.events import RECONCILE_OUTBOX
from storage import outbox

log = structlog.get_logger(__name__)

CHECK_BATCH = 500  # rows looked at per transaction
MAX_BATCHES = 20  # per run: the next tick goes on where this one stopped
REPUBLISHED = Counter(
    "aioshop_outbox_republished_total",
    "Published events the reconciler sent back to the relay because no effect was recorded.",
)


@handles(RECONCILE_OUTBOX, max_retries=3)
async def reconcile_outbox(res: Resources) -> None:
    """Settle, publish again (at most RECONCILE_MAX_PER_RUN) or park the published events whose
    effect has not been recorded after RECONCILE_AFTER_SECONDS. Several at once are harmless:
    each locks the rows it looks at, and the others skip them."""
    settings = res.settings
    older_than = timedelta(seconds=settings.reconcile_after_seconds)
    budget = settings.reconcile_max_per_run
    checked = settled = republished = parked = 0
    for _ in range(MAX_BATCHES):
        async with res.db.primary.acquire() as conn, conn.transaction():
            done = await outbox.reconcile(
                conn,
                older_than=older_than,
                max_republishes=settings.reconcile_max_republishes,
                republish_limit=budget,
                batch=CHECK_BATCH,
            )
        checked += done.checked
        settled += done.settled
        republished += len(done.republished)
        REPUBLISHED.inc(len(done.republished))  # committed: the relay publishes them again
        parked += len(done.parked)
        budget -= len(done.republished)
        for event_id in done.republished:
            log.warning("outbox.event_republished", event_id=str(event_id))
        for event_id in done.parked:
            log.error("outbox.event_parked", event_id=str(event_id), reason="no effect recorded")
        if done.checked < CHECK_BATCH or budget <= 0:
            break
    if checked or settled:
        log.info(
            "outbox.reconciled",
            checked=checked,
            settled=settled,
            republished=republished,
            parked=parked,
        )
