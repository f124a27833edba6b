"""PostgreSQL search: weighted tsvector + GIN, search_terms for prefixes, typos and "did you mean".

A text query takes two statements on the read executor. RESOLVE_TERMS looks each word up in
search_terms (migration 0006): is it known (same english stem as an indexed word of a published
product), which known words complete the last one (typing "runni" must reach "running", whose
stem "run" the prefix 'runni':* misses), and, for an unknown word, its nearest known words by
trigram distance (GiST KNN: no similarity threshold to tune); the closest of those within one or
two edits (a transposition counts once, so "iphnoe" -> "iphone") becomes its correction. The
answer is cached for `terms_ttl` seconds. SEARCH then matches `search_vector @@ corrected`, which
ANDs the words, each ORed with its completions and correction, the last one a prefix
(`'iph':*`); or, by MATCH_SKUS, a SKU equal to the upper-cased text or starting with it.
Text with websearch syntax (quotes, -word, or) goes through websearch_to_tsquery as typed
instead; plain words make the same AND query, plus the prefix. Scores are tiers (SKU, the literal
query within the name, anywhere, the corrected query within the name) plus ts_rank within a tier,
so a name match always outranks a description match; pages are keysets on (sort key, id); facets are
counted in the same statement over the same materialised rows.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from search.backend import (
    PRICE_BUCKETS,
    Facets,
    FacetValue,
    InvalidCursor,
    SearchHit,
    SearchQuery,
    SearchResult,
    Sort,
    Suggestion,
    price_bucket_label,
)
from storage import products
from storage.database import Executor, ReadPool

TOKEN = re.compile(r"[^\W_]+")
OPERATORS = re.compile(r'"|(?:^|\s)-\w|(?:^|\s)or(?:\s|$)', re.IGNORECASE)
SKU = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,63}")
MAX_TOKENS = 8
MAX_TOKEN_LENGTH = 40
SKU_PREFIX_MIN = 3  # shorter prefixes match too many SKUs to mean one
DID_YOU_MEAN_BELOW = 3  # offer the correction when the text as typed finds fewer products
FACET_VALUES_MAX = 50

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
# Product ids with a SKU equal to the (upper-cased) text, or starting with it.
MATCH_SKUS = """
    SELECT ARRAY(SELECT product_id FROM variants WHERE sku = $1) AS exact,
           ARRAY(SELECT DISTINCT product_id FROM (
               SELECT product_id FROM variants
               WHERE sku ~>=~ $1 AND sku ~<~ $2 AND sku <> $1 LIMIT 100) v) AS prefix
"""
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
LIST = """
    SELECT p.id, p.slug, p.name, p.price_min, p.price_max, p.currency, p.in_stock,
           0::float8 AS score, {sort_column}
    FROM products p
    WHERE {where} {after}
    ORDER BY {order}
    LIMIT {limit}
"""
# Per sort: the column `rows` carries, ORDER BY ({t} is a table prefix), the column's type for
# the keyset parameter, and the comparison that means "after". NULL prices sort last both ways.
SORT_KEYS: dict[Sort, tuple[str, str, str, str]] = {
    "relevance": ("score", "{t}score DESC, {t}id DESC", "float8", "<"),
    "price_asc": ("price_up", "{t}price_up, {t}id", "bigint", ">"),
    "price_desc": ("price_down", "{t}price_down DESC, {t}id DESC", "bigint", "<"),
    "newest": ("created_at", "{t}created_at DESC, {t}id DESC", "text", "<"),
    "name": ("name", "{t}name, {t}id", "text", ">"),
}
SORT_COLUMNS: dict[Sort, str] = {
    "relevance": "{score} AS score",
    "price_asc": "coalesce(p.price_min, 9223372036854775807) AS price_up",
    "price_desc": "coalesce(p.price_min, -1) AS price_down",
    "newest": "p.created_at",
    "name": "p.name",
}
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


@dataclass(frozen=True)
class Word:
    """One word of the query and what search_terms knows about it."""

    token: str
    known: bool = True
    completions: tuple[str, ...] = ()
    correction: str | None = None


def tokenize(text: str) -> list[str]:
    """The query's words, lower-cased, as search_terms stores them (at most MAX_TOKENS)."""
    return [t[:MAX_TOKEN_LENGTH] for t in TOKEN.findall(text.lower())][:MAX_TOKENS]


def uses_operators(text: str) -> bool:
    """Whether the text uses websearch syntax ("phrase", -word, or), which we then honour."""
    return OPERATORS.search(text) is not None


def sku_of(text: str) -> str | None:
    """The text as a SKU (upper-cased), or None when it cannot be one."""
    candidate = text.strip().upper()
    return candidate if SKU.fullmatch(candidate) else None


