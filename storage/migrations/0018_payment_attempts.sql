-- Paying again after a decline. A declined card leaves the order pending (its stock held) until
-- the unpaid-order expiry; the customer may give another card meanwhile. `payments` keeps the
-- current attempt (1 is the checkout's card); each later one is a row here, written with its
-- Idempotency-Key (a double submit finds its row and starts nothing) and the digest of its
-- request (the same key with another card is refused). The gateway key of attempt n is
-- `order-<id>-capture` for 1 and `order-<id>-capture-<n>` after (actors.orders.capture_key).
ALTER TABLE payments
    ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);

CREATE TABLE payment_attempts (
    order_id        bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    attempt         integer NOT NULL CHECK (attempt >= 2),
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    request_digest  bytea NOT NULL,
    card_brand      text NOT NULL DEFAULT '',
    card_last4      text NOT NULL DEFAULT '' CHECK (card_last4 ~ '^[0-9]{0,4}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, attempt),
    UNIQUE (order_id, idempotency_key)
);

