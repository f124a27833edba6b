-- PostgreSQL search: the search document (weighted tsvector and flattened attribute values), built
-- by one function for one product or many, and the vocabulary behind prefix completion, typo
-- correction and "did you mean".

-- Every attribute value a product or any of its variants carries, as 'slug=value' (slugs have no
-- '='): a filter tests it with one array overlap, a facet counts it without reading jsonb or
-- variants. No index: facets need the rows that fail a filter too, so filters never drive a scan.
ALTER TABLE products ADD COLUMN search_facets text[] NOT NULL DEFAULT '{}';

-- Autocomplete: names starting with what is typed.
CREATE INDEX products_name_prefix ON products (lower(name) text_pattern_ops) WHERE is_published;

-- Every search scans the GIN pending list linearly: with the default 4MB, a day of reindexing
-- adds milliseconds to each query until vacuum merges it (2,500 pending products: +1 ms).
ALTER INDEX products_search SET (gin_pending_list_limit = 512);

-- Distinct words of published products' names, category names and attribute values. Indexing a
-- product adds its words; search_rebuild_terms() also forgets the words no published product has
-- any more (run it after bulk loads and periodically: until then a forgotten product's words can
-- still complete or correct a query, which then finds nothing and suggests nothing).
CREATE TABLE search_terms (
    term    text PRIMARY KEY CHECK (length(term) BETWEEN 2 AND 40),
    -- The english stem, so "shoes" is known when only "shoe" was indexed ('' for stop words).
    lexeme  text NOT NULL
);
-- GiST, not GIN: only GiST orders by distance (term <-> $1), which needs no similarity threshold.
CREATE INDEX search_terms_trigram ON search_terms USING gist (term gist_trgm_ops);
CREATE INDEX search_terms_prefix ON search_terms (term text_pattern_ops);
CREATE INDEX search_terms_lexeme ON search_terms (lexeme);

-- The words of a text as search_terms keeps them.
CREATE FUNCTION search_words(body text) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT DISTINCT w FROM regexp_split_to_table(lower(body), '[^[:alnum:]]+') AS w
    WHERE length(w) BETWEEN 2 AND 40 AND w ~ '[[:alpha:]]'
$$;

-- The search document of the given products: name (weight A); the names of the category and its
-- ancestors, attribute values and their choice names (B); description (C). Also the products'
-- search_facets and, for published ones, their words in search_terms.
-- storage/products.py's INDEX_PRODUCT calls it for one id; bulk loads call it for many.
CREATE FUNCTION search_index_products(ids bigint[])
RETURNS TABLE (product_id bigint, index_version integer)
LANGUAGE sql AS $$
    WITH targets AS MATERIALIZED (
        SELECT DISTINCT id FROM unnest(ids) AS t (id)
    ),
    document AS MATERIALIZED (
        SELECT p.id, p.name, p.description, p.is_published,
               coalesce(t.facets, '{}') AS facets,
               concat_ws(' ', (SELECT string_agg(c.name, ' ')
                               FROM categories own JOIN categories c ON c.id = ANY (own.path)
                               WHERE own.id = p.category_id), t.words) AS tag_text
        FROM products p
        JOIN targets USING (id)
        -- Per product (LATERAL), not one GROUP BY joined back: the planner guesses 10 rows for
        -- unnest(ids) and would join a GROUP BY of every product in a nested loop.
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
    new_terms AS (
        -- In term order, so two indexers adding the same new words cannot deadlock.
        INSERT INTO search_terms (term, lexeme)
        SELECT term, coalesce((ts_lexize('english_stem', term))[1], '')
        FROM (SELECT DISTINCT w.term
              FROM document d CROSS JOIN LATERAL search_words(d.name || ' ' || d.tag_text) w (term)
              WHERE d.is_published) words
        ORDER BY term
        ON CONFLICT (term) DO NOTHING
    )
    SELECT id, index_version FROM updated;
$$;

-- Make search_terms exactly the words of the published products' documents (as indexed: it
-- reads their search_facets); returns how many words there are.
CREATE FUNCTION search_rebuild_terms() RETURNS bigint LANGUAGE sql AS $$
    WITH words AS MATERIALIZED (
        SELECT DISTINCT w.term FROM (
            SELECT name FROM products WHERE is_published
            UNION ALL
            SELECT c.name FROM categories c
            WHERE EXISTS (SELECT FROM products p JOIN categories own ON own.id = p.category_id
                          WHERE p.is_published AND c.id = ANY (own.path))
            UNION ALL
            SELECT replace(v.value, '-', ' ') || coalesce(' ' || ch.name, '')
            FROM (SELECT DISTINCT f FROM products, unnest(search_facets) f WHERE is_published) pf
            CROSS JOIN LATERAL (SELECT split_part(pf.f, '=', 1) AS attribute,
                                       substr(pf.f, strpos(pf.f, '=') + 1) AS value) v
            LEFT JOIN attributes at ON at.slug = v.attribute
            LEFT JOIN attribute_choices ch ON ch.attribute_id = at.id AND ch.slug = v.value
            -- Booleans are no words (search_index_products takes strings only).
            WHERE v.value NOT IN ('true', 'false')
        ) texts (body)
        CROSS JOIN LATERAL search_words(texts.body) w (term)
    ),
    forgotten AS (
        DELETE FROM search_terms t WHERE NOT EXISTS (SELECT FROM words w WHERE w.term = t.term)
    ),
    added AS (
        INSERT INTO search_terms (term, lexeme)
        SELECT term, coalesce((ts_lexize('english_stem', term))[1], '') FROM words ORDER BY term
        ON CONFLICT (term) DO NOTHING
    )
    SELECT count(*) FROM words;
$$;

SELECT count(*) FROM search_index_products(ARRAY(SELECT id FROM products));