def prefix_end(prefix: str) -> str:
    """The smallest string above every string starting with prefix (for `~<~` range scans)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, transpositions."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def allowed_edits(token: str) -> int:
    """How many typos a word may carry: none below 4 letters, one up to 7, then two."""
    return 0 if len(token) < 4 else 1 if len(token) < 8 else 2


def closest(token: str, neighbours: Sequence[str]) -> str | None:
    """The neighbour fewest edits away (within allowed_edits), earliest on a tie."""
    best: tuple[int, str] | None = None
    for term in neighbours:
        distance = edit_distance(token, term)
        if 0 < distance <= allowed_edits(token) and (best is None or distance < best[0]):
            best = (distance, term)
    return None if best is None else best[1]


def _lexeme(word: str, *, prefix: bool = False, weight: str = "") -> str:
    quoted = "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
    suffix = ("*" if prefix else "") + weight
    return f"{quoted}:{suffix}" if suffix else quoted


def tsquery_text(words: Sequence[Word], *, corrected: bool, weight: str = "") -> str:
    """to_tsquery input: every word (or a completion or, if corrected, its correction), the
    last one as a prefix; weight 'A' restricts the match to names."""
    groups = []
    for position, word in enumerate(words):
        alternatives = [_lexeme(word.token, prefix=position == len(words) - 1, weight=weight)]
        alternatives += [_lexeme(term, weight=weight) for term in word.completions]
        if corrected and word.correction is not None:
            alternatives.append(_lexeme(word.correction, weight=weight))
        groups.append("(" + " | ".join(alternatives) + ")")
    return " & ".join(groups)


def did_you_mean(words: Sequence[Word]) -> str | None:
    """The query with each correction applied, or None when nothing was corrected."""
    if all(word.correction is None for word in words):
        return None
    return " ".join(word.correction or word.token for word in words)


def check_after(sort: Sort, after: tuple[object, ...] | None) -> tuple[Any, Any]:
    """The keyset values of `after` for this sort ((None, None) for the first page).

    Raises InvalidCursor unless `after` is (sort, key, id) with the key type of that sort.
    """
    if after is None:
        return None, None
    if len(after) != 3 or after[0] != sort:
        raise InvalidCursor(sort)
    _, key, last_id = after
    if not isinstance(last_id, int) or isinstance(last_id, bool) or isinstance(key, bool):
        raise InvalidCursor(sort)
    if sort == "relevance" and isinstance(key, int | float) and math.isfinite(key):
        return float(key), last_id
    if sort in ("price_asc", "price_desc") and isinstance(key, int):
        return key, last_id
    if sort == "name" and isinstance(key, str):
        return key, last_id
    if sort == "newest" and isinstance(key, str):
        try:
            datetime.fromisoformat(key)
        except ValueError:
            raise InvalidCursor(sort) from None
        return key, last_id
    raise InvalidCursor(sort)


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


class Arguments:
    """Collects a statement's arguments; each call returns the placeholder of its value."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, sql_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{sql_type}"


