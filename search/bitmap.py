"""The built-in engine with an in-process index: PostgresSearch answering from bitmaps.

BitmapSearch is PostgresSearch (its `search` through super() is "the SQL path") plus a
search.bitmap_index.BitmapIndex of the published catalog, built at start from the primary and kept
current from the search_changes log (migration 0020, written by triggers in the transaction of
every change). A query is answered from the index when the index can answer it identically:
matches, totals, did-you-mean and every facet count are bitmap intersections; the text's words
resolve as in the SQL path (RESOLVE_TERMS, MATCH_SKUS); PostgreSQL normalises the to_tsquery
inputs once per distinct query (NORMALISE, cached) and reads the page: for relevance it ranks
only the candidates of the best score tiers, with the SQL path's own SCORE expression, so scores
are identical. Everything else takes the SQL path: websearch syntax, a query whose `fresh_for`
is past the index's LSN, an index not built yet, a product list without facets, a category slug
the index does not know. Sorts other than relevance page through the index's sort orders
(search.bitmap_sort).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter, Gauge
from pyroaring import BitMap

from search.backend import DID_YOU_MEAN_BELOW, SearchQuery, SearchResult, check_after
from search.bitmap_cards import CARDS_CACHED, CardCache
from search.bitmap_index import (
    MAX_PRODUCT_ID,
    BitmapIndex,
    Category,
    Levels,
    ProductState,
    Unsupported,
    micros,
)
from search.bitmap_rank import (
    RANK_GROUPS,
    TIER_SCORES,
    RankCache,
    all_operands,
    groups,
    matched_lexemes,
    or_operands,
    synthetic_document,
    take,
)
from search.bitmap_rank import tokens as parse
from search.postgres import PostgresSearch
from search.postgres_query import (
    FIRST_IMAGE,
    SORT_COLUMNS,
    SORT_KEYS,
    Arguments,
    TextMatch,
    text_parts,
)
from search.text import did_you_mean, tokenize, tsquery_text, uses_operators
from storage.attributes import Attribute, filterable_attributes
from storage.database import Executor
from storage.replica import GET_CURRENT_LSN, fresh_reader

log = structlog.get_logger(__name__)

QUERIES = Counter(
    "aioshop_search_index_queries_total",
    "Searches by the path that answered: bitmap (the in-process index) or sql, and why.",
    ["path"],
)
REFRESH_ERRORS = Counter(
    "aioshop_search_index_refresh_errors_total",
    "Builds and refreshes of the in-process search index that failed (retried).",
)
RANK_MISMATCHES = Counter(
    "aioshop_search_index_rank_mismatches_total",
    "Pages the index ranked otherwise than PostgreSQL (answered by the SQL path instead).",
)
# Per web process, each its own: "livemin" shows the least complete and the most behind ("livemax").
INDEX_PRODUCTS = Gauge(
    "aioshop_search_index_products",
    "Products in the in-process search index (0: not built yet; the SQL path answers).",
    multiprocess_mode="livemin",
)
INDEX_LAG = Gauge(
    "aioshop_search_index_lag_seconds",
    "Seconds since the in-process search index last caught up with the change log.",
    multiprocess_mode="livemax",
)
INDEX_BUILD_SECONDS = Gauge(
    "aioshop_search_index_build_seconds",
    "How long the last build of the in-process search index took.",
    multiprocess_mode="livemax",
)
INDEX_MEMORY = Gauge(
    "aioshop_search_index_memory_bytes",
    "The web process's resident memory grown by the last build of the in-process search index.",
    multiprocess_mode="livemax",
)

BUILD_CHUNK = 50_000  # product ids per build statement (the event loop runs between them)
CHANGES_BATCH = 5_000
GAP_SECONDS = 30.0  # a missing change position older than this was rolled back
PRUNE_SECONDS = 600  # change rows older than this are deleted
NORMALISED_CACHED = 10_000

NORMALISE = """
    SELECT to_tsquery('english', $1::text)::text, to_tsquery('english', $2::text)::text,
           to_tsquery('english', $3::text)::text, to_tsquery('english', $4::text)::text
"""
MAX_POSITION = "SELECT coalesce(max(position), 0) FROM search_changes"
CATEGORIES = "SELECT id, slug, path, name FROM categories"
MAX_ID = "SELECT coalesce(max(id), 0) FROM products"
SCALARS = """
    SELECT id, is_published, category_id, price_min, in_stock, created_at, lower(name) AS name_key,
           search_vector IS NOT NULL AS documented, {fingerprint} AS fingerprint
    FROM products WHERE id >= $1 AND id < $2
