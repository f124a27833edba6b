-- Carts, checkout and orders: shipping methods, carts (guest or user), orders with copied lines,
-- payments, every status change, and idempotency keys for placing orders.

-- Stock changes on every order: only touch the product row when an aggregate really changes, so
-- concurrent checkouts of different variants of one product do not queue on the product row.
CREATE OR REPLACE FUNCTION refresh_product_aggregates(targets bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE products p SET
        price_min = agg.price_min,
        price_max = agg.price_max,
        currency = agg.currency,
        in_stock = coalesce(agg.in_stock, false)
    FROM (
        SELECT t.id, min(v.price_amount) AS price_min, max(v.price_amount) AS price_max,
               min(v.currency) AS currency, bool_or(v.stock_on_hand > 0) AS in_stock
        FROM unnest(targets) AS t(id) LEFT JOIN variants v ON v.product_id = t.id
        GROUP BY t.id
    ) agg
    WHERE p.id = agg.id
      AND (p.price_min, p.price_max, p.currency, p.in_stock)
          IS DISTINCT FROM (agg.price_min, agg.price_max, agg.currency, coalesce(agg.in_stock, false));
$$;

CREATE TABLE shipping_methods (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price_amount    bigint NOT NULL CHECK (price_amount >= 0),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Free from this subtotal (same currency) up; NULL: never free.
    free_from_amount bigint CHECK (free_from_amount >= 0),
    is_active       boolean NOT NULL DEFAULT true,
    position        integer NOT NULL DEFAULT 0
);
INSERT INTO shipping_methods (code, name, price_amount, currency, free_from_amount, position) VALUES
    ('standard', 'Standard delivery (3-5 working days)', 495, 'EUR', 5000, 0),
    ('express', 'Express delivery (next working day)', 1295, 'EUR', NULL, 1);

-- A cart belongs to a user, or to a guest who holds its token (only the digest is stored).
CREATE TABLE carts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((user_id IS NULL) <> (token_hash IS NULL))
);
CREATE INDEX carts_guest_age ON carts (updated_at) WHERE user_id IS NULL;

CREATE TABLE cart_items (
    cart_id     bigint NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    variant_id  bigint NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, variant_id)
);

CREATE TABLE orders (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What customers and staff quote; random, so one order's number says nothing of another's.
    number              text NOT NULL UNIQUE CHECK (number ~ '^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$'),
    user_id             bigint REFERENCES users (id) ON DELETE SET NULL,
    email               citext NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'confirmed', 'shipped', 'delivered', 'cancelled')),
    currency            char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal_amount     bigint NOT NULL CHECK (subtotal_amount >= 0),
    shipping_amount     bigint NOT NULL CHECK (shipping_amount >= 0),
    tax_amount          bigint NOT NULL CHECK (tax_amount >= 0),
    total_amount        bigint NOT NULL CHECK (total_amount = subtotal_amount + shipping_amount + tax_amount),
    tax_rate_bps        integer NOT NULL CHECK (tax_rate_bps BETWEEN 0 AND 10000),
    shipping_method     text NOT NULL,              -- the method's name when the order was placed
    shipping_address    jsonb NOT NULL CHECK (jsonb_typeof(shipping_address) = 'object'),
    tracking_number     text CHECK (length(tracking_number) BETWEEN 1 AND 100),
    placed_at           timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user ON orders (user_id, placed_at DESC, id DESC);
CREATE INDEX orders_status ON orders (status, placed_at DESC, id DESC);
CREATE INDEX orders_placed ON orders (placed_at DESC, id DESC);
CREATE INDEX orders_pending_age ON orders (placed_at) WHERE status = 'pending';

-- Lines copy what the customer saw: a later rename or price change does not rewrite history.
CREATE TABLE order_lines (
    order_id        bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line            integer NOT NULL CHECK (line >= 1),
    variant_id      bigint REFERENCES variants (id) ON DELETE SET NULL,
    product_id      bigint REFERENCES products (id) ON DELETE SET NULL,
    sku             text NOT NULL,
    name            text NOT NULL,
    unit_amount     bigint NOT NULL CHECK (unit_amount >= 0),
    quantity        integer NOT NULL CHECK (quantity >= 1),
    line_amount     bigint NOT NULL CHECK (line_amount = unit_amount * quantity),
    PRIMARY KEY (order_id, line)
);
CREATE INDEX order_lines_variant ON order_lines (variant_id);

-- One payment per order. Only the gateway's token and the card's last four digits are kept.
CREATE TABLE payments (
    order_id        bigint PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    gateway         text NOT NULL,
    token           text NOT NULL,
    card_brand      text NOT NULL DEFAULT '',
    card_last4      text NOT NULL DEFAULT '' CHECK (card_last4 ~ '^[0-9]{0,4}$'),
    amount          bigint NOT NULL CHECK (amount >= 0),
    currency        char(3) NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'captured', 'declined', 'voided', 'refunded')),
    decline_code    text,
    reference       text,                           -- the gateway's id of the capture
    refund_reference text,                          -- the gateway's id of the refund
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Every status change: who (a user, or NULL for the shop's own processes), when, from, to.
CREATE TABLE order_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    from_status text,
    to_status   text NOT NULL,
    actor_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    actor       text NOT NULL,                      -- 'customer', 'staff', 'system' or 'guest'
    note        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_transitions_order ON order_transitions (order_id, id);

-- Placing an order with an Idempotency-Key: the first request stores the key with the digest
-- of its body; a retry finds the key and gets the same order, a different body is refused.
CREATE TABLE idempotency_keys (
    scope           text NOT NULL,                  -- 'user:<id>' or 'cart:<id>'
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_digest  bytea NOT NULL,
    order_id        bigint REFERENCES orders (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- The built-in test gateway's own ledger (a payment sandbox's side of the world): one row per
-- capture idempotency key, so a repeated capture never charges twice.
CREATE TABLE test_gateway_charges (
    idempotency_key text PRIMARY KEY,
    token           text NOT NULL,
    amount          bigint NOT NULL,
    currency        char(3) NOT NULL,
    outcome         text NOT NULL,
    reference       text NOT NULL UNIQUE,
    attempts        integer NOT NULL DEFAULT 1,     -- capture calls with this key (1 charge)
    created_at      timestamptz NOT NULL DEFAULT now()
);
