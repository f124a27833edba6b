-- Attribute choices are part of the reference data the in-process index keeps for the web (their
-- names label facet values: search.bitmap.CatalogReference), and renaming or adding a choice
-- writes only attribute_choices: have it reload the vocabulary as categories and attributes do.
CREATE TRIGGER search_changes_attribute_choices AFTER INSERT OR UPDATE OR DELETE ON attribute_choices
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_vocabulary();