"""
# What the postings are made of, hashed: the same, a change touched the scalars only.
FINGERPRINT = "hashtextextended(coalesce(search_vector::text, '') || search_facets::text, 0) | 1"
# A lexeme's positions with their weights, "1A,9C": what ts_rank of an AND query reads.
PLACEMENT = """array_to_string(ARRAY(SELECT x.p || x.w
                                     FROM unnest(u.positions, u.weights) WITH ORDINALITY x (p, w, n)
                                     ORDER BY x.n), ',')"""
POSTINGS = """
    SELECT u.lexeme, array_to_string(u.weights, '') AS weights, {placement} AS positions,
           array_agg(p.id) AS ids
    FROM products p CROSS JOIN LATERAL unnest(p.search_vector) u
    WHERE p.id >= $1 AND p.id < $2
    GROUP BY 1, 2, 3
"""
FACET_POSTINGS = """
    SELECT f, array_agg(p.id) FROM products p CROSS JOIN LATERAL unnest(p.search_facets) f
    WHERE p.id >= $1 AND p.id < $2 GROUP BY f
"""
POSTINGS = POSTINGS.format(placement=PLACEMENT)
SCALARS = SCALARS.format(fingerprint=FINGERPRINT)
PRICES = "SELECT price_min FROM products WHERE price_min IS NOT NULL ORDER BY price_min"
CHANGES = """
    SELECT position, product_id FROM search_changes WHERE position > $1 ORDER BY position LIMIT $2
"""
CHANGED_PRODUCTS = """
    SELECT id, is_published, category_id, price_min, in_stock, created_at, lower(name) AS name_key,
           search_vector IS NOT NULL AS documented, {fingerprint} AS fingerprint,
           search_facets AS facets,
           ARRAY(SELECT u.lexeme FROM unnest(search_vector) u) AS lexemes,
           ARRAY(SELECT array_to_string(u.weights, '') FROM unnest(search_vector) u) AS weights,
           ARRAY(SELECT {placement} FROM unnest(search_vector) u) AS positions
    FROM products WHERE id = ANY ($1::bigint[])
"""
CHANGED_PRODUCTS = CHANGED_PRODUCTS.format(placement=PLACEMENT, fingerprint=FINGERPRINT)
PRUNE = "DELETE FROM search_changes WHERE changed_at < now() - make_interval(secs => $1)"
# migration 0022 logs image changes: without it a kept card could show an old image
IMAGES_LOGGED = (
    "SELECT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'search_changes_images_updated')"
)
COLLATION = "SELECT datcollate FROM pg_database WHERE datname = current_database()"
# The page: the candidates' fields and score (search.postgres_query's SCORE), in sort order,
# each with its first image (FIRST_IMAGE, as the SQL path's LIST reads it): one statement.
PAGE = """
    WITH {text_query} page AS (
        SELECT p.id, p.slug, p.name, p.price_min, p.price_max, p.currency, p.in_stock,
               {score} AS score{sort_column}
        FROM products p {text_from}
        WHERE p.id = ANY ({ids}) {match}
    )
    SELECT l.*, image.* FROM (
        SELECT id, slug, name, price_min, price_max, currency, in_stock, score,
               {key} AS sort_key
        FROM page
        WHERE true {after}
        ORDER BY {order}
        LIMIT {limit}
    ) l {first_image}
    ORDER BY {sorted}
