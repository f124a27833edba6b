-- The change log of what search reads, so each web process's in-process index (search/bitmap.py)
-- re-reads only the products that changed since its position. Written by triggers in the
-- transaction that changes the row, on every code path: the search actor's document, a staff
-- publish, a checkout's stock (refresh_product_aggregates). product_id NULL: categories or
-- attributes changed (the index reloads them). Old rows are pruned by the web processes.
CREATE TABLE search_changes (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  bigint,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX search_changes_changed_at ON search_changes (changed_at);

CREATE FUNCTION search_changes_products() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO search_changes (product_id) SELECT id FROM new_rows ORDER BY id;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO search_changes (product_id) SELECT id FROM old_rows ORDER BY id;
    ELSE
        INSERT INTO search_changes (product_id)
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.is_published, n.category_id, n.price_min, n.price_max, n.currency, n.in_stock,
               n.created_at, n.name, n.slug, n.indexed_at, n.index_version, n.search_facets)
              IS DISTINCT FROM
              (o.is_published, o.category_id, o.price_min, o.price_max, o.currency, o.in_stock,
               o.created_at, o.name, o.slug, o.indexed_at, o.index_version, o.search_facets)
           OR n.search_vector IS DISTINCT FROM o.search_vector
        ORDER BY n.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER search_changes_inserted AFTER INSERT ON products
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_products();
CREATE TRIGGER search_changes_updated AFTER UPDATE ON products
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_products();
CREATE TRIGGER search_changes_deleted AFTER DELETE ON products
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_products();

CREATE FUNCTION search_changes_vocabulary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_changes (product_id) VALUES (NULL);
    RETURN NULL;
END $$;

CREATE TRIGGER search_changes_categories AFTER INSERT OR UPDATE OR DELETE ON categories
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_vocabulary();
CREATE TRIGGER search_changes_attributes AFTER INSERT OR UPDATE OR DELETE ON attributes
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_vocabulary();
