"""The SEARCH and LIST statements of the PostgreSQL search backend, and build_search, which
fills them in for one query.

Fixed fragments only: every value of a query goes in as a $n argument (Arguments), so the
statements stay few and PostgreSQL can reuse their plans. search.postgres runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from search.backend import FACET_VALUES_MAX, PRICE_BUCKETS, SearchQuery, Sort, check_after

# A text query's CTE. {literal}: to_tsquery input (NULL: websearch_to_tsquery({web}));
# {corrected}: with typo corrections (NULL: none); the *_name variants match names only.
TEXT_QUERY = """
    q AS MATERIALIZED (
        SELECT literal, coalesce(to_tsquery('english', {corrected}), literal) AS corrected,
               to_tsquery('english', {literal_name}) AS literal_name,
               to_tsquery('english', {corrected_name}) AS corrected_name
        FROM (SELECT coalesce(to_tsquery('english', {literal}),
                              websearch_to_tsquery('english', {web})) AS literal) l
    ),"""
TEXT_MATCH = "p.search_vector @@ (SELECT corrected FROM q)"
SKU_MATCH = "(p.search_vector @@ (SELECT corrected FROM q) OR p.id = ANY ({sku_ids}))"
SKU_SCORE = "CASE WHEN p.id = ANY ({exact}) THEN 10 WHEN p.id = ANY ({prefix}) THEN 5 ELSE 0 END +"
# Tiers that never overlap (ts_rank with normalisation 32 is below 1): exact SKU, SKU prefix,
# the literal query within the name, anywhere, the corrected query within the name. Within a
# tier ts_rank, not ts_rank_cd: on these documents ts_rank_cd costs about 7.5 us per matching
# row against 1 us, the largest cost of a query after reading the rows, and the tiers already
# say where the words matched. (Websearch syntax has no name-only form: ts_rank_cd with only
# weight A tells whether a cover of the query lies in the name.)
SCORE = """
    ({sku_score} CASE WHEN coalesce(p.search_vector @@ q.literal_name,
                          ts_rank_cd('{{0,0,0,1}}', p.search_vector, q.literal) > 0) THEN 3
            WHEN p.search_vector @@ q.literal THEN 2
            WHEN p.search_vector @@ q.corrected_name THEN 1
            ELSE 0 END
     + 0.99 * ts_rank('{{0.1,0.2,0.4,1.0}}', p.search_vector, q.corrected, 32))::float8"""
# `rows`: the matching products that fail at most one facet filter, and which (`failed`:
# ':category', ':price' or an attribute slug). A facet counts the rows that fail no filter but
# its own; hits and total are the rows that fail none.
SEARCH = """
    WITH {text_query}
    rows AS MATERIALIZED (
        SELECT * FROM (
            SELECT p.id, p.category_id, p.price_min, p.search_facets, {sort_column},
                   {literal_hit} AS literal_hit, {fail_count} AS fail_count, {failed} AS failed
            FROM products p {text_from}
            WHERE {where}
        ) r
        WHERE fail_count <= 1
    ),
    hits AS (
        SELECT * FROM rows WHERE fail_count = 0 {after} ORDER BY {order} LIMIT {limit}
    )
    SELECT
        ARRAY(SELECT ROW(p.id, p.slug, p.name, p.price_min, p.price_max, p.currency, p.in_stock,
                         {hit_score}, h.{key})
              FROM hits h JOIN products p ON p.id = h.id {text_from}
              ORDER BY {hit_order}) AS hits,
        totals.total, totals.literal_total,
        (SELECT coalesce(jsonb_agg(jsonb_build_array(category_id, n)
                                   ORDER BY n DESC, category_id), '[]')::text
         FROM (SELECT category_id, count(*) AS n FROM rows
               WHERE (fail_count = 0 OR failed = ':category') AND category_id IS NOT NULL
               GROUP BY category_id) c) AS categories,
        (SELECT coalesce(jsonb_agg(jsonb_build_array(bucket, n)), '[]')::text
         FROM (SELECT width_bucket(price_min, {buckets}) AS bucket, count(*) AS n FROM rows
               WHERE (fail_count = 0 OR failed = ':price') AND price_min >= 0
               GROUP BY 1) b) AS price_ranges,
        (SELECT coalesce(jsonb_agg(jsonb_build_array(split_part(f, '=', 1),
                                                     substr(f, strpos(f, '=') + 1), n)
                                   ORDER BY split_part(f, '=', 1), n DESC, f), '[]')::text
         FROM (SELECT f, n, row_number() OVER (PARTITION BY split_part(f, '=', 1)
                                               ORDER BY n DESC, f) AS rank
               FROM (SELECT f, count(*) AS n
                     FROM (SELECT unnest(search_facets) AS f, fail_count, failed FROM rows
                           WHERE fail_count = 0 OR failed NOT IN (':category', ':price')) v
                     WHERE fail_count = 0 OR failed = split_part(f, '=', 1)
                     GROUP BY f) counted
               WHERE split_part(f, '=', 1) IN (SELECT slug FROM attributes WHERE is_filterable)
              ) ranked
         WHERE rank <= {facet_values_max}) AS attributes
    FROM (SELECT count(*) AS total, count(*) FILTER (WHERE literal_hit) AS literal_total
          FROM rows WHERE fail_count = 0) totals