"""


@dataclass(frozen=True)
class CatalogReference:
    """The reference data a search page is labelled with, as of the index (its vocabulary, kept
    by the same change log): the web layer reads it here instead of two statements a request."""

    # storage.attributes.filterable_attributes: the attributes shoppers filter by, by name
    attributes: tuple[Attribute, ...]
    # storage.catalog_reads.category_names, for every category
    category_names: dict[int, dict[str, Any]]


def product_state(row: asyncpg.Record, **document: Sequence[str]) -> ProductState:
    """What the index keeps of a product, from a row of SCALARS or CHANGED_PRODUCTS (`document`:
    its facets, lexemes, weights and positions, when the row carries them)."""
    return ProductState(
        id=row["id"],
        is_published=row["is_published"],
        category_id=row["category_id"],
        price_min=row["price_min"],
        in_stock=row["in_stock"],
        created_us=micros(row["created_at"]),
        name_key=row["name_key"],
        documented=row["documented"],
        fingerprint=row["fingerprint"],
        **document,
    )


class BitmapSearch(PostgresSearch):
    """PostgresSearch answering from an in-process BitmapIndex when it can (module docstring)."""

    name = "postgres"  # the SQL path's answers; the index's say "bitmap"

    def __init__(
        self,
        reader: Executor,
        primary: asyncpg.Pool,
        *,
        refresh_seconds: float = 0.15,
        terms_ttl: float = 30.0,
        freeze_after_build: bool = False,
        lists: bool = True,
        keep: bool = True,
    ) -> None:
        super().__init__(reader, primary, terms_ttl=terms_ttl)
        self.refresh_seconds = refresh_seconds
        # a web process: once built, the process's objects leave the collector's sight
        # (_freeze_long_lived)
        self.freeze_after_build = freeze_after_build
        self.index: BitmapIndex | None = None
        self.lsn = 0  # the index holds every change committed before this WAL position
        self.position = 0  # every search_changes row up to here is applied
        self._seen: set[int] = set()  # applied rows past `position`
        self._gaps: dict[int, float] = {}  # missing positions below a seen one: first noticed
        self._normalised: OrderedDict[tuple[Any, ...], tuple[str | None, ...]] = OrderedDict()
        self._caught_up = time.monotonic()
        self._rank_cache = RankCache()
        self._pruned = 0.0
        self.disabled = False  # the index cannot serve this database: the SQL path answers
        self._reference: CatalogReference | None = None
        # product lists (no text, no facets, a sort other than relevance) paged by the index and
        # answered from its cards (search.bitmap_cards); False: the SQL path answers them
        self.lists = lists
        # what the index works out for large text matches is kept between searches (False: a
        # long tail of new queries, measured)
        self.keep = keep
        self.cards = CardCache()
        # a relevance page the index ranked (PostgreSQL's ts_rank of its groups) takes its hits
        # from the cards; False: PAGE reads them and checks the order (RANK_MISMATCHES)
        self.cards_ranked = True

    def reference(self, fresh_for: int | None) -> CatalogReference | None:
        """The filterable attributes and category names as the index knows them, when it is
        built and holds every commit before `fresh_for`; None: the caller reads them (SQL)."""
        if self.index is None or (fresh_for is not None and fresh_for > self.lsn):
            return None
        return self._reference

    # -- answering -----------------------------------------------------------------------

    async def search(self, query: SearchQuery, reader: Executor | None = None) -> SearchResult:
        """From the index when it is built, fresh enough and the query fits; else the SQL path."""
        index = self.index
        if index is None or (query.fresh_for is not None and query.fresh_for > self.lsn):
            return await self._sql(query, reader, "sql")
        listed = not query.facets
        if listed and (not self.lists or query.text.strip() or query.sort == "relevance"):
            return await self._sql(query, reader, "sql")
        check_after(query.sort, query.after)
        if reader is None:
            reader = await fresh_reader(self.reader, query.fresh_for)
        try:
            if listed:
                result = await self._list_from_index(index, query)
            else:
                result = await self._from_index(index, query, reader)
        except Unsupported:
            return await self._sql(query, reader, "sql")
        QUERIES.labels("bitmap_list" if listed else "bitmap").inc()
        return result

    async def _list_from_index(self, index: BitmapIndex, query: SearchQuery) -> SearchResult:
        """A product list's page: its rows and order from the index, its hits from the cards."""
        rows = index.match(query, None, None).rows
        return await self._page_from_cards(index, query, self._text_less_ids(index, query, rows))

    @staticmethod
    def _text_less_ids(index: BitmapIndex, query: SearchQuery, rows: BitMap) -> list[int]:
        """The page's ids (one more than the limit if any follow) of text-less `rows`."""
        limit = max(query.limit, 1)
        after = check_after(query.sort, query.after) if query.after is not None else None
        if query.sort == "relevance":  # every score 0: id order
            return _by_id_desc(rows, after, limit + 1)
        return index.page(query.sort, rows, after, limit + 1, index.within(query))

    async def _page_from_cards(
        self,
        index: BitmapIndex,
        query: SearchQuery,
        ids: list[int],
        scores: dict[int, float] | None = None,
    ) -> SearchResult:
        """The page of `ids` (in order, one more than the limit if any follow; `scores` by id
        for relevance with text, else every score is 0) with hits from the cards (those not kept
        yet read in one statement, through a reader as fresh as the index); only hits and
        next_after are set."""
        limit = max(query.limit, 1)
        shown = ids[:limit]
        lsn = self.lsn
        cards = await self.cards.cards(shown, lambda: fresh_reader(self.reader, lsn))
        if len(cards) != len(shown):
            raise Unsupported("a product of the page is gone")
        hits = [cards[pid] for pid in shown]
        if scores is not None:
            hits = [hit._replace(score=scores[hit.product_id]) for hit in hits]
        next_after: tuple[object, ...] | None = None
        if len(ids) > limit:
            last = shown[-1]
            if query.sort == "relevance":
                key: Any = 0.0 if scores is None else scores[last]
            else:
                key = index.cursor_key(query.sort, last)
            next_after = (query.sort, key, last)
        return SearchResult(
            hits=hits,
            facets=None,
            total=None,
            next_after=next_after,
            did_you_mean=None,
            backend="bitmap",
            images=True,
        )

    async def _sql(self, query: SearchQuery, reader: Executor | None, path: str) -> SearchResult:
        QUERIES.labels(path).inc()
        return await super().search(query, reader)

    async def _from_index(
        self, index: BitmapIndex, query: SearchQuery, reader: Executor
    ) -> SearchResult:
        text = query.text.strip()
        match: TextMatch | None = None
        text_set: BitMap | None = None
        literal_set: BitMap | None = None
        tiers: list[BitMap] = []
        correction: str | None = None
        ranking: tuple[str, str] | None = None  # (to_tsquery input, its normalised form)
        text_key: tuple[Any, ...] | None = None  # what decides `text_set`: its counts' key
        tiers_key: tuple[Any, ...] | None = None  # what decides `tiers`: their levels' key
        if text:
            if uses_operators(text):
                raise Unsupported("websearch syntax")
            words = await self.resolve(tokenize(text), reader)
            if not words:
                raise Unsupported("no words")
            sku_exact, sku_prefix = await self.match_skus(text, reader)
            if any(pid > MAX_PRODUCT_ID for pid in (*sku_exact, *sku_prefix)):
                raise Unsupported("product id past uint32")
            correction = did_you_mean(words)
            corrected = correction is not None
            match = TextMatch(
                literal=tsquery_text(words, corrected=False),
                web=text,
                corrected=tsquery_text(words, corrected=True) if corrected else None,
                literal_name=tsquery_text(words, corrected=False, weight="A"),
                corrected_name=tsquery_text(words, corrected=True, weight="A")
                if corrected
                else None,
                sku_exact=sku_exact,
                sku_prefix=sku_prefix,
            )
            literal_q, corrected_q, literal_name_q, corrected_name_q = await self._normalise(
                match, reader
            )
            text_key = (
                corrected_q if corrected_q is not None else literal_q,
                sku_exact,
                sku_prefix,
            )
            tiers_key = (literal_q, corrected_q, literal_name_q, corrected_name_q, *text_key[1:])
            if index.keep and tiers_key in index.texts:
                sets: TextSets = index.texts.get(tiers_key)
            else:
                sets = text_sets(
                    index, literal_q, corrected_q, literal_name_q, corrected_name_q,
                    sku_exact, sku_prefix,
                )  # fmt: skip
                if index.keep:
                    index.texts.put(tiers_key, sets, sets.size())
            literal_set, text_set, tiers = sets.literal, sets.text, sets.tiers
            ranking = (
                match.corrected or match.literal or "",
                (corrected_q if corrected_q is not None else literal_q) or "",
            )
            if not corrected:
                literal_set = None
        matched = index.match(query, text_set, literal_set)
        if (
            match is not None
            and (sku_exact or sku_prefix)
            and (BitMap(sku_exact) | BitMap(sku_prefix)) & matched.rows - index.documented
        ):
            raise Unsupported("a SKU match without a document: its score is NULL")
        if match is not None:
            # the text's lexemes: its base's counts may start from one's (BitmapIndex)
            normalised = text_key[0] if text_key is not None else None
            lexemes = matched_lexemes(index, all_operands(normalised)) if normalised else []
            facets = index.facet_counts(matched, text_key, lexemes)
        else:
            facets = index.text_less_facets(query, matched)
        limit = max(query.limit, 1)
        after = check_after(query.sort, query.after) if query.after is not None else None
        ranked: list[tuple[float, int]] | None = None
        if match is None:  # no scores to ask PostgreSQL for: the cards
            ids = self._text_less_ids(index, query, matched.rows)
            page = await self._page_from_cards(index, query, ids)
        elif (
            query.sort == "relevance"
            and (
                ranked := await self._ranked(
                    index, ranking, tiers, matched.rows, after, limit + 1, reader, tiers_key
                )
            )
            is not None
            and self.cards_ranked
        ):
            # ranked here with PostgreSQL's ts_rank of each group (search.bitmap_rank)
            scores = {pid: score for score, pid in ranked}
            ids = [pid for _, pid in ranked]
            page = await self._page_from_cards(index, query, ids, scores)
        else:
            records = await self._page_records(
                index, query, match, matched.rows, tiers, ranked, reader
            )
            page = self._page(query, records, limit, images=True)
        total = len(matched.rows)
        return SearchResult(
            hits=page.hits,
            facets=facets,
            total=total,
            next_after=page.next_after,
            did_you_mean=correction
            if matched.literal_total < DID_YOU_MEAN_BELOW and total > matched.literal_total
            else None,
            backend="bitmap",
            images=True,
        )

    async def _page_records(
        self,
        index: BitmapIndex,
        query: SearchQuery,
        match: TextMatch | None,
        rows: BitMap,
        tiers: list[BitMap],
        ranked: list[tuple[float, int]] | None,
        reader: Executor,
    ) -> Sequence[Any]:
        """The page's rows (one more than the limit if any follow) from one PAGE statement;
        `ranked`: a relevance page's (score, id) as the index ranked them (checked against
        PostgreSQL's), None: PostgreSQL ranks the best tiers' candidates."""
        limit = max(query.limit, 1)
        after = check_after(query.sort, query.after) if query.after is not None else None
        ids: list[int] = []
        expected: list[tuple[float, int]] | None = None
        candidates: Sequence[int] | BitMap
        if query.sort == "relevance":
            if ranked is None:
                candidates = _tier_candidates(tiers, rows, after, limit + 1)
            else:
                expected = ranked
                ids = candidates = [pid for _, pid in ranked]
        else:
            ids = index.page(query.sort, rows, after, limit + 1)
            candidates = ids
        if not candidates:
            return []
        arg = Arguments()
        parts = text_parts(match, arg)
        column, order, key_type, after_operator = SORT_KEYS[query.sort]
        keyset = ""
        if query.sort == "relevance" and match is not None and after is not None and not ids:
            keyset = (
                f"AND (score, id) {after_operator} ({arg(after[0], key_type)}, "
                f"{arg(after[1], 'bigint')})"
            )
        sql = PAGE.format(
            text_query=parts.query,
            score=parts.score,
            sort_column="" if query.sort == "relevance" else ", " + SORT_COLUMNS[query.sort],
            text_from=parts.source,
            ids=arg(list(candidates), "bigint[]"),
            # Not the match itself: PostgreSQL would scan the GIN index for it and intersect.
            # Only its SKU ids' placeholder, which every statement must use.
            match=" ".join(
                f"AND {placeholder} IS NOT NULL"
                for placeholder in re.findall(r"\$\d+::bigint\[\]", parts.match or "")
            ),
            key=column,
            after=keyset,
            order=order.format(t=""),
            # the page's own order, by the key's alias (relevance's key is the score: twice)
            sorted=order.format(t="").replace(column, "sort_key", 1),
            limit=arg(limit + 1, "integer"),
            first_image=FIRST_IMAGE,
        )
        records = await reader.fetch(sql, *arg.values)
        if ids and len(records) != len(ids):
            raise Unsupported("the page's products changed under the index")
        if expected is not None and [(r[7], r[0]) for r in records] != expected:
            RANK_MISMATCHES.inc()
            log.warning("search_index.rank_mismatch", text=query.text)
            raise Unsupported("ranked otherwise than PostgreSQL")
        return records

    async def _ranked(
        self,
        index: BitmapIndex,
        ranking: tuple[str, str] | None,
        tiers: list[BitMap],
        rows: BitMap,
        after: tuple[Any, int] | None,
        count: int,
        reader: Executor,
        tiers_key: Hashable = None,
    ) -> list[tuple[float, int]] | None:
        """The page's (score, id), ranked by groups of equal documents as ts_rank reads them
        (search.bitmap_rank); None when PostgreSQL must rank the candidates (too many groups).

        A tier's levels (its rank groups by score, over all its products) are kept on the index
        by `tiers_key` (they change only with documents; splitting costs one intersection per
        pattern of each lexeme, whatever the tier's size): a later query with the same text and
        any filters intersects them with its rows, best first, until the page is full."""
        if ranking is None:
            return None
        rank_input, normalised = ranking
        operands = or_operands(normalised)
        positional = operands is None  # an AND: ts_rank reads the distances between positions
        lexemes = matched_lexemes(index, operands or all_operands(normalised))
        cursor_tier = None if after is None else math.floor(after[0])
        out: list[tuple[float, int]] = []

        async def levels_of(tier_score: int, members: BitMap) -> Iterator[tuple[float, BitMap]]:
            """`members` by score, best first (made as read); Unsupported: too many groups."""
            split = groups(index, lexemes, members, positional=positional)
            ranks = await self._ranks(rank_input, split.signatures, reader, positional=positional)
            return split.levels([float(tier_score) + 0.99 * rank for rank in ranks])

        for position, (tier_score, tier) in enumerate(zip(TIER_SCORES, tiers, strict=True)):
            if cursor_tier is not None and tier_score > cursor_tier:
                continue
            kept: Levels | None = None
            if tiers_key is not None and index.keep:  # splitting costs by patterns, not size
                key = (ranking, tiers_key, position)
                if key not in index.tier_levels:
                    try:
                        made: Levels | None = list(await levels_of(tier_score, tier))
                    except Unsupported:
                        made = None  # rank its members query by query
                    ids = sum(len(group) for _, group in made or ())
                    index.tier_levels.put(key, made, ids)
                kept = index.tier_levels.get(key)
            if kept is not None:
                for score, group in kept:
                    if after is not None and score > after[0]:
                        continue
                    members = group & rows
                    if members:
                        take({score: members}, after, count, out)
                        if len(out) >= count:
                            return out
                continue
            members = tier & rows
            if not members:
                continue
            try:
                levels = await levels_of(tier_score, members)
            except Unsupported:
                return None
            for score, group in levels:  # the best levels only: the rest are never made
                take({score: group}, after, count, out)
                if len(out) >= count:
                    return out
        return out

    async def _ranks(
        self, rank_input: str, signatures: Sequence[Any], reader: Executor, *, positional: bool
    ) -> list[float]:
        """ts_rank of each group's synthetic document, from the cache or one statement."""
        ranks = [self._rank_cache.get(rank_input, signature) for signature in signatures]
        missing = [s for s, rank in zip(signatures, ranks, strict=True) if rank is None]
        if missing:
            found = await reader.fetchval(
                RANK_GROUPS,
                rank_input,
                [synthetic_document(s, positional=positional) for s in missing],
            )
            learnt = dict(zip(missing, found, strict=True))
            for signature, rank in learnt.items():
                self._rank_cache.put(rank_input, signature, rank)
            ranks = [learnt[s] if r is None else r for s, r in zip(signatures, ranks, strict=True)]
        return [float(r or 0.0) for r in ranks]

    async def _normalise(self, match: TextMatch, reader: Executor) -> tuple[str | None, ...]:
        """PostgreSQL's to_tsquery of the four inputs (stemmed, stop words gone), cached."""
        key = (match.literal, match.corrected, match.literal_name, match.corrected_name)
        cached = self._normalised.get(key)
        if cached is not None:
            self._normalised.move_to_end(key)
            return cached
        row = await reader.fetchrow(NORMALISE, *key)
        found = (row[0], row[1], row[2], row[3])
        self._normalised[key] = found
        while len(self._normalised) > NORMALISED_CACHED:
            self._normalised.popitem(last=False)
        return found

    # -- building and refreshing -------------------------------------------------------

    async def run(self) -> None:
        """Build the index, then apply the change log every refresh_seconds; forever.

        Survives any exception (logged, metered in REFRESH_ERRORS, retried); cancel to stop.
        """
        while not self.disabled:
            try:
                if self.index is None:
                    await self.build()
                else:
                    await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                REFRESH_ERRORS.inc()
                log.exception("search_index.refresh_failed", error=repr(exc))
                await asyncio.sleep(min(self.refresh_seconds * 10, 5.0))
            INDEX_LAG.set(time.monotonic() - self._caught_up)
            await asyncio.sleep(self.refresh_seconds)

    async def build(self) -> None:
        """Read the catalog from the primary (one snapshot, in chunks) into a new index."""
        started = time.perf_counter()
        rss_before = _rss_bytes()
        index = BitmapIndex(keep=self.keep)
        async with self.primary.acquire(timeout=10) as conn:
            collation = await conn.fetchval(COLLATION)
            if collation not in ("C", "C.UTF-8", "C.utf8", "POSIX"):
                # names and facet values sort by the collation: only C's order is Python's
                log.warning("search_index.disabled", reason="collation", collation=collation)
                self.disabled = True
                return
            images_logged = bool(await conn.fetchval(IMAGES_LOGGED))
            lsn = int(await conn.fetchval(GET_CURRENT_LSN))
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                position = int(await conn.fetchval(MAX_POSITION))
                await self._load_vocabulary(conn, index)
                index.set_bins([row[0] for row in await conn.fetch(PRICES)])
                max_id = int(await conn.fetchval(MAX_ID))
                if max_id > MAX_PRODUCT_ID:
                    log.warning("search_index.disabled", reason="product ids past uint32")
                    self.disabled = True
                    return
                for low in range(0, max_id + 1, BUILD_CHUNK):
                    await self._load_chunk(conn, index, low, low + BUILD_CHUNK)
                    await asyncio.sleep(0)
        index.make_orders()
        index.make_facet_slots()
        index.make_lexeme_counts()
        index.size_kept()
        # Rows just below the snapshot's last position may commit after it: read them again.
        self.position = max(position - CHANGES_BATCH, 0)
        self._seen = set()
        self._gaps = {}
        self.cards.clear()
        self.cards.size = CARDS_CACHED if images_logged else 0
        self.index = index
        self.lsn = lsn
        self._caught_up = time.monotonic()
        seconds = time.perf_counter() - started
        grown = _rss_bytes() - rss_before
        if self.freeze_after_build:
            _freeze_long_lived()
        INDEX_PRODUCTS.set(index.products())
        INDEX_BUILD_SECONDS.set(seconds)
        INDEX_MEMORY.set(grown)
        log.info(
            "search_index.built",
            products=index.products(),
            lexemes=len(index.lexemes),
            facets=len(index.facets),
            seconds=round(seconds, 2),
            rss_delta_mb=round(grown / 2**20, 1),
            bitmaps_mb=round(_bitmap_bytes(index) / 2**20, 1),
        )

    async def _load_vocabulary(self, conn: asyncpg.Connection, index: BitmapIndex) -> None:
        """The categories and filterable attributes: the index's vocabulary and the web's
        CatalogReference (the change log writes a row without a product when they change)."""
        rows = await conn.fetch(CATEGORIES)
        filterable = tuple(await filterable_attributes(conn))
        index.set_categories(Category(r["id"], r["slug"], tuple(r["path"])) for r in rows)
        index.filterable = frozenset(attribute.slug for attribute in filterable)
        index.forget_facets()
        self._reference = CatalogReference(
            attributes=filterable,
            category_names={r["id"]: {"slug": r["slug"], "name": r["name"]} for r in rows},
        )

    @staticmethod
    async def _load_chunk(
        conn: asyncpg.Connection, index: BitmapIndex, low: int, high: int
    ) -> None:
        for row in await conn.fetch(SCALARS, low, high):
            index.add_scalars(product_state(row))
        for lexeme, weights, positions, ids in await conn.fetch(POSTINGS, low, high):
            index.add_pattern(lexeme, weights, positions, ids)
        for facet, ids in await conn.fetch(FACET_POSTINGS, low, high):
            index.add_postings(index.facets, facet, ids)

    async def refresh(self) -> None:
        """Apply the change log's new rows: re-read those products (and the vocabulary)."""
        index = self.index
        assert index is not None
        async with self.primary.acquire(timeout=5) as conn:
            lsn = int(await conn.fetchval(GET_CURRENT_LSN))
            rows = await conn.fetch(CHANGES, self.position, CHANGES_BATCH)
            fresh = [r for r in rows if r["position"] not in self._seen]
            product_ids = sorted({r["product_id"] for r in fresh if r["product_id"] is not None})
            if any(r["product_id"] is None for r in fresh):
                await self._load_vocabulary(conn, index)
            changed = await conn.fetch(CHANGED_PRODUCTS, product_ids) if product_ids else []
            if time.monotonic() - self._pruned > 60:
                await conn.execute(PRUNE, float(PRUNE_SECONDS))
                self._pruned = time.monotonic()
        if any(pid > MAX_PRODUCT_ID for pid in product_ids):
            self.index = None
            raise RuntimeError("product ids past uint32: the index is off")
        self.cards.forget(product_ids)
        index.replace(
            product_ids,
            (
                product_state(
                    r,
                    facets=r["facets"],
                    lexemes=r["lexemes"],
                    weights=r["weights"],
                    positions=r["positions"],
                )
                for r in changed
            ),
        )
        self._advance([r["position"] for r in fresh])
        if len(rows) < CHANGES_BATCH:  # all read: every commit before `lsn` is in
            self.lsn = lsn
            self._caught_up = time.monotonic()
        INDEX_PRODUCTS.set(index.products())

    def _advance(self, positions: Sequence[int]) -> None:
        """Move `position` past every applied row and every gap given up (GAP_SECONDS)."""
        self._seen.update(positions)
        now = time.monotonic()
        top = max(self._seen, default=self.position)
        while self.position < top:
            following = self.position + 1
            if following in self._seen:
                self._seen.discard(following)
                self._gaps.pop(following, None)
            elif now - self._gaps.setdefault(following, now) > GAP_SECONDS:
                self._gaps.pop(following)
            else:
                break
            self.position = following


