-- The transactional outbox: a request writes its side effects here, in its own transaction.
-- The relay publishes unpublished rows to the broker and marks them; event_id is the message id.
CREATE TABLE outbox (
    event_id      uuid PRIMARY KEY,
    actor_name    text NOT NULL,
    payload       jsonb NOT NULL,
    request_id    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);

CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relay at commit time; it also polls, so a missed notification only costs latency.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
