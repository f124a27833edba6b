"""Each product's facet values as small integer codes (numpy), so the facet counts of a *sparse*
set of products are one gather and one bincount instead of an intersection per value.

Counting with the bitmaps costs (values) x (the set's size) when the set is sparse: a roaring
intersection of an array container with a bitmap container looks up each of the set's products,
once per value. At a million products a search word matching ~10,000 of them paid that for ~66
attribute values and ~41 categories: ~2 ms of a 3 ms search. Here the same counts read each
matched product once: its facet codes (inline per product as many as the product with most
facets has, FACET_SLOTS to FACET_SLOTS_MAX, more in a small overflow), its category and its
price bucket, then count them (np.bincount). Dense sets (a large share of the catalog) stay with
the bitmaps, whose cost does not grow with the set's size.

KeptCounts are the counts of one set kept while the index changes: a query text's base
(CountsMemo, SEARCH_INDEX_KEEP) or a dense lexeme's (search.bitmap_index, always); the counts of
a set B follow from a kept set K's as counts(K) - counts(K - B) + counts(B - K)
(KeptCounts.shifted), so a new text mostly made of common words counts only the differences.

Codes are given on first sight and never reused (a facet that goes keeps its code; a new one
takes the next): a code past CODES_MAX turns this off and the bitmaps count everything.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap

# Codes kept inline per product: as many as the product with most facets has when made, at
# least FACET_SLOTS and at most FACET_SLOTS_MAX (the seeded catalog: 9 at most, 4.6 on average);
# a product with more spills to the overflow, whose counting is a loop in Python (slow: ~1 ms for
# a thousand spilled products, when 8 slots spilled the seeded catalog's 9-facet products)
FACET_SLOTS = 8
FACET_SLOTS_MAX = 12
EMPTY = 0  # an unused slot; a facet's code is stored plus one
CODES_MAX = int(np.iinfo(np.uint16).max) - 1
KEPT_QUERIES = 512  # CountsMemo's size: queries whose facet counts are kept

Ids = npt.NDArray[np.uint32]


class FacetSlots:
    """Per product id, the codes of its facets (module docstring)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}  # facet ('slug=value') -> code
        self.slots: npt.NDArray[np.uint16] = np.zeros((0, FACET_SLOTS), dtype=np.uint16)
        self.overflow: dict[int, tuple[int, ...]] = {}  # more than fit the slots: every code
        self.overflowed = BitMap()
        self.ready = False  # made (make) and every code fits

    def make(self, facets: dict[str, BitMap], capacity: int) -> None:
        """Every product's codes from the facets' bitmaps (after a build)."""
        self.codes.clear()
        self.overflow.clear()
        self.overflowed = BitMap()
        self.slots = np.zeros((capacity, FACET_SLOTS), dtype=np.uint16)
        if len(facets) > CODES_MAX:
            self.ready = False
            return
        filled = np.zeros(capacity, dtype=np.uint16)  # per product: its facets
        for bitmap in facets.values():
            filled[np.frombuffer(bitmap.to_array(), dtype=np.uint32)] += 1
        width = min(max(int(filled.max(initial=0)), FACET_SLOTS), FACET_SLOTS_MAX)
        self.slots = np.zeros((capacity, width), dtype=np.uint16)
        filled[:] = 0  # per product: its slots taken so far
        for code, (facet, bitmap) in enumerate(facets.items()):  # one facet at a time: small
            self.codes[facet] = code
            ids = np.frombuffer(bitmap.to_array(), dtype=np.uint32)
            slot = np.take(filled, ids)
            inline = slot < width
            self.slots[ids[inline], slot[inline]] = code + 1
            filled[ids] += 1
        spilled = BitMap(np.flatnonzero(filled > width).astype(np.uint32))
        if spilled:  # their codes from the bitmaps, in code order as above
            codes: dict[int, list[int]] = {pid: [] for pid in spilled}
            for facet, bitmap in facets.items():
                for pid in bitmap & spilled:
                    codes[pid].append(self.codes[facet])
            for pid, found in codes.items():
                self._spill(pid, tuple(found))
        self.ready = True

    def grow(self, capacity: int) -> None:
        if capacity > len(self.slots):
            grown = np.zeros((capacity, self.width), dtype=np.uint16)
            grown[: len(self.slots)] = self.slots
            self.slots = grown

    def set(self, pid: int, facets: Iterable[str]) -> None:
        """A product's facets now (after a change; made first, else nothing to keep)."""
        if not self.ready:
            return
        codes = []
        for facet in dict.fromkeys(facets):
            code = self.codes.get(facet)
            if code is None:
                if len(self.codes) >= CODES_MAX:
                    self.ready = False  # the bitmaps count from now on
                    return
                code = self.codes[facet] = len(self.codes)
            codes.append(code)
        self.clear(pid)
        if len(codes) > self.width:
            self._spill(pid, tuple(codes))
        else:
            self.slots[pid, : len(codes)] = [code + 1 for code in codes]

    @property
    def width(self) -> int:
        """Codes inline per product."""
        return int(self.slots.shape[1])

    def of(self, pid: int) -> tuple[int, ...]:
        """A product's codes."""
        found = self.overflow.get(pid)
        if found is not None:
            return found
        return tuple(int(stored) - 1 for stored in self.slots[pid] if stored != EMPTY)

    def clear(self, pid: int) -> None:
        if pid < len(self.slots):
            self.slots[pid] = EMPTY
        if self.overflow.pop(pid, None) is not None:
            self.overflowed.discard(pid)

    def _spill(self, pid: int, codes: tuple[int, ...]) -> None:
        self.slots[pid] = EMPTY
        self.overflow[pid] = codes
        self.overflowed.add(pid)

    def tally(self, base: BitMap, ids: Ids) -> npt.NDArray[np.intp]:
        """How many of `base` (its ids: `ids`) have each facet: position code + 1."""
        stored = np.take(self.slots, ids, axis=0).ravel()
        # cast first: bincount's own cast of uint16 costs half as much again
        counts = np.bincount(stored.astype(np.intp), minlength=len(self.codes) + 1)
        if self.overflow and (spilled := base & self.overflowed):
            extra = itertools.chain.from_iterable(self.overflow[pid] for pid in spilled)
            counts += np.bincount(np.fromiter(extra, dtype=np.intp) + 1, minlength=len(counts))
        return counts


