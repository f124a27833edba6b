-- An outbox row the relay cannot publish (an actor this release does not know, a payload that is
-- not an object) is retried with a growing delay and then parked with its error, so it never
-- blocks the rows behind it. A published row is settled once the reconciler finds its effect in
-- the inbox; until then the reconciler may publish it again (a lost retry, a purged queue), a
-- bounded number of times, and then parks it too. Operators retry or discard parked rows (/ops).
ALTER TABLE outbox
    ADD COLUMN last_error      text,
    ADD COLUMN next_attempt_at timestamptz,      -- NULL: as soon as a relay gets to it
    ADD COLUMN parked_at       timestamptz,
    ADD COLUMN discarded_at    timestamptz,      -- an operator gave up on a parked row
    ADD COLUMN republished     integer NOT NULL DEFAULT 0 CHECK (republished >= 0),
    ADD COLUMN settled_at      timestamptz;      -- its effect is recorded (or it was discarded)

-- What was published before the reconciler existed is history: only recent rows are checked.
UPDATE outbox SET settled_at = published_at
WHERE published_at IS NOT NULL AND published_at < now() - interval '1 hour';

DROP INDEX outbox_unpublished;
DROP INDEX outbox_published;
CREATE INDEX outbox_unpublished ON outbox (created_at, event_id)
    WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_unsettled ON outbox (published_at)
    WHERE published_at IS NOT NULL AND settled_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_settled ON outbox (settled_at) WHERE settled_at IS NOT NULL;
CREATE INDEX outbox_parked ON outbox (parked_at) WHERE parked_at IS NOT NULL AND discarded_at IS NULL;

-- A capture whose gateway call failed (an error, a timeout: not a decline, which cancels at once)
-- is counted here, so the unpaid-order expiry can tell "tried and failed" from "not tried yet".
ALTER TABLE payments
    ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    ADD COLUMN last_error      text;