@dataclass(frozen=True)
class TextSets:
    """A query text's sets (none of them changed after: they may be kept and shared): `literal`
    the products its words match as typed, `text` with corrections and SKUs, `tiers` the score's
    tiers, best first (search.postgres_query SCORE and SKU_SCORE)."""

    literal: BitMap
    text: BitMap
    tiers: list[BitMap]

    def size(self) -> int:
        """About the product ids its bitmaps add to the index's: `text` and its tiers, which
        split it (`literal` is mostly a lexeme's own postings, not counted)."""
        return 2 * len(self.text)


def text_sets(
    index: BitmapIndex,
    literal_q: str | None,
    corrected_q: str | None,
    literal_name_q: str | None,
    corrected_name_q: str | None,
    sku_exact: Sequence[int],
    sku_prefix: Sequence[int],
) -> TextSets:
    """The sets of a text from its normalised tsqueries (PostgreSQL's to_tsquery of the literal
    and corrected words, anywhere and in the name) and its SKU matches."""
    literal_set = evaluate(index, literal_q)
    corrected_set = evaluate(index, corrected_q) if corrected_q is not None else literal_set
    exact, prefix = BitMap(sku_exact), BitMap(sku_prefix)
    skus = bool(exact or prefix)  # without: no copies of the (large) word sets
    text_set = corrected_set | exact | prefix if skus else corrected_set
    name_literal = evaluate(index, literal_name_q)
    name_corrected = evaluate(index, corrected_name_q) if corrected_name_q is not None else BitMap()
    words_tiers = [
        name_literal,
        literal_set - name_literal,
        name_corrected - literal_set - name_literal,
    ]
    prefix = prefix - exact
    tiers: list[BitMap] = []
    for sku in (exact, prefix, text_set - exact - prefix if skus else text_set):
        if not sku:
            tiers.extend(BitMap() for _ in range(len(words_tiers) + 1))
            continue
        for tier in words_tiers:
            tiers.append(sku & tier)
        tiers.append(sku - name_literal - literal_set - name_corrected)
    return TextSets(literal=literal_set, text=text_set, tiers=tiers)


