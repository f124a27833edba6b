-- Bulk loads that write the product aggregates themselves (storage/seed.py computes price_min,
-- price_max, currency and in_stock from the variants it generates and COPYs them with the
-- products) may skip the variants' insert trigger in their own transaction:
--     SET LOCAL aioshop.product_aggregates = 'written';
-- The trigger's UPDATE would otherwise write every new product a second time (all of its indexes
-- again), the largest cost of a seed. Updates and deletes of variants are never skipped, and
-- every other session, or a later transaction of the same one, runs the trigger as before.
CREATE OR REPLACE FUNCTION variants_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('aioshop.product_aggregates', true) IS DISTINCT FROM 'written' THEN
        PERFORM refresh_product_aggregates(ARRAY(SELECT DISTINCT product_id FROM new_rows));
    END IF;
    RETURN NULL;
END;
$$;
