-- PostgreSQL search: the search document (weighted tsvector and flattened attribute values) built
-- by one function for one product or many, and the vocabulary behind typo correction, prefix
-- completion and "did you mean".

-- Every attribute value a product or any of its variants carries, as 'slug=value' (slugs have no
-- '='): filters test it with one array, facets count it without touching jsonb or variants.
ALTER TABLE products ADD COLUMN search_facets text[] NOT NULL DEFAULT '{}';

-- Distinct words of published products' names, category names and attribute values. Kept by
-- search_index_products; a word no product uses any more stays (harmless, every reader checks
-- product_terms) until search_prune_terms() runs.
CREATE TABLE search_terms (
    term    text PRIMARY KEY CHECK (length(term) BETWEEN 2 AND 40),
    -- The english stem, so "shoes" is known when only "shoe" was indexed ('' for stop words).
    lexeme  text NOT NULL
);
-- GiST, not GIN: only GiST orders by distance (term <-> $1), which needs no threshold.
CREATE INDEX search_terms_trigram ON search_terms USING gist (term gist_trgm_ops);
CREATE INDEX search_terms_prefix ON search_terms (term text_pattern_ops);
CREATE INDEX search_terms_lexeme ON search_terms (lexeme);

-- Which published product uses which word: liveness and popularity of a term.
CREATE TABLE product_terms (
    term        text NOT NULL,
    product_id  bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    PRIMARY KEY (term, product_id)
);
CREATE INDEX product_terms_product ON product_terms (product_id);

CREATE INDEX products_search_facets ON products USING gin (search_facets) WHERE is_published;
CREATE INDEX products_published_in_stock ON products (in_stock) WHERE is_published;
-- Autocomplete: names starting with what is typed.
CREATE INDEX products_name_prefix ON products (lower(name) text_pattern_ops) WHERE is_published;

-- The search document of the given products: name (weight A); the names of the category and its
-- ancestors, attribute values and their choice names (B); description (C). Also the products'
-- search_facets and, for published ones, their words in search_terms/product_terms.
-- storage/products.py's INDEX_PRODUCT calls it for one id; bulk loads call it for many.
CREATE FUNCTION search_index_products(ids bigint[])
RETURNS TABLE (product_id bigint, index_version integer)
LANGUAGE sql AS $$
    WITH targets AS MATERIALIZED (
        SELECT DISTINCT id FROM unnest(ids) AS t (id)
    ),
    document AS (
        SELECT p.id, p.name, p.description, p.is_published,
               coalesce(t.facets, '{}') AS facets,
               concat_ws(' ', (SELECT string_agg(c.name, ' ')
                               FROM categories own JOIN categories c ON c.id = ANY (own.path)
                               WHERE own.id = p.category_id), t.words) AS tag_text
        FROM products p
        JOIN targets USING (id)
        LEFT JOIN LATERAL (
            SELECT array_agg(DISTINCT f.attribute || '=' || f.value) AS facets,
                   string_agg(replace(f.value, '-', ' ') || coalesce(' ' || ch.name, ''), ' ')
                       FILTER (WHERE f.is_text) AS words
            FROM (
                SELECT DISTINCT a.key AS attribute, e #>> '{}' AS value,
                       jsonb_typeof(e) = 'string' AS is_text
                FROM (SELECT p.attributes
                      UNION ALL
                      SELECT v.attributes FROM variants v WHERE v.product_id = p.id) s (attributes)
                CROSS JOIN LATERAL jsonb_each(s.attributes) a
                CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(a.value)
                    WHEN 'array' THEN a.value ELSE jsonb_build_array(a.value) END) e
                WHERE jsonb_typeof(e) IN ('string', 'number', 'boolean')
            ) f
            LEFT JOIN attributes at ON at.slug = f.attribute
            LEFT JOIN attribute_choices ch ON ch.attribute_id = at.id AND ch.slug = f.value
        ) t ON true
    ),
    updated AS (
        UPDATE products p
        SET search_vector = setweight(to_tsvector('english', d.name), 'A')
                         || setweight(to_tsvector('english', d.tag_text), 'B')
                         || setweight(to_tsvector('english', d.description), 'C'),
            search_facets = d.facets,
            indexed_at = now(),
            index_version = p.index_version + 1
        FROM document d
        WHERE p.id = d.id
        RETURNING p.id, p.index_version
    ),
    words AS (
        SELECT DISTINCT d.id AS product_id, w.term
        FROM document d
        CROSS JOIN LATERAL regexp_split_to_table(lower(d.name || ' ' || d.tag_text),
                                                 '[^[:alnum:]]+') AS w (term)
        WHERE d.is_published AND length(w.term) BETWEEN 2 AND 40 AND w.term ~ '[[:alpha:]]'
    ),
    new_terms AS (
        -- In term order, so two indexers adding the same new words cannot deadlock.
        INSERT INTO search_terms (term, lexeme)
        SELECT term, coalesce((ts_lexize('english_stem', term))[1], '')
        FROM (SELECT DISTINCT term FROM words) w ORDER BY term
        ON CONFLICT (term) DO NOTHING
    ),
    dropped AS (
        DELETE FROM product_terms pt
        WHERE pt.product_id IN (SELECT id FROM targets)
          AND NOT EXISTS (SELECT FROM words w
                          WHERE w.product_id = pt.product_id AND w.term = pt.term)
    ),
    added AS (
        INSERT INTO product_terms (term, product_id)
        SELECT term, product_id FROM words ORDER BY term, product_id
        ON CONFLICT DO NOTHING
    )
    SELECT id, index_version FROM updated;
$$;

-- Forget words no product uses any more; returns how many. For a periodic job or after bulk loads.
CREATE FUNCTION search_prune_terms() RETURNS bigint LANGUAGE sql AS $$
    WITH pruned AS (
        DELETE FROM search_terms t
        WHERE NOT EXISTS (SELECT FROM product_terms pt WHERE pt.term = t.term)
        RETURNING 1
    )
    SELECT count(*) FROM pruned;
$$;

SELECT count(*) FROM search_index_products(ARRAY(SELECT id FROM products));
