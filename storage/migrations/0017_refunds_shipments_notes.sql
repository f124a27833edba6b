-- Staff order work (issue 15): partial refunds, per-line shipments, staff notes.
--
-- The database keeps the sums itself: a trigger adds every refund to its payment's
-- refunded_amount and every refund or shipment line to its order line's counters, and CHECKs
-- keep those within what was captured or ordered. Whatever code writes a refund, the refunds of
-- a payment never add up to more than its capture, and no line is refunded or shipped beyond
-- its quantity: the insert that would go over fails (check_violation) and its transaction with it.

-- Refunded so far (requested or done) out of the captured `amount`.
ALTER TABLE payments ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT payments_refunds_within_capture
        CHECK (refunded_amount >= 0 AND refunded_amount <= amount);
UPDATE payments SET refunded_amount = amount WHERE status = 'refunded';

-- Per line: units refunded (and of those, put back in stock) and units shipped.
ALTER TABLE order_lines
    ADD COLUMN refunded_quantity integer NOT NULL DEFAULT 0,
    ADD COLUMN restocked_quantity integer NOT NULL DEFAULT 0,
    ADD COLUMN shipped_quantity integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT order_lines_refunds_within_quantity
        CHECK (refunded_quantity BETWEEN 0 AND quantity),
    ADD CONSTRAINT order_lines_restocks_within_refunds
        CHECK (restocked_quantity BETWEEN 0 AND refunded_quantity),
    ADD CONSTRAINT order_lines_shipments_within_quantity
        CHECK (shipped_quantity BETWEEN 0 AND quantity);
UPDATE order_lines l SET shipped_quantity = l.quantity
FROM orders o WHERE o.id = l.order_id AND o.status IN ('shipped', 'delivered');

-- A refund: asked for by staff (or by a cancellation, for what was left), then given back by
-- the order actor through the payment provider, once, with the key `refund-<id>`.
CREATE TABLE refunds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- The form's own key: a double submit, or a retry after a lost answer, is the same refund.
    request_key uuid NOT NULL UNIQUE,
    amount      bigint NOT NULL CHECK (amount > 0),
    currency    char(3) NOT NULL,
    restock     boolean NOT NULL DEFAULT false,
    reason      text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    actor       text NOT NULL CHECK (actor IN ('staff', 'system')),
    actor_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    actor_email text,                                -- as it was then
    status      text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'refunded')),
    reference   text,                                -- the provider's id of the refund
    created_at  timestamptz NOT NULL DEFAULT now(),
    refunded_at timestamptz,
    CHECK ((status = 'refunded') = (reference IS NOT NULL AND refunded_at IS NOT NULL))
);
CREATE INDEX refunds_order ON refunds (order_id, id);

CREATE TABLE refund_lines (
    refund_id   bigint NOT NULL REFERENCES refunds (id) ON DELETE CASCADE,
    order_id    bigint NOT NULL,
    line        integer NOT NULL,
    quantity    integer NOT NULL CHECK (quantity >= 1),
    PRIMARY KEY (refund_id, line),
    FOREIGN KEY (order_id, line) REFERENCES order_lines (order_id, line) ON DELETE CASCADE
);

CREATE FUNCTION count_refund() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payments SET refunded_amount = refunded_amount + NEW.amount, updated_at = now()
    WHERE order_id = NEW.order_id AND status = 'captured' AND currency = NEW.currency;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order % has no captured payment in % to refund', NEW.order_id, NEW.currency
            USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_refunds_within_capture';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refunds_counted AFTER INSERT ON refunds FOR EACH ROW EXECUTE FUNCTION count_refund();

CREATE FUNCTION count_refund_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE order_lines l SET
        refunded_quantity = l.refunded_quantity + NEW.quantity,
        restocked_quantity = l.restocked_quantity + CASE WHEN r.restock THEN NEW.quantity ELSE 0 END
    FROM refunds r
    WHERE r.id = NEW.refund_id AND l.order_id = NEW.order_id AND l.line = NEW.line;
    RETURN NEW;
END $$;
CREATE TRIGGER refund_lines_counted AFTER INSERT ON refund_lines
    FOR EACH ROW EXECUTE FUNCTION count_refund_line();

-- A refund's amount and lines are what was asked: never changed once written.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never changed', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER refunds_fixed BEFORE UPDATE OF order_id, amount, currency, restock ON refunds
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER refund_lines_fixed BEFORE UPDATE ON refund_lines
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- A shipment: some units of some lines, with the carrier's tracking number.
CREATE TABLE shipments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id        bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    request_key     uuid NOT NULL UNIQUE,            -- a double submit is one shipment
    tracking_number text NOT NULL CHECK (length(tracking_number) BETWEEN 1 AND 100),
    actor_id        bigint REFERENCES users (id) ON DELETE SET NULL,
    actor_email     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_order ON shipments (order_id, id);

CREATE TABLE shipment_lines (
    shipment_id bigint NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    order_id    bigint NOT NULL,
    line        integer NOT NULL,
    quantity    integer NOT NULL CHECK (quantity >= 1),
    PRIMARY KEY (shipment_id, line),
    FOREIGN KEY (order_id, line) REFERENCES order_lines (order_id, line) ON DELETE CASCADE
);

CREATE FUNCTION count_shipment_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE order_lines SET shipped_quantity = shipped_quantity + NEW.quantity
    WHERE order_id = NEW.order_id AND line = NEW.line;
    RETURN NEW;
END $$;
CREATE TRIGGER shipment_lines_counted AFTER INSERT ON shipment_lines
    FOR EACH ROW EXECUTE FUNCTION count_shipment_line();
CREATE TRIGGER shipment_lines_fixed BEFORE UPDATE ON shipment_lines
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Staff notes on an order: append-only (the text, the order and the moment never change).
CREATE TABLE order_notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    author_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    author_email text NOT NULL,                      -- as it was then
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_notes_order ON order_notes (order_id, id);
CREATE TRIGGER order_notes_append_only
    BEFORE UPDATE OF order_id, author_email, body, created_at ON order_notes
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- The order page's timeline finds the order's emails through their outbox events.
CREATE INDEX outbox_order_emails ON outbox (((payload ->> 'order_id')::bigint))
    WHERE actor_name = 'email.send_order_email';