"""
# A product list without text or facets: only the page is read, in index order (0008).
# The page's products each with its first image (by position), in one statement.
FIRST_IMAGE = """LEFT JOIN LATERAL (
        SELECT i.path, i.width, i.height, i.alt, i.renditions FROM product_images i
        WHERE i.product_id = l.id ORDER BY i.position, i.id LIMIT 1
    ) image ON true"""
LIST = """
    SELECT l.*, image.* FROM (
        SELECT p.id, p.slug, p.name, p.price_min, p.price_max, p.currency, p.in_stock,
               0::float8 AS score, {sort_column}
        FROM products p
        WHERE {where} {after}
        ORDER BY {order}
        LIMIT {limit}
    ) l {first_image}
    ORDER BY {order}
"""
# The same for categories: each category's page in its own index order ((category_id, sort
# key, id): migration 0010), then merged. Filtering one sort index by category instead reads past
# every other category's products: thousands of rows for a leaf.
LIST_BY_CATEGORY = """
    SELECT l.*, image.* FROM (
        SELECT c_page.* FROM unnest({categories}) AS c (id)
        CROSS JOIN LATERAL (
            SELECT p.id, p.slug, p.name, p.price_min, p.price_max, p.currency, p.in_stock,
                   0::float8 AS score, {sort_column}
            FROM products p
            WHERE {where} {after}
            ORDER BY {order}
            LIMIT {limit}
        ) c_page
        ORDER BY {order}
        LIMIT {limit}
    ) l {first_image}
    ORDER BY {order}
"""
# A category slug's category and descendants (an empty array for an unknown slug), so a category
# page needs no round trip of its own to expand the slug.
CATEGORY_SUBTREE = """ARRAY(
        SELECT sub.id FROM categories root JOIN categories sub ON sub.path @> ARRAY[root.id]
        WHERE root.slug = {slug})"""
# Per sort: the column `rows` carries, ORDER BY ({t} is a table prefix), the column's type for
# the keyset parameter, and the comparison that means "after". NULL prices sort last both ways.
SORT_KEYS: dict[Sort, tuple[str, str, str, str]] = {
    "relevance": ("score", "{t}score DESC, {t}id DESC", "float8", "<"),
    "price_asc": ("price_up", "{t}price_up, {t}id", "bigint", ">"),
    "price_desc": ("price_down", "{t}price_down DESC, {t}id DESC", "bigint", "<"),
    "newest": ("created_at", "{t}created_at DESC, {t}id DESC", "text", "<"),
    "name": ("name_key", "{t}name_key, {t}id", "text", ">"),
}
SORT_COLUMNS: dict[Sort, str] = {
    "relevance": "{score} AS score",
    # search.backend.MISSING_PRICE_ASC and _DESC, written out: the SQL stays fixed text.
    "price_asc": "coalesce(p.price_min, 9223372036854775807) AS price_up",
    "price_desc": "coalesce(p.price_min, -1) AS price_down",
    "newest": "p.created_at",
    "name": "lower(p.name) AS name_key",  # case-insensitive: "iPhone" among the i-s
}


@dataclass(frozen=True)
class TextMatch:
    """What a query's text adds to SEARCH: to_tsquery inputs (see TEXT_QUERY) and SKU matches."""

    literal: str | None
    web: str
    corrected: str | None = None
    literal_name: str | None = None
    corrected_name: str | None = None
    sku_exact: tuple[int, ...] = ()  # products with the text as a SKU
    sku_prefix: tuple[int, ...] = ()  # products with a SKU starting with it