def build_search(query: SearchQuery, text: TextMatch | None) -> tuple[str, list[Any]]:
    """SEARCH for one query, from fixed fragments; every value is a $n argument.

    Raises InvalidCursor. Without text, a category filter restricts the rows (so the category
    facet counts only the filtered categories: no scan of the whole catalog per category page).
    """
    arg = Arguments()
    column, order, key_type, after_operator = SORT_KEYS[query.sort]
    where = ["p.is_published"]
    fails: list[tuple[str, str]] = []  # (SQL true when the row fails the filter, its facet)
    text_query = text_from = ""
    score, literal_hit = "0::float8", "true"
    if text is not None:
        text_query = TEXT_QUERY.format(
            literal=arg(text.literal, "text"),
            web=arg(text.web, "text"),
            corrected=arg(text.corrected, "text"),
            literal_name=arg(text.literal_name, "text"),
            corrected_name=arg(text.corrected_name, "text"),
        )
        text_from = ", q"
        if text.sku_exact or text.sku_prefix:
            where.append(
                SKU_MATCH.format(sku_ids=arg([*text.sku_exact, *text.sku_prefix], "bigint[]"))
            )
            sku_score = SKU_SCORE.format(
                exact=arg(list(text.sku_exact), "bigint[]"),
                prefix=arg(list(text.sku_prefix), "bigint[]"),
            )
        else:
            where.append(TEXT_MATCH)
            sku_score = ""
        score = SCORE.format(sku_score=sku_score)
        if text.corrected is not None:
            literal_hit = "p.search_vector @@ q.literal"
    if query.in_stock is not None:
        where.append(f"p.in_stock = {arg(query.in_stock, 'boolean')}")
    if query.category_ids is not None:
        in_categories = f"p.category_id = ANY ({arg(list(query.category_ids), 'bigint[]')})"
        if text is None:
            where.append(in_categories)
        else:
            fails.append((f"NOT coalesce({in_categories}, false)", ":category"))
    bounds = []
    if query.price_min is not None:
        bounds.append(f"p.price_min >= {arg(query.price_min, 'bigint')}")
    if query.price_max is not None:
        bounds.append(f"p.price_min <= {arg(query.price_max, 'bigint')}")
    if bounds:
        fails.append((f"NOT coalesce({' AND '.join(bounds)}, false)", ":price"))
    for slug, values in sorted(query.attributes.items()):
        if values:
            accepted = arg([f"{slug}={value}" for value in values], "text[]")
            fails.append((f"NOT (p.search_facets && {accepted})", slug))
    after = ""
    list_only = text is None and not query.facets
    if query.after is not None:
        key, last_id = check_after(query.sort, query.after)
        key_sql = arg(key, key_type) + ("::timestamptz" if query.sort == "newest" else "")
        # LIST filters products themselves: the sort column by its expression, not its name.
        sort_key = SORT_COLUMNS[query.sort].split(" AS ")[0] if list_only else column
        after = f"AND ({sort_key}, id) {after_operator} ({key_sql}, {arg(last_id, 'bigint')})"
    if list_only:
        return LIST.format(
            sort_column=SORT_COLUMNS[query.sort],
            where="\n      AND ".join([*where, *(f"NOT {check}" for check, _ in fails)]),
            after=after,
            order=order.format(t=""),
            limit=arg(max(query.limit, 1) + 1, "integer"),
        ), arg.values
    sql = SEARCH.format(
        text_query=text_query,
        sort_column=SORT_COLUMNS[query.sort].format(score=score),
        literal_hit=literal_hit,
        fail_count=" + ".join(f"({check})::int" for check, _ in fails) or "0",
        failed=("CASE " + " ".join(f"WHEN {c} THEN {arg(k, 'text')}" for c, k in fails) + " END")
        if fails
        else "NULL::text",
        text_from=text_from,
        where="\n              AND ".join(where),
        after=after,
        order=order.format(t=""),
        limit=arg(max(query.limit, 1) + 1, "integer"),
        hit_score="h.score" if query.sort == "relevance" else score,
        key=column,
        hit_order=order.format(t="h."),
        buckets=arg([low for low, _ in PRICE_BUCKETS], "bigint[]"),
        facet_values_max=FACET_VALUES_MAX,
    )
    return sql, arg.values


