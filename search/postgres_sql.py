"""The statements search.postgres runs as they are: what search_terms says about a query's words
(RESOLVE_TERMS), the products a SKU names, suggestions, and the upkeep of the documents.

SEARCH and LIST, which build_search fills in for each query, live in search.postgres_query.
"""

RESOLVE_TERMS = """
    WITH t AS MATERIALIZED (
        -- generate_series with constants, not unnest($1): the same row estimate whatever the
        -- words, so PostgreSQL soon reuses one generic plan instead of planning every call.
        SELECT u.token, u.ord, coalesce((ts_lexize('english_stem', u.token))[1], '') AS lexeme
        FROM generate_series(1, 8) AS i (ord)
        CROSS JOIN LATERAL (SELECT ($1::text[])[i.ord] AS token, i.ord) u
        WHERE u.token IS NOT NULL
    ),
    k AS MATERIALIZED (
        SELECT t.token, t.ord, t.lexeme,
               EXISTS (SELECT FROM search_terms s
                       WHERE s.lexeme = t.lexeme AND t.lexeme <> '') AS known,
               ARRAY(SELECT s.term FROM search_terms s
                     WHERE t.ord = cardinality($1::text[])
                       AND s.term ~>=~ t.token AND s.term ~<~ $2 AND s.term <> t.token
                     ORDER BY length(s.term), s.term LIMIT 10) AS completions
        FROM t
    )
    SELECT known OR lexeme = '' AS known, completions,
           CASE WHEN NOT known AND cardinality(completions) = 0 AND length(token) >= 4
                     AND token ~ '^[[:alpha:]]+$' AND lexeme <> ''
                THEN ARRAY(SELECT s.term FROM search_terms s ORDER BY s.term <-> k.token LIMIT 20)
                ELSE '{}' END AS neighbours
    FROM k ORDER BY ord
"""
# Product ids with a SKU equal to the (upper-cased) text, or starting with it.
MATCH_SKUS = """
    SELECT ARRAY(SELECT product_id FROM variants WHERE sku = $1) AS exact,
           ARRAY(SELECT DISTINCT product_id FROM (
               SELECT product_id FROM variants
               WHERE sku ~>=~ $1 AND sku ~<~ $2 AND sku <> $1 LIMIT 100) v) AS prefix
"""
# Names starting with the typed text (products_name_prefix), then names whose words match it,
# each part bounded so a two-letter prefix costs no more than a long one; one product per name.
SUGGEST = """
    SELECT id, slug, name FROM (
        SELECT DISTINCT ON (lower(name)) id, slug, name, starts
        FROM (
            (SELECT id, slug, name, true AS starts FROM products
             WHERE is_published AND lower(name) ~>=~ $2 AND lower(name) ~<~ $3
             ORDER BY lower(name), id LIMIT 200)
            UNION ALL
            (SELECT id, slug, name, false FROM products
             WHERE is_published AND search_vector @@ to_tsquery('english', $1) LIMIT 200)
        ) candidates
        ORDER BY lower(name), starts DESC, id
    ) named
    ORDER BY starts DESC, word_similarity($4, name) DESC, length(name), name, id
    LIMIT $5
"""
REMOVE_PRODUCT = """
    UPDATE products SET search_vector = NULL, search_facets = '{}', indexed_at = now()
    WHERE id = $1
"""
REBUILD_TERMS = "SELECT search_rebuild_terms()"
