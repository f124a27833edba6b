-- Low-stock notices: staff hear of a variant once when it runs low, not after every sale.
-- The stock a check last saw for each variant at or below the threshold. A check tells staff of a
-- variant that is low and either has no row yet or has more stock than its row says (it was
-- restocked since, yet is low again); every check stores what it saw (storage.stock).
CREATE TABLE low_stock_notices (
    variant_id    bigint PRIMARY KEY REFERENCES variants (id) ON DELETE CASCADE,
    stock_on_hand integer NOT NULL,
    checked_at    timestamptz NOT NULL DEFAULT now()
);
