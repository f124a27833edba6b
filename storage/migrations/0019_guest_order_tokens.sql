-- A guest's order token: what lets an app that placed an order as a guest (a cart token, no
-- account) read that order and pay it again after a decline. The token is random and shown once,
-- in the checkout's answer; the order keeps only its SHA-256 digest. NULL for customers' orders
-- and for orders placed in a browser, whose guest credential is the signed cookie.
ALTER TABLE orders
    ADD COLUMN guest_token_hash bytea
        CHECK (guest_token_hash IS NULL OR octet_length(guest_token_hash) = 32);
