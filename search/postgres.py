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

The statements live in search.postgres_sql, SEARCH and LIST with build_search in
search.postgres_query, the text helpers in search.text.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from search.backend import (
    DID_YOU_MEAN_BELOW,
    PRICE_BUCKETS,
    SKU_PREFIX_MIN,
    Facets,
    FacetValue,
    SearchHit,
    SearchQuery,
    SearchResult,
    Suggestion,
    check_after,
    price_bucket_label,
    sku_lookup,
    suggest_prefix,
)
from search.postgres_query import TextMatch, build_search, is_list
from search.postgres_sql import MATCH_SKUS, REBUILD_TERMS, REMOVE_PRODUCT, RESOLVE_TERMS, SUGGEST
from search.text import (
    Word,
    closest,
    did_you_mean,
    prefix_end,
    tokenize,
    tsquery_text,
    uses_operators,
)
from storage import categories, products
from storage.catalog_reads import Thumbnail
from storage.database import Executor
from storage.replica import fresh_reader


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

    async def resolve(self, tokens: Sequence[str], reader: Executor | None = None) -> list[Word]:
        """The query's words with their completions (last word) and corrections (read through
        `reader`, else the backend's own)."""
        if not tokens:
            return []
        key = tuple(tokens)
        cached = self._terms.get(key)
        if cached is not None and cached[0] > time.monotonic():
            self._terms.move_to_end(key)
            return list(cached[1])
        rows = await (reader or self.reader).fetch(
            RESOLVE_TERMS, list(tokens), prefix_end(tokens[-1])
        )
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

    async def match_skus(
        self, text: str, reader: Executor | None = None
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Products with the text as a SKU, and with a SKU starting with it (SKU_PREFIX_MIN+).

        Only text that search.backend.sku_lookup takes for a SKU is looked up.
        """
        sku = sku_lookup(text)
        if sku is None:
            return (), ()
        end = prefix_end(sku) if len(sku) >= SKU_PREFIX_MIN else sku  # sku..sku: no prefixes
        row = await (reader or self.reader).fetchrow(MATCH_SKUS, sku, end)
        return tuple(row["exact"]), tuple(row["prefix"])

    async def search(self, query: SearchQuery, reader: Executor | None = None) -> SearchResult:
        """One page of published products with facets; raises InvalidCursor, CategoryNotFound.
        Every statement reads through `reader` (the caller's decision), else through one
        decision made here for `query.fresh_for`."""
        check_after(query.sort, query.after)
        if reader is None:
            reader = await fresh_reader(self.reader, query.fresh_for)
        text = query.text.strip()
        words: list[Word] = []
        match: TextMatch | None = None
        if text and uses_operators(text):
            match = TextMatch(literal=None, web=text)
        elif text:
            words = await self.resolve(tokenize(text), reader)
            sku_exact, sku_prefix = await self.match_skus(text, reader)
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
        limit = max(query.limit, 1)
        if is_list(query, match):
            page = self._page(query, await reader.fetch(sql, *args), limit, images=True)
            if not page.hits:
                await self._check_category(reader, query)
            return page
        row = await reader.fetchrow(sql, *args)
        records = row["hits"]
        page = self._page(query, records, limit)
        if not page.hits:
            await self._check_category(reader, query)
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

    @staticmethod
    async def _check_category(reader: Executor, query: SearchQuery) -> None:
        """Raise CategoryNotFound for an unknown `query.category`: its statement just found
        nothing, as it does for a known category with no matching products."""
        if query.category is not None:
            await categories.subtree_ids_by_slug(reader, query.category)

    def _page(
        self, query: SearchQuery, records: Sequence[Any], limit: int, *, images: bool = False
    ) -> SearchResult:
        """A page of hits from (hit fields..., sort key[, first image]) records, one more than
        `limit` if any follow; only hits and next_after are set (the facets are the caller's)."""
        if images:  # LIST: path, width, height, alt, renditions after the sort key
            hits = [listed_hit(record) for record in records[:limit]]
        else:
            hits = [SearchHit(*record[:8]) for record in records[:limit]]
        next_after: tuple[object, ...] | None = None
        if len(records) > limit:
            last_key = records[limit - 1][8]
            if isinstance(last_key, datetime):
                last_key = last_key.isoformat()
            next_after = (query.sort, last_key, hits[-1].product_id)
        return SearchResult(hits, None, None, next_after, None, self.name, images=images)

    async def suggest(self, prefix: str, limit: int = 8) -> list[Suggestion]:
        """Published products whose name matches the words typed so far (the last one a prefix)."""
        stripped = suggest_prefix(prefix)
        if stripped is None:
            return []
        prefix = stripped
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

    async def after_commit(self, product_id: int) -> None:
        """Nothing: the document is PostgreSQL's own, committed with index_product."""

    async def remove_product(self, product_id: int) -> None:
        """Clear one product's search document on the primary; idempotent."""
        await self.primary.execute(REMOVE_PRODUCT, product_id)

    async def rebuild_terms(self) -> int:
        """Make search_terms the words of the published products again; returns their number."""
        words: int = await self.primary.fetchval(REBUILD_TERMS)
        return words


def listed_hit(record: Any) -> SearchHit:
    """A LIST row: the hit's fields, its sort key, then its first image's columns (or NULLs)."""
    id_, slug, name, price_min, price_max, currency, in_stock, score = record[:8]
    image = Thumbnail(*record[9:14]) if record[9] is not None else None
    return SearchHit(id_, slug, name, price_min, price_max, currency, in_stock, score, image)


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
