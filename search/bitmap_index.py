"""The in-process search index: compressed bitmaps (pyroaring) of product ids, no I/O.

Per lexeme of the search documents (and per lexeme with weight A, the name), per attribute value
('slug=value' of products.search_facets), per category, per price bucket and price bin, in stock,
published; and per product its category, price, creation time and lower-cased name, so that a
query's matches, totals and disjunctive facet counts are set intersections, and the top page of a
sort other than relevance is found here too. search.bitmap fills it from PostgreSQL (the source
of truth) and keeps it current from the search_changes log; it asks PostgreSQL only for what the
index cannot say identically (the tsquery normalisation, ts_rank, the page's fields).

Per lexeme it also keeps what every text with the word shares, so that a text never seen before
(a long tail of shoppers' queries, or SEARCH_INDEX_KEEP=false) is cheap at a million products:
the facet counts of the lexemes in at least 1/LEXEME_SHARE of the products (a text's base then
counts only its differences from them) and, for the lexemes AND queries read lately, each
product's placement code (their rank groups without an intersection per placement).

Product ids are uint32 here (roaring bitmaps); search.bitmap does not use the index past that.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap

from search.backend import (
    FACET_VALUES_MAX,
    MISSING_PRICE_ASC,
    MISSING_PRICE_DESC,
    PRICE_BUCKETS,
    Facets,
    FacetValue,
    SearchQuery,
    price_bucket_label,
)
from search.bitmap_facets import (
    Counted,
    CountsMemo,
    FacetSlots,
    KeptCounts,
    tally_values,
)
from search.bitmap_sort import SortOrder, make_order

MAX_PRODUCT_ID = 2**32 - 1
NO_PRICE = -1  # products.price_min is NULL (no variants yet); prices are >= 0 by CHECK
NO_CATEGORY = -1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Price bins: a price range filter is the union of the bins inside it plus the edges' products
# checked one by one, so a bin holds about products / PRICE_BINS of them.
PRICE_BINS = 256
# Facet counts of a set of at most 1/SPARSE of the products read each of its products' facets
# (search.bitmap_facets); larger sets intersect bitmaps, whose cost does not grow with the set.
SPARSE = 25
# The facet counts of a query's base this large (and at least 1/KEEP_FROM of the products) are
# kept while the index changes (search.bitmap_facets.CountsMemo): the next query with the same
# text and in-stock filter, whatever its other filters, starts from them.
KEEP_FROM = 1_000
KEEP_MIN = 1_000
# A lexeme whose postings hold at least 1/LEXEME_SHARE of the products has the facet counts of
# its published products (and of those in stock) in the index: a text base made mostly of such
# lexemes' products counts only the differences, when they cost less than 1/LEXEME_APART of
# counting the base (BitmapIndex._by_lexeme).
LEXEME_SHARE = 100
LEXEME_APART = 2
# Product ids in placement codes (BitmapIndex.placement_codes; 6 bytes each: ~24 MB): the
# lexemes of the last few dozen two-word queries' at a million products.
PLACEMENT_IDS = 4_000_000
# Category ids below this count from a uint32 array (category_code_of), else from category_of.
CATEGORY_CODE_MAX = 2**31
# A page of rows within some categories, fewer than 1/WITHIN_SHARE of the products, starts from
# each category's ranks in the sort (kept per sort and category), not from the whole order.
WITHIN_SHARE = 4


class Unsupported(Exception):
    """The index cannot answer this identically: the caller takes the SQL path."""


def micros(moment: datetime) -> int:
    """A timestamptz as microseconds since the epoch (exact, as PostgreSQL keeps it)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


@dataclass
class ProductState:
    """What the index keeps of one product (a row of search.bitmap's PRODUCTS statements)."""

    id: int
    is_published: bool
    category_id: int | None
    price_min: int | None
    in_stock: bool
    created_us: int
    name_key: str
    facets: Sequence[str] = ()
    lexemes: Sequence[str] = ()
    weights: Sequence[str] = ()  # per lexeme, its positions' weights in order ("AC")
    positions: Sequence[str] = ()  # per lexeme, its positions with weights ("1A,9C")
    documented: bool = True  # search_vector IS NOT NULL (NULL: ts_rank is NULL, sorted first)
    fingerprint: int = 0  # a hash of the document and facets: the same, no posting changes


@dataclass
class Category:
    id: int
    slug: str
    path: tuple[int, ...]


@dataclass
class Matched:
    """A query's sets: `rows` the hits' set, `bases` each facet's set (its own filter ignored),
    `base` the set before any filter (published, text, in stock), `text` the products the text
    matches (None: no text), `in_stock` the query's in-stock filter."""

    base: BitMap
    rows: BitMap
    literal_total: int
    category_base: BitMap
    price_base: BitMap
    attribute_bases: dict[str, BitMap]
    text: BitMap | None = None
    in_stock: bool | None = None