def is_list(query: SearchQuery, text: TextMatch | None) -> bool:
    """Whether build_search makes a LIST statement (rows of hits, each with its first image)
    rather than SEARCH (one row: hits, facets, totals).

    No text and no facets: LIST reads only the page. Relevance without text is a tie of zeros,
    which SEARCH orders by id (the API refuses it).
    """
    return text is None and not query.facets and query.sort != "relevance"


def list_limit(limit: int) -> str:
    """LIMIT of a list statement (one row more than the page, to know whether another follows).

    The one number written into the SQL rather than passed as $n, on purpose: with LIMIT $n
    PostgreSQL's generic plan must assume 10% of the rows, so it re-plans every list call
    (a custom plan each time); with a constant it keeps one plan per statement. int()
    makes it a number whatever the caller passes, and the API's pages are 1 to 100 items
    (web.listing), so at most 100 variants of each statement exist.
    """
    return str(max(int(limit), 1) + 1)


class Arguments:
    """Collects a statement's arguments; each call returns the placeholder of its value."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, sql_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{sql_type}"


@dataclass(frozen=True)
class TextParts:
    """What a query's text puts into SEARCH; the defaults are those of a query without text."""

    query: str = ""  # the CTE `q` (TEXT_QUERY)
    source: str = ""  # joins `q` to the products
    match: str | None = None  # the WHERE condition a product must meet
    score: str = "0::float8"
    literal_hit: str = "true"  # whether a row matches without typo corrections


class Filter(NamedTuple):
    """A facet filter: SQL true when a row fails it (never NULL: SEARCH counts by it), its
    facet, and the SQL a row that passes meets, plainly, so that LIST's WHERE can use an index
    (`p.price_min >= $1 AND p.price_min <= $2` on products_price, not NOT NOT coalesce(...))."""

    fails: str
    facet: str
    passes: str


@dataclass
class Rows:
    """Which products a statement reads. Every row meets `where`; `fails` are the facet filters:
    LIST keeps the rows that pass them all, SEARCH also counts those that fail one.
    `categories`: the ids LIST_BY_CATEGORY reads page by page."""

    where: list[str]
    fails: list[Filter]
    categories: str = ""


def build_search(query: SearchQuery, text: TextMatch | None) -> tuple[str, list[Any]]:
    """SEARCH for one query, from fixed fragments; every value is a $n argument.

    Raises InvalidCursor. Without text, a category filter restricts the rows (so the category
    facet counts only the filtered categories: no scan of the whole catalog per category page).
    """
    # The parts take their arguments in the order they appear here, which numbers the $n.
    arg = Arguments()
    list_only = is_list(query, text)
    matched = text_parts(text, arg)
    rows = row_filters(query, matched, arg, list_only=list_only)
    after = keyset(query, arg, list_only=list_only)
    if list_only:
        return list_statement(query, rows, after), arg.values
    return search_statement(query, matched, rows, after, arg), arg.values


def text_parts(text: TextMatch | None, arg: Arguments) -> TextParts:
    """The text's tsqueries (the CTE `q`), its match (words, or words or SKUs) and score."""
    if text is None:
        return TextParts()
    cte = TEXT_QUERY.format(
        literal=arg(text.literal, "text"),
        web=arg(text.web, "text"),
        corrected=arg(text.corrected, "text"),
        literal_name=arg(text.literal_name, "text"),
        corrected_name=arg(text.corrected_name, "text"),
    )
    if text.sku_exact or text.sku_prefix:
        match = SKU_MATCH.format(sku_ids=arg([*text.sku_exact, *text.sku_prefix], "bigint[]"))
        sku_score = SKU_SCORE.format(
            exact=arg(list(text.sku_exact), "bigint[]"),
            prefix=arg(list(text.sku_prefix), "bigint[]"),
        )
    else:
        match, sku_score = TEXT_MATCH, ""
    return TextParts(
        query=cte,
        source=", q",
        match=match,
        score=SCORE.format(sku_score=sku_score),
        literal_hit="true" if text.corrected is None else "p.search_vector @@ q.literal",
    )


