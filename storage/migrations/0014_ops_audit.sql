-- What operators did on /ops (retry, delete or purge messages; retry or discard parked outbox
-- rows): who, when, what and on which queue or row. Kept; shown on the pages it concerns.
CREATE TABLE ops_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    user_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    user_email text NOT NULL,                 -- as it was then: the account may change or go
    action     text NOT NULL CHECK (action ~ '^[a-z_.]{1,60}$'),
    target     text NOT NULL CHECK (length(target) <= 200),   -- a queue name, an outbox row id
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX ops_audit_at ON ops_audit (at DESC);
CREATE INDEX ops_audit_target ON ops_audit (target, at DESC);
