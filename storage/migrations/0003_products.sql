-- A minimal product table for the skeleton's home page; the catalog issue grows it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE products (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '',
    price_amount    bigint NOT NULL CHECK (price_amount >= 0),
    price_currency  char(3) NOT NULL CHECK (price_currency ~ '^[A-Z]{3}$'),
    is_published    boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Written by the search actor, never by a request: the document search reads.
    search_vector   tsvector,
    indexed_at      timestamptz,
    index_version   integer NOT NULL DEFAULT 0
);

CREATE INDEX products_published_newest ON products (created_at DESC, id DESC) WHERE is_published;
CREATE INDEX products_search ON products USING gin (search_vector);