def tally_values(values: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """(value, count) of the non-negative `values` (categories by id), in value order."""
    values = values[values >= 0]
    if not values.size:
        return []
    if int(values.max()) < BINCOUNT_MAX:
        counts = np.bincount(values)
        present = np.flatnonzero(counts)
        return list(zip(present.tolist(), counts[present].tolist(), strict=True))
    found, counts = np.unique(values, return_counts=True)
    return list(zip(found.tolist(), counts.tolist(), strict=True))


BINCOUNT_MAX = 1 << 20  # category ids below this are counted by bincount, else by np.unique


@dataclass
class Counted:
    """A product's part in facet counts: whether it is counted and where."""

    published: bool
    in_stock: bool
    category: int  # NO_CATEGORY: none
    bucket: int | None  # None: no price


@dataclass
class KeptCounts:
    """The facet counts of one query's base (its published products matching `text`, with its
    in-stock filter), kept while the index changes: each changed product leaves the counts as it
    was and enters them as it is (CountsMemo.move)."""

    text: BitMap
    in_stock: bool | None
    categories: dict[int, int]
    codes: npt.NDArray[np.intp]  # per facet code + 1
    buckets: list[int]

    def holds(self, state: Counted) -> bool:
        return state.published and (self.in_stock is None or state.in_stock == self.in_stock)

    def add(self, state: Counted, codes: Sequence[int], step: int) -> None:
        if state.category >= 0:
            count = self.categories.get(state.category, 0) + step
            if count:
                self.categories[state.category] = count
            else:
                self.categories.pop(state.category, None)
        for code in codes:
            if code + 1 < len(self.codes):
                self.codes[code + 1] += step
        if state.bucket is not None:
            self.buckets[state.bucket] += step

    def category_items(self) -> list[tuple[int, int]]:
        return list(self.categories.items())

    def shifted(
        self,
        leaving: Sequence[KeptCounts],
        entering: Sequence[KeptCounts],
        text: BitMap,
        in_stock: bool | None,
    ) -> KeptCounts:
        """New counts: these less each of `leaving` plus each of `entering` (the counts of a
        set K are those of a set B once K - B leaves and B - K enters), labelled with `text`
        and `in_stock`."""
        categories = dict(self.categories)
        codes = self.codes.copy()
        buckets = list(self.buckets)
        for part, step in itertools.chain(
            ((part, -1) for part in leaving), ((part, 1) for part in entering)
        ):
            for category, count in part.categories.items():
                categories[category] = categories.get(category, 0) + step * count
            if len(part.codes) > len(codes):  # a facet new since: none of these had it
                codes = np.concatenate([codes, np.zeros(len(part.codes) - len(codes), np.intp)])
            codes[: len(part.codes)] += step * part.codes
            buckets = [a + step * b for a, b in zip(buckets, part.buckets, strict=True)]
        return KeptCounts(
            text=text,
            in_stock=in_stock,
            categories={category: count for category, count in categories.items() if count},
            codes=codes,
            buckets=buckets,
        )


class CountsMemo:
    """KeptCounts by query (its text's key and in-stock filter), at most KEPT_QUERIES, the
    least recently used forgotten first. Only the counts of large bases are worth keeping:
    counting a small one afresh costs little."""

    def __init__(self, size: int = KEPT_QUERIES) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, KeptCounts] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Hashable) -> KeptCounts | None:
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: Hashable, counts: KeptCounts) -> None:
        self._kept[key] = counts
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()

    def drop_touching(self, products: BitMap) -> None:
        """Forget the counts whose text holds any of `products` (their documents changed)."""
        for key in [key for key, kept in self._kept.items() if kept.text.intersect(products)]:
            del self._kept[key]

    def move(self, pid: int, before: Counted, after: Counted, codes: Sequence[int]) -> None:
        """A product whose documents and facets are unchanged changed state: each kept count
        whose text it matches takes it out as it was and in as it is."""
        for kept in self._kept.values():
            if pid in kept.text:
                if kept.holds(before):
                    kept.add(before, codes, -1)
                if kept.holds(after):
                    kept.add(after, codes, 1)
