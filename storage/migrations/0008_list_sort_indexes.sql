-- Product lists without facets read only their page: index scans in each sort's exact order.
-- Price sorts put products without a price (no variants yet) last both ways, as search does,
-- so they order by coalesce(price_min, ...) — which needs these expression indexes.
CREATE INDEX products_price_up ON products ((coalesce(price_min, 9223372036854775807)), id)
    WHERE is_published;
CREATE INDEX products_price_down ON products ((coalesce(price_min, -1)), id)
    WHERE is_published;
-- Attribute filters on lists test search_facets (`&&`); without text nothing else narrows them.
CREATE INDEX products_search_facets ON products USING gin (search_facets) WHERE is_published;
-- Sorting by name ignores case ("iPhone" among the i-s, not after "Zebra" as bytes would).
CREATE INDEX products_name_lower ON products (lower(name), id) WHERE is_published;
