-- The email delivery log (/ops/emails): one row per attempt to send an email, whatever its
-- outcome (sent: handed to the SMTP server or the local mailbox; refused: a 5xx, for good;
-- failed: anything a retry may cure). Written by the email actors outside their transaction,
-- so a failed attempt, whose transaction rolls back, is still logged. Kept
-- EMAIL_LOG_RETENTION_DAYS; the outbox reconciler deletes older rows (storage.emails.prune).
CREATE TABLE email_deliveries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL CHECK (length(kind) BETWEEN 1 AND 60),   -- the template's kind
    recipient   text NOT NULL CHECK (length(recipient) <= 1000),
    subject     text NOT NULL CHECK (length(subject) <= 1000),
    result      text NOT NULL CHECK (result IN ('sent', 'failed', 'refused')),
    attempt     integer NOT NULL CHECK (attempt >= 1),   -- 1 + the attempts logged before it
    error       text CHECK (length(error) <= 2000),
    event_name  text NOT NULL CHECK (length(event_name) <= 100),     -- the outbox event
    event_id    uuid NOT NULL
);
-- The page: newest first, all or one result, pages by (at, id); counts of the last hour.
CREATE INDEX email_deliveries_at ON email_deliveries (at DESC, id DESC);
CREATE INDEX email_deliveries_result_at ON email_deliveries (result, at DESC, id DESC);
-- The attempt number counts an event's earlier rows.
CREATE INDEX email_deliveries_event ON email_deliveries (event_id);

-- The oldest unsent email: email events not yet settled (no effect seen by the reconciler).
CREATE INDEX outbox_unsettled_by_actor ON outbox (actor_name, created_at)
    WHERE settled_at IS NULL AND discarded_at IS NULL;