def evaluate(index: BitmapIndex, tsquery: str | None) -> BitMap:
    """Products a normalised tsquery (to_tsquery's text output) matches; Unsupported for
    operators other than & and |."""
    if tsquery is None:
        return BitMap()
    tokens = parse(tsquery)
    if not tokens:
        return BitMap()  # only stop words: `@@` matches nothing
    position = 0

    def expression() -> BitMap:
        nonlocal position
        found = term()
        while position < len(tokens) and tokens[position] == "|":
            position += 1
            found = found | term()
        return found

    def term() -> BitMap:
        nonlocal position
        found = factor()
        while position < len(tokens) and tokens[position] == "&":
            position += 1
            found = found & factor()
        return found

    def factor() -> BitMap:
        nonlocal position
        part = tokens[position]
        position += 1
        if part == "(":
            found = expression()
            if position >= len(tokens) or tokens[position] != ")":
                raise Unsupported("tsquery")
            position += 1
            return found
        if isinstance(part, tuple):
            lexeme, prefix, name = part
            return index.lexeme_set(lexeme, prefix=prefix, name=name)
        raise Unsupported("tsquery")

    found = expression()
    if position != len(tokens):
        raise Unsupported("tsquery")
    return found


def _by_id_desc(rows: BitMap, after: tuple[Any, int] | None, count: int) -> list[int]:
    """Relevance without text: every score is 0, so id order; the cursor as SQL compares it."""
    end = len(rows)
    if after is not None:
        key, last_id = after
        if key < 0:
            return []
        if key == 0:
            end = rows.rank(last_id - 1) if last_id > 0 else 0
    return [rows[i] for i in range(end - 1, max(end - count, 0) - 1, -1)]


