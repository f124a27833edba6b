-- The catalog: a category tree, product types that declare attributes, products, variants (the
-- things with a SKU, a price and stock) and images. The skeleton's products keep their ids; their
-- price moves into one variant each.

CREATE TABLE categories (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id   bigint REFERENCES categories (id) ON DELETE RESTRICT,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- Ids from the root down to this category, itself included: descendants of X are the rows
    -- whose path contains X. Kept by storage/categories.py, which also moves subtrees.
    path        bigint[] NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    CHECK (path[array_length(path, 1)] = id)
);
CREATE INDEX categories_path ON categories USING gin (path);
CREATE INDEX categories_parent ON categories (parent_id, position, name);

CREATE TABLE attributes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug           text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(_[a-z0-9]+)*$'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    kind           text NOT NULL CHECK (kind IN ('text', 'number', 'boolean', 'choice')),
    unit           text NOT NULL DEFAULT '' CHECK (length(unit) <= 10),
    is_filterable  boolean NOT NULL DEFAULT true
);

CREATE TABLE attribute_choices (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    attribute_id  bigint NOT NULL REFERENCES attributes (id) ON DELETE CASCADE,
    slug          text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    swatch        text CHECK (swatch ~ '^#[0-9a-f]{6}$'),
    position      integer NOT NULL DEFAULT 0,
    UNIQUE (attribute_id, slug)
);

CREATE TABLE product_types (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug  text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name  text NOT NULL CHECK (length(name) BETWEEN 1 AND 60)
);

-- Which attributes a type declares, and whether products or their variants carry the value.
CREATE TABLE product_type_attributes (
    product_type_id  bigint NOT NULL REFERENCES product_types (id) ON DELETE CASCADE,
    attribute_id     bigint NOT NULL REFERENCES attributes (id) ON DELETE RESTRICT,
    level            text NOT NULL CHECK (level IN ('product', 'variant')),
    position         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (product_type_id, attribute_id)
);

ALTER TABLE products
    ADD COLUMN category_id      bigint REFERENCES categories (id) ON DELETE SET NULL,
    ADD COLUMN product_type_id  bigint REFERENCES product_types (id) ON DELETE RESTRICT,
    -- Product-level attribute values: {"material": "cotton", "organic": true}.
    ADD COLUMN attributes       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    -- Kept by the variants trigger below, so lists can filter and sort without a join.
    ADD COLUMN price_min        bigint,
    ADD COLUMN price_max        bigint,
    ADD COLUMN currency         char(3),
    ADD COLUMN in_stock         boolean NOT NULL DEFAULT false;

CREATE TABLE variants (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id      bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sku             text NOT NULL UNIQUE CHECK (sku ~ '^[A-Z0-9][A-Z0-9._-]{0,63}$'),
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    price_amount    bigint NOT NULL CHECK (price_amount >= 0),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Never below zero, whatever the code path: checkout's guarded update relies on it.
    stock_on_hand   integer NOT NULL DEFAULT 0 CHECK (stock_on_hand >= 0),
    -- Variant-level attribute values: {"size": "m", "colour": "red"}.
    attributes      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    position        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX variants_product ON variants (product_id, position, id);
CREATE INDEX variants_sku_prefix ON variants (sku text_pattern_ops);
CREATE INDEX variants_attributes ON variants USING gin (attributes jsonb_path_ops);

CREATE TABLE product_images (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position    integer NOT NULL DEFAULT 0,
    path        text NOT NULL,                -- the original, relative to DATA_DIR/media
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    alt         text NOT NULL DEFAULT '' CHECK (length(alt) <= 200),
    renditions  jsonb NOT NULL DEFAULT '{}',  -- {"400": "path", ...}, written by the image actor
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX product_images_product ON product_images (product_id, position, id);

-- The skeleton's prices become one variant per product.
INSERT INTO variants (product_id, sku, name, price_amount, currency)
SELECT id, upper(replace(slug, '-', '_')), name, price_amount, price_currency FROM products;

ALTER TABLE products DROP COLUMN price_amount, DROP COLUMN price_currency;

-- Product aggregates follow their variants, on every code path. Statement-level triggers with
-- transition tables: one UPDATE per statement, so a bulk COPY of variants stays fast.
CREATE FUNCTION refresh_product_aggregates(targets bigint[]) RETURNS void LANGUAGE sql AS $$
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
    WHERE p.id = agg.id;
$$;

CREATE FUNCTION variants_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_product_aggregates(ARRAY(SELECT DISTINCT product_id FROM new_rows));
    RETURN NULL;
END;
$$;

CREATE FUNCTION variants_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_product_aggregates(ARRAY(
        SELECT product_id FROM new_rows UNION SELECT product_id FROM old_rows));
    RETURN NULL;
END;
$$;

CREATE FUNCTION variants_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_product_aggregates(ARRAY(SELECT DISTINCT product_id FROM old_rows));
    RETURN NULL;
END;
$$;

CREATE TRIGGER variants_inserted AFTER INSERT ON variants
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION variants_inserted();
CREATE TRIGGER variants_updated AFTER UPDATE ON variants
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION variants_updated();
CREATE TRIGGER variants_deleted AFTER DELETE ON variants
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION variants_deleted();

SELECT refresh_product_aggregates(ARRAY(SELECT id FROM products));

CREATE INDEX products_category ON products (category_id) WHERE is_published;
CREATE INDEX products_price ON products (price_min, id) WHERE is_published;
CREATE INDEX products_name ON products (name, id) WHERE is_published;
CREATE INDEX products_attributes ON products USING gin (attributes jsonb_path_ops);
CREATE INDEX products_name_trigram ON products USING gin (name gin_trgm_ops);