def row_filters(query: SearchQuery, matched: TextParts, arg: Arguments, *, list_only: bool) -> Rows:
    """The conditions of the text match and the filters: stock, categories, price, attributes."""
    rows = Rows(where=["p.is_published"], fails=[])
    if matched.match is not None:
        rows.where.append(matched.match)
    if query.in_stock is not None:
        rows.where.append(f"p.in_stock = {arg(query.in_stock, 'boolean')}")
    categories = category_ids(query, arg)
    if list_only and categories:
        rows.categories = categories
    elif categories:
        in_categories = f"p.category_id = ANY ({categories})"
        if matched.match is None:  # no text: see build_search
            rows.where.append(in_categories)
        else:
            rows.fails.append(
                Filter(f"NOT coalesce({in_categories}, false)", ":category", in_categories)
            )
    rows.fails += facet_filters(query, arg)
    return rows


def category_ids(query: SearchQuery, arg: Arguments) -> str:
    """The filtered categories as SQL: the subtree of a slug, or the given ids; '' for none."""
    if query.category is not None:
        return CATEGORY_SUBTREE.format(slug=arg(query.category, "text"))
    if query.category_ids is not None:
        return arg(list(query.category_ids), "bigint[]")
    return ""


def facet_filters(query: SearchQuery, arg: Arguments) -> list[Filter]:
    """The price and attribute filters."""
    fails: list[Filter] = []
    bounds = []
    if query.price_min is not None:
        bounds.append(f"p.price_min >= {arg(query.price_min, 'bigint')}")
    if query.price_max is not None:
        bounds.append(f"p.price_min <= {arg(query.price_max, 'bigint')}")
    if bounds:
        within = " AND ".join(bounds)
        fails.append(Filter(f"NOT coalesce({within}, false)", ":price", within))
    for slug, values in sorted(query.attributes.items()):
        if values:
            accepted = arg([f"{slug}={value}" for value in values], "text[]")
            has = f"p.search_facets && {accepted}"
            fails.append(Filter(f"NOT ({has})", slug, has))
    return fails


def keyset(query: SearchQuery, arg: Arguments, *, list_only: bool) -> str:
    """The keyset condition for the rows after `query.after` ('' on the first page); raises
    InvalidCursor."""
    if query.after is None:
        return ""
    column, _, key_type, after_operator = SORT_KEYS[query.sort]
    key, last_id = check_after(query.sort, query.after)
    key_sql = arg(key, key_type) + ("::timestamptz" if query.sort == "newest" else "")
    # LIST filters products themselves: the sort column by its expression, not its name.
    sort_key = SORT_COLUMNS[query.sort].split(" AS ")[0] if list_only else column
    row_id = "p.id" if list_only else "id"
    return f"AND ({sort_key}, {row_id}) {after_operator} ({key_sql}, {arg(last_id, 'bigint')})"


def list_statement(query: SearchQuery, rows: Rows, after: str) -> str:
    """LIST, or LIST_BY_CATEGORY for categories: the page's rows must pass every filter."""
    where = list(rows.where)
    if rows.categories:
        where.append("p.category_id = c.id")
    statement = LIST_BY_CATEGORY if rows.categories else LIST
    return statement.format(
        categories=rows.categories,
        sort_column=SORT_COLUMNS[query.sort],
        where="\n      AND ".join([*where, *(f.passes for f in rows.fails)]),
        after=after,
        order=SORT_KEYS[query.sort][1].format(t=""),
        limit=list_limit(query.limit),
        first_image=FIRST_IMAGE,
    )


def search_statement(
    query: SearchQuery, matched: TextParts, rows: Rows, after: str, arg: Arguments
) -> str:
    """SEARCH: the page of the rows that fail no facet filter, their total and the facets."""
    column, order, _, _ = SORT_KEYS[query.sort]
    failed = "NULL::text"
    if rows.fails:
        cases = " ".join(f"WHEN {f.fails} THEN {arg(f.facet, 'text')}" for f in rows.fails)
        failed = f"CASE {cases} END"
    limit = arg(max(query.limit, 1) + 1, "integer")
    buckets = arg([low for low, _ in PRICE_BUCKETS], "bigint[]")
    return SEARCH.format(
        text_query=matched.query,
        sort_column=SORT_COLUMNS[query.sort].format(score=matched.score),
        literal_hit=matched.literal_hit,
        fail_count=" + ".join(f"({f.fails})::int" for f in rows.fails) or "0",
        failed=failed,
        text_from=matched.source,
        where="\n              AND ".join(rows.where),
        after=after,
        order=order.format(t=""),
        limit=limit,
        hit_score="h.score" if query.sort == "relevance" else matched.score,
        key=column,
        hit_order=order.format(t="h."),
        buckets=buckets,
        facet_values_max=FACET_VALUES_MAX,
    )