def _tier_candidates(
    tiers: list[BitMap], rows: BitMap, after: tuple[Any, int] | None, count: int
) -> BitMap:
    """The products PostgreSQL must rank for the page: the best tiers (scores tier + a rank
    below 1, so a tier never interleaves another), enough of them to fill it past the cursor."""
    # tiers are in descending score order: (10|5|0) + (3, 2, 1, 0)
    scores = [sku + tier for sku in (10, 5, 0) for tier in (3, 2, 1, 0)]
    cursor_tier = None if after is None else int(after[0] // 1)
    chosen = BitMap()
    gathered = 0
    for score, tier in zip(scores, tiers, strict=True):
        members = tier & rows
        if not members:
            continue
        if cursor_tier is not None and score > cursor_tier:
            continue
        chosen |= members
        if cursor_tier is None or score < cursor_tier:
            gathered += len(members)
        if gathered >= count:
            break
    return chosen


def _freeze_long_lived() -> None:
    """Move every object alive now (the index's, the app's) out of the collector's sight
    (gc.freeze): a full collection walked them all (~140,000 objects at 100,000 products: tens
    of ms with the event loop stopped, every few thousand requests, in a search's p99). Cyclic
    garbage among them is never freed; the index is made once per process."""
    gc.collect()
    gc.freeze()


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _bitmap_bytes(index: BitmapIndex) -> int:
    total = 0
    for postings in (index.lexemes, index.name_lexemes, index.facets):
        total += sum(len(b.serialize()) for b in postings.values())
    return total
