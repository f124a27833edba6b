-- A product's first image is part of the card the in-process index keeps for product lists
-- (search.bitmap_cards): adding, reordering, replacing or removing an image (or its renditions)
-- logs the product, so each web process reads its card again.
CREATE FUNCTION search_changes_images() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO search_changes (product_id)
        SELECT DISTINCT product_id FROM new_rows ORDER BY 1;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO search_changes (product_id)
        SELECT DISTINCT product_id FROM old_rows ORDER BY 1;
    ELSE
        INSERT INTO search_changes (product_id)
        SELECT product_id FROM new_rows UNION SELECT product_id FROM old_rows ORDER BY 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER search_changes_images_inserted AFTER INSERT ON product_images
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_images();
CREATE TRIGGER search_changes_images_updated AFTER UPDATE ON product_images
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_images();
CREATE TRIGGER search_changes_images_deleted AFTER DELETE ON product_images
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_images();
