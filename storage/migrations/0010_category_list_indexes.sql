-- A category page lists each category's products in the order of the chosen sort, then merges
-- them (search/postgres_sql.py LIST_BY_CATEGORY): one index per sort, led by the category.
CREATE INDEX products_category_newest ON products (category_id, created_at DESC, id DESC)
    WHERE is_published;
CREATE INDEX products_category_price_up
    ON products (category_id, (coalesce(price_min, 9223372036854775807)), id) WHERE is_published;
CREATE INDEX products_category_price_down
    ON products (category_id, (coalesce(price_min, -1)), id) WHERE is_published;
CREATE INDEX products_category_name ON products (category_id, lower(name), id) WHERE is_published;
-- products_category (category_id) is a prefix of each of these.
DROP INDEX products_category;