@dataclass
class BitmapIndex:
    """The bitmaps and per-product arrays; see the module docstring."""

    lexemes: dict[str, BitMap] = field(default_factory=dict)
    # lexeme -> the weights of its positions in order ("ABC") -> products: what ts_rank reads
    patterns: dict[str, dict[str, BitMap]] = field(default_factory=dict)
    # lexeme -> its positions with their weights ("1A,9C") -> products: ts_rank of an AND query
    placements: dict[str, dict[str, BitMap]] = field(default_factory=dict)
    name_lexemes: dict[str, BitMap] = field(default_factory=dict)
    facets: dict[str, BitMap] = field(default_factory=dict)
    categories: dict[int, BitMap] = field(default_factory=dict)
    buckets: list[BitMap] = field(default_factory=lambda: [BitMap() for _ in PRICE_BUCKETS])
    bins: list[BitMap] = field(default_factory=list)
    bin_lows: list[int] = field(default_factory=list)
    in_stock: BitMap = field(default_factory=BitMap)
    published: BitMap = field(default_factory=BitMap)
    known: BitMap = field(default_factory=BitMap)  # every product the index holds
    documented: BitMap = field(default_factory=BitMap)  # those with a search_vector
    # Per product id (arrays, not dicts: a tenth of the memory at a million products).
    category_of: array[int] = field(default_factory=lambda: array("q"))
    price_of: array[int] = field(default_factory=lambda: array("q"))
    # the same, small for the counts of sparse sets (a gather reads a quarter of the memory):
    # category id + 1 (0: none; ids past CATEGORY_CODE_MAX count from category_of) and the price
    # bucket + 1 (0: no price)
    category_code_of: array[int] = field(default_factory=lambda: array("I"))
    bucket_of: array[int] = field(default_factory=lambda: array("B"))
    _wide_categories: bool = False  # a category id past CATEGORY_CODE_MAX was seen
    created_of: array[int] = field(default_factory=lambda: array("q"))
    fingerprint_of: array[int] = field(default_factory=lambda: array("q"))
    name_of: list[str] = field(default_factory=list)
    tree: dict[str, Category] = field(default_factory=dict)  # by slug
    filterable: frozenset[str] = frozenset()
    keep: bool = True  # worth_keeping may say yes (False: nothing is kept between searches)
    # the thresholds above (SPARSE, KEEP_MIN, KEEP_FROM, WITHIN_SHARE), per index: a test
    # sends every query one way
    sparse: int = SPARSE
    keep_min: int = KEEP_MIN
    keep_from: int = KEEP_FROM
    within_share: int = WITHIN_SHARE
    lexeme_share: int = LEXEME_SHARE
    lexeme_apart: int = LEXEME_APART
    _sorted_lexemes: list[str] | None = None
    _sorted_name_lexemes: list[str] | None = None
    _subtrees: dict[str, BitMap] = field(default_factory=dict)
    _subtree_ids: dict[str, list[int]] = field(default_factory=dict)  # by slug: its categories
    # per category, a number that changes when its products do (a page's kept ranks: SortOrder)
    _category_versions: dict[int, int] = field(default_factory=dict)
    # per product, its facets as codes (search.bitmap_facets): the counts of sparse sets
    facet_slots: FacetSlots = field(default_factory=FacetSlots)
    # the filterable facets' (value, bitmap, 'slug=value') by attribute, in slug order, for the
    # filterable set it was made for (facet_counts; None: a facet came or went)
    _facet_plan: tuple[frozenset[str], list[tuple[str, list[FacetEntry]]]] | None = None
    # each sort's order of the known products (search.bitmap_sort), made by make_orders or the
    # first page of the sort, kept by replace
    _orders: dict[str, SortOrder] = field(default_factory=dict)
    # text-less facet counts by filters, for the index as it is (forget_facets: any change)
    _facets_memo: dict[tuple[Any, ...], Facets] = field(default_factory=dict)
    # the facet counts of large text bases, kept through changes (replace moves them)
    _kept_counts: CountsMemo = field(default_factory=CountsMemo)
    # the facet counts of the dense lexemes' published products, by (lexeme, in-stock filter
    # None or True): part of the index (make_lexeme_counts), not of any query; replace moves
    # them, and forgets (to be made again when read) those of a lexeme a changed document had
    # or has
    _lexeme_counts: CountsMemo = field(default_factory=lambda: CountsMemo(LEXEME_COUNTS))
    # What depends on documents only, kept until one changes (KeptSets): per query text, its
    # sets (search.bitmap's TextSets); per text and score tier, its products in rank groups,
    # best first (Levels: relevance pages)
    texts: KeptSets = field(default_factory=lambda: KeptSets())
    tier_levels: KeptSets = field(default_factory=lambda: KeptSets())
    # per lexeme, its postings (sorted ids) and the code of each one's placement (1 + its
    # position in placements[lexeme]): the rank groups of AND queries (search.bitmap_rank), made
    # when first read, at most placement_ids ids in all (least recently read out); a changed
    # document drops those of the lexemes it had or has
    _placement_codes: OrderedDict[str, PlacementCodes] = field(default_factory=OrderedDict)
    placement_ids: int = PLACEMENT_IDS

    # -- filling -------------------------------------------------------------------------

    def set_categories(self, rows: Iterable[Category]) -> None:
        self.tree = {row.slug: row for row in rows}
        self._subtrees.clear()
        self._subtree_ids.clear()
        self.forget_facets()

    def forget_facets(self) -> None:
        """The index changed (products, categories, the filterable attributes): count again."""
        self._facets_memo.clear()
        self._kept_counts.clear()
        self._lexeme_counts.clear()

    def set_bins(self, prices: Sequence[int]) -> None:
        """Bin boundaries from the prices' quantiles (sorted, NO_PRICE left out)."""
        lows = {0}
        if prices:
            step = max(len(prices) // PRICE_BINS, 1)
            lows.update(prices[i] for i in range(0, len(prices), step))
        self.bin_lows = sorted(lows)
        self.bins = [BitMap() for _ in self.bin_lows]

    def add_postings(self, postings: dict[str, BitMap], lexeme: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        bitmap = postings.get(lexeme)
        if bitmap is None:
            postings[lexeme] = BitMap(ids)
            self._sorted_lexemes = self._sorted_name_lexemes = None
            self._facet_plan = None
        else:
            bitmap.update(ids)

    def add_pattern(self, lexeme: str, weights: str, positions: str, ids: Sequence[int]) -> None:
        """Products whose document has the lexeme at these positions of these weights."""
        if not ids:
            return
        for patterns, key in ((self.patterns, weights), (self.placements, positions)):
            by_key = patterns.setdefault(lexeme, {})
            found = by_key.get(key)
            if found is None:
                by_key[key] = BitMap(ids)
            else:
                found.update(ids)
        self.add_postings(self.lexemes, lexeme, ids)
        if "A" in weights:
            self.add_postings(self.name_lexemes, lexeme, ids)

    def add_scalars(self, product: ProductState) -> None:
        """A product's published/stock/category/price/sort keys (not its postings)."""
        pid = product.id
        self.known.add(pid)
        if product.documented:
            self.documented.add(pid)
        if product.is_published:
            self.published.add(pid)
        if product.in_stock:
            self.in_stock.add(pid)
        self._make_room(pid)
        category = NO_CATEGORY if product.category_id is None else product.category_id
        self.category_of[pid] = category
        if category >= CATEGORY_CODE_MAX:
            self._wide_categories = True
        self.category_code_of[pid] = category + 1 if 0 <= category < CATEGORY_CODE_MAX else 0
        if category != NO_CATEGORY:
            self.categories.setdefault(category, BitMap()).add(pid)
            self._subtrees.clear()
            self._category_versions[category] = self._category_versions.get(category, 0) + 1
        price = NO_PRICE if product.price_min is None else product.price_min
        self.price_of[pid] = price
        self.bucket_of[pid] = 0 if price == NO_PRICE else _bucket(price) + 1
        if price != NO_PRICE:
            self.buckets[_bucket(price)].add(pid)
            self.bins[bisect.bisect_right(self.bin_lows, price) - 1].add(pid)
        self.created_of[pid] = product.created_us
        self.fingerprint_of[pid] = product.fingerprint
        self.name_of[pid] = product.name_key

    def _make_room(self, pid: int) -> None:
        """Grow the per-product arrays to hold `pid` (by half again, so growing is rare)."""
        if pid < len(self.price_of):
            return
        more = max(pid + 1, len(self.price_of) * 3 // 2) - len(self.price_of)
        self.category_of.extend([NO_CATEGORY] * more)
        self.price_of.extend([NO_PRICE] * more)
        self.category_code_of.extend([0] * more)
        self.bucket_of.extend([0] * more)
        self.created_of.extend([0] * more)
        self.fingerprint_of.extend([0] * more)
        self.name_of.extend([""] * more)
        self.facet_slots.grow(len(self.price_of))

    def remove(self, ids: BitMap, documents: BitMap | None = None) -> None:
        """Forget these products everywhere (before their new state is added); from the
        postings only `documents` of them (default: all): that visits every posting."""
        if documents is None or documents:
            self._remove_documents(ids if documents is None else documents)
        for pid in ids & self.known:
            category = self.category_of[pid]
            if category != NO_CATEGORY:
                self.categories[category].discard(pid)
                self._subtrees.clear()
                self._category_versions[category] = self._category_versions.get(category, 0) + 1
            price = self.price_of[pid]
            if price != NO_PRICE:
                self.buckets[_bucket(price)].discard(pid)
                self.bins[bisect.bisect_right(self.bin_lows, price) - 1].discard(pid)
            self.category_of[pid] = NO_CATEGORY
            self.price_of[pid] = NO_PRICE
            self.category_code_of[pid] = self.bucket_of[pid] = 0
            self.name_of[pid] = ""
        for bitmap in (self.in_stock, self.published, self.known, self.documented):
            bitmap.difference_update(ids)

    def _remove_documents(self, ids: BitMap) -> None:
        for pid in ids:
            self.facet_slots.clear(pid)
        for patterns in (self.patterns, self.placements):
            for lexeme in list(patterns):
                by_key = patterns[lexeme]
                for key in list(by_key):
                    by_key[key].difference_update(ids)
                    if not by_key[key]:
                        del by_key[key]
                if not by_key:
                    del patterns[lexeme]
        for postings in (self.lexemes, self.name_lexemes, self.facets):
            empty = []
            for key, bitmap in postings.items():
                bitmap.difference_update(ids)
                if not bitmap:
                    empty.append(key)
            for key in empty:
                del postings[key]
            if empty:
                self._sorted_lexemes = self._sorted_name_lexemes = None
                self._facet_plan = None

    def replace(self, ids: Sequence[int], products: Iterable[ProductState]) -> None:
        """The new state of `ids`: those without a row in `products` are gone. A product whose
        document and facets are unchanged (a stock or price change) keeps its postings."""
        rows = list(products)
        self._facets_memo.clear()
        keys_before = self._sort_keys(ids)
        same = BitMap(
            p.id
            for p in rows
            if p.id in self.known and p.fingerprint and self.fingerprint_of[p.id] == p.fingerprint
        )
        changed = BitMap(ids)
        touched = changed - same
        if touched:  # documents or facets changed, products came or went: texts too
            self._kept_counts.clear()
            self.texts.clear()
            self.tier_levels.clear()
            self._lexeme_counts.drop_touching(touched)  # the lexemes they had
            self._drop_placement_codes(touched)
        counted_before: dict[int, Counted] = {}
        if len(self._kept_counts) or len(self._lexeme_counts):
            counted_before = {pid: self._counted(pid) for pid in same}
        self.remove(changed, touched)
        for product in rows:
            self.add_scalars(product)
            if product.id in same:
                continue
            for lexeme, weights, positions in zip(
                product.lexemes, product.weights, product.positions, strict=True
            ):
                self.add_pattern(lexeme, weights, positions, (product.id,))
            for facet in product.facets:
                self.add_postings(self.facets, facet, (product.id,))
            self.facet_slots.set(product.id, product.facets)
        if touched:
            self._lexeme_counts.drop_touching(touched)  # the lexemes they have
            self._drop_placement_codes(touched)
        for pid, before in counted_before.items():
            after, codes = self._counted(pid), self.facet_slots.of(pid)
            self._kept_counts.move(pid, before, after, codes)
            self._lexeme_counts.move(pid, before, after, codes)
        self._reorder(ids, keys_before)

    def _counted(self, pid: int) -> Counted:
        price = self.price_of[pid]
        return Counted(
            published=pid in self.published,
            in_stock=pid in self.in_stock,
            category=self.category_of[pid],
            bucket=None if price == NO_PRICE else _bucket(price),
        )

    def _sort_keys(self, ids: Sequence[int]) -> dict[str, list[Any]]:
        """Per kept sort order, the sort key of each of `ids` (None: not in the index)."""
        known = self.known
        keys: dict[str, list[Any]] = {}
        for sort in self._orders:
            key = self.sort_key(sort)
            keys[sort] = [key(pid) if pid in known else None for pid in ids]
        return keys

    def _reorder(self, ids: Sequence[int], keys_before: dict[str, list[Any]]) -> None:
        """Move the products of `ids` whose sort key changed (or that came or went) in each kept
        sort order."""
        known = self.known
        for sort, before in keys_before.items():
            key = self.sort_key(sort)
            moved = [
                pid
                for pid, old in zip(ids, before, strict=True)
                if (old is None) != (pid not in known) or (old is not None and key(pid) != old)
            ]
            self._orders[sort].merge(moved, known, key, len(self.price_of))

    def size_kept(self) -> None:
        """Size what is kept between searches by the catalog's size (after a build)."""
        self.texts.size = self.tier_levels.size = max(
            KEPT_IDS, KEPT_IDS_PER_PRODUCT * len(self.known)
        )

    def make_facet_slots(self) -> None:
        """Every product's facet codes (after a build; replace keeps them)."""
        self.facet_slots.make(self.facets, len(self.price_of))

    def make_lexeme_counts(self) -> None:
        """The facet counts of every dense lexeme (after a build and make_facet_slots)."""
        if not self.facet_slots.ready:  # _by_lexeme would not read them
            return
        for lexeme, postings in self.lexemes.items():
            if self._dense_lexeme(postings):
                for in_stock in (None, True):
                    self._lexeme_count(lexeme, postings, in_stock)

    def placement_codes(self, lexeme: str) -> PlacementCodes | None:
        """A lexeme's postings and each one's placement code (None: no such lexeme)."""
        found = self._placement_codes.get(lexeme)
        if found is not None:
            self._placement_codes.move_to_end(lexeme)
            return found
        postings, placements = self.lexemes.get(lexeme), self.placements.get(lexeme)
        if postings is None or placements is None:
            return None
        ids = np.frombuffer(postings.to_array(), dtype=np.uint32)
        codes = np.zeros(len(ids), dtype=np.uint16 if len(placements) < 65_535 else np.uint32)
        for code, bitmap in enumerate(placements.values(), start=1):
            codes[np.searchsorted(ids, np.frombuffer(bitmap.to_array(), dtype=np.uint32))] = code
        found = PlacementCodes(ids, codes, list(placements))
        self._placement_codes[lexeme] = found
        held = sum(len(kept.ids) for kept in self._placement_codes.values())
        while held > max(self.placement_ids, len(found.ids)):
            held -= len(self._placement_codes.popitem(last=False)[1].ids)
        return found

    def _drop_placement_codes(self, products: BitMap) -> None:
        """Forget the placement codes of the lexemes any of `products` has (documents changed)."""
        for lexeme in list(self._placement_codes):
            postings = self.lexemes.get(lexeme)
            if postings is None or postings.intersect(products):
                del self._placement_codes[lexeme]

    def make_orders(self) -> None:
        """Every sort's order of the products (after a build: the first pages need not wait)."""
        for sort in SORT_ORDERS:
            self._order(sort)

    def _order(self, sort: str) -> SortOrder:
        order = self._orders.get(sort)
        if order is None:
            ids = np.frombuffer(self.known.to_array(), dtype=np.uint32)
            made = make_order(
                sort,
                ids,
                np.frombuffer(self.price_of, dtype=np.int64),
                np.frombuffer(self.created_of, dtype=np.int64),
                self.name_of,
                MISSING_PRICE_ASC,
            )
            order = self._orders[sort] = SortOrder(made, len(self.price_of))
        return order

    # -- reading -------------------------------------------------------------------------

    def products(self) -> int:
        return len(self.known)

    def lexeme_set(self, lexeme: str, *, prefix: bool, name: bool) -> BitMap:
        """Products whose document has the lexeme (or one starting with it), in the name only
        with `name` (weight A), as `@@` of a to_tsquery operand decides."""
        postings = self.name_lexemes if name else self.lexemes
        if not prefix:
            found = postings.get(lexeme)
            return found if found is not None else BitMap()
        keys = self._keys(name)
        start = bisect.bisect_left(keys, lexeme)
        matched = []
        for key in keys[start:]:
            if not key.startswith(lexeme):
                break
            matched.append(postings[key])
        return BitMap.union(*matched) if matched else BitMap()

    def _keys(self, name: bool) -> list[str]:
        if name:
            if self._sorted_name_lexemes is None:
                self._sorted_name_lexemes = sorted(self.name_lexemes)
            return self._sorted_name_lexemes
        if self._sorted_lexemes is None:
            self._sorted_lexemes = sorted(self.lexemes)
        return self._sorted_lexemes

    def subtree(self, slug: str) -> BitMap:
        """Products of the category and its descendants (cached until the tree or a product's
        category changes); Unsupported for a slug the index does not know."""
        cached = self._subtrees.get(slug)
        if cached is not None:
            return cached
        root = self.tree.get(slug)
        if root is None:
            raise Unsupported("unknown category")  # SQL decides: new, or really unknown
        ids = [c.id for c in self.tree.values() if root.id in c.path]
        found = self.in_categories(ids)
        self._subtrees[slug] = found
        self._subtree_ids[slug] = ids
        return found

    def within(self, query: SearchQuery) -> list[int] | None:
        """The categories whose products hold every row of the query (None: any category)."""
        if query.category is not None:
            self.subtree(query.category)
            return self._subtree_ids[query.category]
        if query.category_ids is not None:
            return list(query.category_ids)
        return None

    def in_categories(self, ids: Iterable[int]) -> BitMap:
        sets = [self.categories[i] for i in ids if i in self.categories]
        return BitMap.union(*sets) if sets else BitMap()

    def price_range(self, low: int | None, high: int | None) -> BitMap:
        """Products with low <= price_min <= high (either bound open); no price never matches."""
        first = 0 if low is None else max(bisect.bisect_right(self.bin_lows, low) - 1, 0)
        last = len(self.bins) - 1
        if high is not None:
            if high < 0:
                return BitMap()
            last = bisect.bisect_right(self.bin_lows, high) - 1
        whole: list[BitMap] = []
        edges: list[BitMap] = []
        for position in range(first, last + 1):
            bin_low = self.bin_lows[position]
            bin_end = self.bin_lows[position + 1] if position + 1 < len(self.bin_lows) else None
            inside = (low is None or bin_low >= low) and (
                high is None or (bin_end is not None and bin_end - 1 <= high)
            )
            (whole if inside else edges).append(self.bins[position])
        found = BitMap.union(*whole) if whole else BitMap()
        if edges:  # their products one by one, in numpy (a bin holds products / PRICE_BINS)
            price_of = np.frombuffer(self.price_of, dtype=np.int64)
            for edge in edges:
                ids = np.frombuffer(edge.to_array(), dtype=np.uint32)
                prices = price_of[ids]
                kept = np.ones(len(ids), dtype=bool)
                if low is not None:
                    kept &= prices >= low
                if high is not None:
                    kept &= prices <= high
                found.update(array("I", ids[kept].tobytes()))
            del price_of  # the array may grow again (no buffer held)
        return found

    def match(
        self,
        query: SearchQuery,
        text: BitMap | None,
        literal: BitMap | None,
    ) -> Matched:
        """The query's sets. `text`: products its text matches (None: no text); `literal`: of
        those, the ones matching without typo corrections (None: all of them)."""
        base = self.published if text is None else self.published & text
        if query.in_stock is True:
            base = base & self.in_stock
        elif query.in_stock is False:
            base = base - self.in_stock
        filters: list[tuple[str, BitMap]] = []
        categories = self._categories(query)
        if categories is not None:
            if text is None:  # as the SQL path: a restriction, not a facet filter
                base = base & categories
            else:
                filters.append((":category", categories))
        if query.price_min is not None or query.price_max is not None:
            filters.append((":price", self.price_range(query.price_min, query.price_max)))
        for slug, values in sorted(query.attributes.items()):
            if values:
                sets = [self.facets[f"{slug}={v}"] for v in values if f"{slug}={v}" in self.facets]
                filters.append((slug, BitMap.union(*sets) if sets else BitMap()))
        rows = base
        for _, bitmap in filters:
            rows = rows & bitmap
        bases: dict[str, BitMap] = {}
        for name, _ in filters:
            if name in bases:
                continue
            without = base
            for other, bitmap in filters:
                if other != name:
                    without = without & bitmap
            bases[name] = without
        return Matched(
            base=base,
            rows=rows,
            literal_total=len(rows) if literal is None else rows.intersection_cardinality(literal),
            category_base=bases.get(":category", rows),
            price_base=bases.get(":price", rows),
            attribute_bases={k: v for k, v in bases.items() if not k.startswith(":")},
            text=text,
            in_stock=query.in_stock,
        )

    def _categories(self, query: SearchQuery) -> BitMap | None:
        if query.category is not None:
            return self.subtree(query.category)
        if query.category_ids is not None:
            return self.in_categories(query.category_ids)
        return None

    def facet_counts(
        self,
        matched: Matched,
        text_key: Hashable | None = None,
        lexemes: Sequence[str] = (),
    ) -> Facets:
        """Disjunctive counts, ordered as search.postgres_query's SEARCH orders them.

        Each part counts over its base: when the base is the query's whole base, from its kept
        counts (`text_key`: its text, kept by it and the in-stock filter) or from a lexeme's of
        the text (`lexemes`: the index's lexemes its operands match) and the difference;
        else from the base's products when it is sparse, else by bitmap intersections."""
        whole = matched.base
        made: list[KeptCounts | None] = []  # the whole base's counts, made when first read

        def whole_counts(base: BitMap) -> KeptCounts | None:
            if base is not whole:
                return None
            if not made:
                kept = self._kept(matched, text_key, lexemes) if text_key is not None else None
                made.append(kept if kept is not None else self._by_lexeme(matched, lexemes))
            return made[0]

        arrays: dict[int, npt.NDArray[np.uint32] | None] = {}  # by id(base): made once

        def sparse_ids(base: BitMap) -> npt.NDArray[np.uint32] | None:
            if id(base) not in arrays:
                arrays[id(base)] = self._ids_if_sparse(base)
            return arrays[id(base)]

        base = matched.category_base
        if (kept := whole_counts(base)) is not None:
            counted = kept.category_items()
        else:
            counted = self._category_counts(base, sparse_ids(base))
        categories = [FacetValue(category, count) for category, count in counted]
        categories.sort(key=_by_count)
        attributes: dict[str, list[FacetValue]] = {}
        rows, bases = matched.rows, matched.attribute_bases
        tallies: dict[int, Any] = {}  # by id(base)
        codes = self.facet_slots.codes
        for slug, values in self._facets_by_attribute():
            base = bases.get(slug, rows)
            kept = whole_counts(base)
            tally = kept.codes if kept is not None else tallies.get(id(base))
            if tally is None and (ids := sparse_ids(base)) is not None:
                tally = tallies[id(base)] = self.facet_slots.tally(base, ids)
            if tally is not None:
                by_value = [
                    (-count, value)
                    for value, _, facet in values
                    if (code := codes.get(facet, -2) + 1) < len(tally)
                    and (count := int(tally[code]))
                ]
            else:
                by_value = [
                    (-count, value)
                    for value, bitmap, _ in values
                    if (count := bitmap.intersection_cardinality(base))
                ]
            if by_value:
                by_value.sort()
                attributes[slug] = [FacetValue(v, -n) for n, v in by_value[:FACET_VALUES_MAX]]
        base = matched.price_base
        if (kept := whole_counts(base)) is not None:
            in_buckets = kept.buckets
        else:
            in_buckets = self._bucket_counts(base, sparse_ids(base))
        price_ranges = [
            FacetValue(label, count) for count, label in zip(in_buckets, BUCKET_LABELS, strict=True)
        ]
        return Facets(categories=categories, attributes=attributes, price_ranges=price_ranges)

    def _ids_if_sparse(self, base: BitMap) -> npt.NDArray[np.uint32] | None:
        """The ids of a base its products count faster than the bitmaps do, else None."""
        if self.facet_slots.ready and len(base) * self.sparse <= len(self.known):
            return np.frombuffer(base.to_array(), dtype=np.uint32)
        return None

    def _category_counts(
        self, base: BitMap, ids: npt.NDArray[np.uint32] | None
    ) -> list[tuple[int, int]]:
        if ids is not None:
            if self._wide_categories:
                return tally_values(np.take(np.frombuffer(self.category_of, np.int64), ids))
            codes = np.bincount(np.take(np.frombuffer(self.category_code_of, np.uint32), ids))
            present = np.flatnonzero(codes[1:])  # category ids (code - 1)
            return list(zip(present.tolist(), codes[present + 1].tolist(), strict=True))
        return [
            (category, count)
            for category, bitmap in self.categories.items()
            if (count := bitmap.intersection_cardinality(base))
        ]

    def _bucket_counts(self, base: BitMap, ids: npt.NDArray[np.uint32] | None) -> list[int]:
        if ids is not None:
            buckets = np.take(np.frombuffer(self.bucket_of, np.uint8), ids)
            counted: list[int] = np.bincount(buckets, minlength=len(self.buckets) + 1)[1:].tolist()
            return counted
        return [bucket.intersection_cardinality(base) for bucket in self.buckets]

    def worth_keeping(self, products: int) -> bool:
        """Whether what was worked out for a set of this many products is worth keeping: its
        making costs more than a look-up (keep_min, keep_from)."""
        return self.keep and products >= max(self.keep_min, len(self.known) // self.keep_from)

    def _kept(
        self, matched: Matched, text_key: Hashable, lexemes: Sequence[str] = ()
    ) -> KeptCounts | None:
        """The kept counts of the query's whole base, made when it is large; None: count."""
        whole = matched.base
        if matched.text is None or not self.facet_slots.ready or not self.worth_keeping(len(whole)):
            return None
        key = (text_key, matched.in_stock)
        kept = self._kept_counts.get(key)
        if kept is None:
            kept = self._by_lexeme(matched, lexemes)
            if kept is None:
                kept = self._counts_of(whole, matched.text, matched.in_stock)
            self._kept_counts.put(key, kept)
        return kept

    def _counts_of(self, products: BitMap, text: BitMap, in_stock: bool | None) -> KeptCounts:
        """Every facet count of `products` (labelled with `text` and `in_stock`)."""
        ids = self._ids_if_sparse(products)
        if ids is not None:
            codes = self.facet_slots.tally(products, ids)
        else:
            codes = np.zeros(len(self.facet_slots.codes) + 1, dtype=np.intp)
            for facet, code in self.facet_slots.codes.items():
                bitmap = self.facets.get(facet)
                if bitmap is not None:
                    codes[code + 1] = bitmap.intersection_cardinality(products)
        return KeptCounts(
            text=text,
            in_stock=in_stock,
            categories=dict(self._category_counts(products, ids)),
            codes=codes,
            buckets=self._bucket_counts(products, ids),
        )

    def _dense_lexeme(self, postings: BitMap) -> bool:
        return len(postings) * self.lexeme_share >= len(self.known) > 0

    def _by_lexeme(self, matched: Matched, lexemes: Sequence[str]) -> KeptCounts | None:
        """The counts of the query's whole base from the kept counts of dense lexemes of its
        text (`lexemes`): each chosen lexeme's published products (with the in-stock filter)
        less those outside the base and those of the base an earlier chosen one has, plus the
        base's products none of them has. Lexemes are chosen, those with most of the base
        first, when what they leave out costs less to count than what they bring; None when
        counting the base itself costs less (see _cost)."""
        text, base = matched.text, matched.base
        if text is None or not base or not self.facet_slots.ready:
            return None
        candidates = []
        for lexeme in dict.fromkeys(lexemes):
            postings = self.lexemes.get(lexeme)
            if postings is not None and self._dense_lexeme(postings):
                inside = postings.intersection_cardinality(text)
                if inside:
                    candidates.append((-inside, lexeme, postings))
        candidates.sort()
        in_stock = matched.in_stock
        covered = BitMap()  # the base's products a chosen lexeme has (never changed in place)
        chosen: list[tuple[str, BitMap, BitMap, int]] = []  # (lexeme, postings, before, outside)
        for minus_inside, lexeme, postings in candidates:
            within = base if -minus_inside == len(text) else base & postings  # all: the base
            before = within & covered if covered else covered
            outside = len(postings) + minus_inside  # at most: published, in-stock ones left
            if (outside + len(before)) * self.lexeme_apart < len(within) - len(before):
                chosen.append((lexeme, postings, before, outside))
                covered = covered | within if covered else within
        if not chosen:
            return None
        rest = BitMap() if covered is base else base - covered
        leaving = [
            self._stocked((p - text) & self.published, in_stock) if outside else BitMap()
            for _, p, _, outside in chosen
        ]
        spent = sum(self._cost(len(s)) for s in leaving) + self._cost(len(rest))
        spent += sum(self._cost(len(before)) for _, _, before, _ in chosen)
        if spent * self.lexeme_apart >= self._cost(len(base)) and self.lexeme_apart:
            return None
        kept = [self._lexeme_kept(lexeme, p, in_stock) for lexeme, p, _, _ in chosen]
        less = [s for _, _, s, _ in chosen if s] + [s for s in leaving if s]
        return kept[0].shifted(
            [self._counts_of(s, text, in_stock) for s in less],
            [*kept[1:], *([self._counts_of(rest, text, in_stock)] if rest else [])],
            text,
            in_stock,
        )

    def _cost(self, products: int) -> int:
        """What counting a set of this many products costs, in products read: itself when
        sparse, else the bitmaps' cost (that of the largest sparse set, about)."""
        dense = len(self.known) // max(self.sparse, 1)
        return products if products <= dense else dense

    def _lexeme_kept(self, lexeme: str, postings: BitMap, in_stock: bool | None) -> KeptCounts:
        """A dense lexeme's counts with an in-stock filter (False: all less those in stock)."""
        if in_stock is False:
            every = self._lexeme_count(lexeme, postings, None)
            return every.shifted([self._lexeme_count(lexeme, postings, True)], [], postings, False)
        return self._lexeme_count(lexeme, postings, in_stock)

    def _lexeme_count(self, lexeme: str, postings: BitMap, in_stock: bool | None) -> KeptCounts:
        """The facet counts of a lexeme's published products (`in_stock`: None or True)."""
        key = (lexeme, in_stock)
        kept = self._lexeme_counts.get(key)
        if kept is None or kept.text is not postings:
            products = self._stocked(postings & self.published, in_stock)
            kept = self._counts_of(products, postings, in_stock)
            self._lexeme_counts.put(key, kept)
        return kept

    def _stocked(self, products: BitMap, in_stock: bool | None) -> BitMap:
        """`products` passing an in-stock filter."""
        if in_stock is True:
            return products & self.in_stock
        if in_stock is False:
            return products - self.in_stock
        return products

    def text_less_facets(self, query: SearchQuery, matched: Matched) -> Facets:
        """facet_counts of a query without text (`matched` its sets), kept by its filters until
        the index changes: a category page's counts are the same for every visitor and sort."""
        key = (
            query.category,
            query.category_ids,
            tuple(sorted((slug, tuple(values)) for slug, values in query.attributes.items())),
            query.price_min,
            query.price_max,
            query.in_stock,
        )
        found = self._facets_memo.get(key)
        if found is None:
            found = self.facet_counts(matched)
            if len(self._facets_memo) >= FACETS_KEPT:
                self._facets_memo.clear()
            self._facets_memo[key] = found
        return found

    def _facets_by_attribute(self) -> list[tuple[str, list[FacetEntry]]]:
        """The filterable attributes' (value, bitmap, facet) by slug, in slug order; made again
        when a facet comes or goes or the filterable set changes (the bitmaps change in place)."""
        plan = self._facet_plan
        if plan is not None and plan[0] is self.filterable:
            return plan[1]
        by_slug: dict[str, list[FacetEntry]] = {}
        for facet, bitmap in self.facets.items():
            slug, _, value = facet.partition("=")
            if slug in self.filterable:
                by_slug.setdefault(slug, []).append((value, bitmap, facet))
        made = [(slug, by_slug[slug]) for slug in sorted(by_slug)]
        self._facet_plan = (self.filterable, made)
        return made

    def sort_key(self, sort: str) -> Any:
        """The key function of a sort other than relevance, smallest first, as (key, id) pairs
        compare in SQL (descending sorts negated)."""
        price_of, created_of, name_of = self.price_of, self.created_of, self.name_of
        if sort == "price_asc":
            return lambda pid: (
                MISSING_PRICE_ASC if price_of[pid] == NO_PRICE else price_of[pid],
                pid,
            )
        if sort == "price_desc":
            return lambda pid: (-price_of[pid], -pid)
        if sort == "newest":
            return lambda pid: (-created_of[pid], -pid)
        if sort == "name":
            return lambda pid: (name_of[pid], pid)
        raise Unsupported(sort)

    def cursor_key(self, sort: str, pid: int) -> Any:
        """The key a page ending at `pid` carries in its cursor, as the SQL path's LIST reads it
        (search.postgres_query SORT_COLUMNS; a time as its ISO text)."""
        price = self.price_of[pid]
        if sort == "price_asc":
            return MISSING_PRICE_ASC if price == NO_PRICE else price
        if sort == "price_desc":
            return MISSING_PRICE_DESC if price == NO_PRICE else price
        if sort == "newest":
            return (EPOCH + timedelta(microseconds=self.created_of[pid])).isoformat()
        if sort == "name":
            return self.name_of[pid]
        raise Unsupported(sort)

    def page(
        self,
        sort: str,
        rows: BitMap,
        after: tuple[Any, int] | None,
        count: int,
        within: Sequence[int] | None = None,
    ) -> list[int]:
        """The first `count` ids of `rows` in `sort` order after the cursor's (key, id);
        `within`: categories whose products hold every row (their ranks are kept per sort)."""
        key = self.sort_key(sort)
        bound = _cursor_key(sort, after) if after is not None else None
        order = self._order(sort)
        if len(order.order) == len(self.known):  # it holds every product (replace keeps it so)
            if within is not None and len(rows) * self.within_share < len(self.known):
                parts = [
                    (category, self._category_versions.get(category, 0), self.categories[category])
                    for category in within
                    if category in self.categories
                ]
                found = order.page_within(key, rows, bound, count, parts)
                if found is not None:
                    return found
            return order.page(key, rows, bound, count)
        candidates: Iterable[int] = rows
        if bound is not None:
            candidates = (pid for pid in rows if key(pid) > bound)
        return heapq.nsmallest(count, candidates, key=key)


Levels = list[tuple[float, BitMap]]  # (score, products) best first


@dataclass
class PlacementCodes:
    """A lexeme's products (sorted) and, for each, 1 + the position of its placement."""

    ids: npt.NDArray[np.uint32]
    codes: npt.NDArray[Any]  # uint16, or uint32 past 65,534 placements
    placements: list[str]


class KeptSets:
    """What was worked out from product sets, by key, while it holds at most `size` product ids
    in all (its bitmaps' sizes), the least recently used forgotten first."""

    def __init__(self, size: int = 0) -> None:
        self.size = size or KEPT_IDS
        self._kept: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._ids = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kept

    def get(self, key: Hashable) -> Any:
        value, _ = self._kept[key]
        self._kept.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any, ids: int) -> None:
        if key in self._kept:
            self._ids -= self._kept.pop(key)[1]
        self._kept[key] = (value, ids)
        self._ids += ids
        while self._ids > self.size and len(self._kept) > 1:
            self._ids -= self._kept.popitem(last=False)[1][1]

    def clear(self) -> None:
        self._kept.clear()
        self._ids = 0


def _by_count(value: FacetValue) -> tuple[int, Any]:
    return -value.count, value.value


FACETS_KEPT = 4096  # text-less facet counts kept (filter sets); then counted afresh
# Product ids in kept text sets, and in kept rank levels (each): 16 per product of the catalog,
# 4,000,000 at least (~2 bytes each: ~32 MB each at a million products, when full)
KEPT_IDS = 4_000_000
KEPT_IDS_PER_PRODUCT = 16
# (lexeme, in-stock filter) facet counts kept: 2 per dense lexeme, of which there are at most
# 2 * LEXEME_SHARE times a document's lexemes on average (~1,600 at a million seeded products);
# past this the least recently read are made again
LEXEME_COUNTS = 4096
SORT_ORDERS = ("price_asc", "price_desc", "newest", "name")
BUCKET_LABELS = [price_bucket_label(low, high) for low, high in PRICE_BUCKETS]
FacetEntry = tuple[str, BitMap, str]  # (value, its products, 'slug=value')


def _cursor_key(sort: str, after: tuple[Any, int]) -> tuple[Any, int]:
    """A cursor's (key, id) in sort_key's terms; Unsupported when SQL would read it otherwise."""
    key, last_id = after
    if sort == "price_asc":
        return key, last_id
    if sort == "price_desc":
        return -key, -last_id
    if sort == "newest":
        moment = datetime.fromisoformat(key)
        if moment.tzinfo is None:  # PostgreSQL would read it in its session's time zone
            raise Unsupported("cursor without a time zone")
        return -micros(moment), -last_id
    return key, last_id


def _bucket(price: int) -> int:
    """PRICE_BUCKETS position of a price >= 0 (width_bucket - 1)."""
    for position, (_, high) in enumerate(PRICE_BUCKETS):
        if high is None or price < high:
            return position
    raise AssertionError("the last bucket is open")