class PostgresSearch:
    """SearchBackend over PostgreSQL: reads through `reader` (the replica), writes on `primary`."""

    name = "postgres"

    def __init__(
        self,
        reader: Executor,
        primary: asyncpg.Pool,
        *,
        terms_ttl: float = 30.0,
        terms_cached: int = 10_000,
    ) -> None:
        self.reader = reader
        self.primary = primary
        # What search_terms says about a query's words changes only when the vocabulary does:
        # remembering it for terms_ttl seconds saves a round trip for repeated queries, at the
        # price of a new word being completed or corrected up to terms_ttl seconds late.
        self.terms_ttl = terms_ttl
        self.terms_cached = terms_cached
        self._terms: OrderedDict[tuple[str, ...], tuple[float, tuple[Word, ...]]] = OrderedDict()

    async def resolve(self, tokens: Sequence[str]) -> list[Word]:
        """The query's words with their completions (last word) and corrections."""
        if not tokens:
            return []
        key = tuple(tokens)
        cached = self._terms.get(key)
        if cached is not None and cached[0] > time.monotonic():
            self._terms.move_to_end(key)
            return list(cached[1])
        rows = await self.reader.fetch(RESOLVE_TERMS, list(tokens), prefix_end(tokens[-1]))
        words = [
            Word(
                token=token,
                known=row["known"],
                completions=tuple(row["completions"]),
                correction=closest(token, row["neighbours"]),
            )
            for token, row in zip(tokens, rows, strict=True)
        ]
        if self.terms_ttl > 0:
            self._terms[key] = (time.monotonic() + self.terms_ttl, tuple(words))
            self._terms.move_to_end(key)
            while len(self._terms) > self.terms_cached:
                self._terms.popitem(last=False)
        return words

    async def match_skus(self, text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Products with the text as a SKU, and with a SKU starting with it (SKU_PREFIX_MIN+).

        Only text with a digit or one of "._-" is looked up: a plain word is far more often a
        word than a SKU, and the text search finds a product named so anyway.
        """
        sku = sku_of(text)
        if sku is None or sku.isalpha():
            return (), ()
        end = prefix_end(sku) if len(sku) >= SKU_PREFIX_MIN else sku  # sku..sku: no prefixes
        row = await self.reader.fetchrow(MATCH_SKUS, sku, end)
        return tuple(row["exact"]), tuple(row["prefix"])

    async def search(self, query: SearchQuery) -> SearchResult:
        """One page of published products with facets; raises InvalidCursor."""
        check_after(query.sort, query.after)
        text = query.text.strip()
        words: list[Word] = []
        match: TextMatch | None = None
        if text and uses_operators(text):
            match = TextMatch(literal=None, web=text)
        elif text:
            words = await self.resolve(tokenize(text))
            sku_exact, sku_prefix = await self.match_skus(text)
            corrected = did_you_mean(words) is not None
            match = TextMatch(
                literal=tsquery_text(words, corrected=False) if words else None,
                web=text,
                corrected=tsquery_text(words, corrected=True) if corrected else None,
                literal_name=tsquery_text(words, corrected=False, weight="A") if words else None,
                corrected_name=tsquery_text(words, corrected=True, weight="A")
                if corrected
                else None,
                sku_exact=sku_exact,
                sku_prefix=sku_prefix,
            )
        sql, args = build_search(query, match)
        reader = self.reader
        if query.fresh_for is not None and isinstance(reader, ReadPool):
            reader = await reader.fresh_for(query.fresh_for)
        limit = max(query.limit, 1)
        if match is None and not query.facets:
            return self._page(query, await reader.fetch(sql, *args), limit)
        row = await reader.fetchrow(sql, *args)
        records = row["hits"]
        page = self._page(query, records, limit)
        correction = did_you_mean(words)
        return SearchResult(
            hits=page.hits,
            facets=_facets(row),
            total=row["total"],
            next_after=page.next_after,
            # Only when the correction finds more: its word may belong to no product any more.
            did_you_mean=correction
            if row["literal_total"] < DID_YOU_MEAN_BELOW and row["total"] > row["literal_total"]
            else None,
            backend=self.name,
        )

    def _page(self, query: SearchQuery, records: Sequence[Any], limit: int) -> SearchResult:
        """A page of hits from (hit fields..., sort key) records, one more than `limit` if any
        follow; only hits and next_after are set (the facets are the caller's)."""
        hits = [SearchHit(*record[:8]) for record in records[:limit]]
        next_after: tuple[object, ...] | None = None
        if len(records) > limit:
            last_key = records[limit - 1][8]
            if isinstance(last_key, datetime):
                last_key = last_key.isoformat()
            next_after = (query.sort, last_key, hits[-1].product_id)
        return SearchResult(hits, None, None, next_after, None, self.name)

    async def suggest(self, prefix: str, limit: int = 8) -> list[Suggestion]:
        """Published products whose name matches the words typed so far (the last one a prefix)."""
        prefix = prefix.strip()
        if len(prefix) < 2 or uses_operators(prefix):
            return []
        words = await self.resolve(tokenize(prefix))
        if not words:
            return []
        lowered = prefix.lower()
        rows = await self.reader.fetch(
            SUGGEST,
            tsquery_text(words, corrected=True, weight="A"),
            lowered,
            prefix_end(lowered),
            prefix,
            limit,
        )
        return [Suggestion(text=r["name"], slug=r["slug"], product_id=r["id"]) for r in rows]

    async def index_product(self, product_id: int, conn: asyncpg.Connection | None = None) -> None:
        """Rebuild one product's search document on the primary; raises ProductNotFound."""
        if conn is not None:
            await products.index(conn, product_id)
            return
        async with self.primary.acquire() as own:
            await products.index(own, product_id)

    async def remove_product(self, product_id: int) -> None:
        """Clear one product's search document on the primary; idempotent."""
        await self.primary.execute(REMOVE_PRODUCT, product_id)

    async def rebuild_terms(self) -> int:
        """Make search_terms the words of the published products again; returns their number."""
        words: int = await self.primary.fetchval(REBUILD_TERMS)
        return words


def _facets(row: Any) -> Facets:
    bucket_counts = dict(json.loads(row["price_ranges"]))
    attributes: dict[str, list[FacetValue]] = {}
    for attribute, value, count in json.loads(row["attributes"]):
        attributes.setdefault(attribute, []).append(FacetValue(value, count))
    return Facets(
        categories=[FacetValue(int(c), n) for c, n in json.loads(row["categories"])],
        attributes=attributes,
        price_ranges=[
            FacetValue(price_bucket_label(low, high), bucket_counts.get(position, 0))
            for position, (low, high) in enumerate(PRICE_BUCKETS, start=1)
        ],
    )
