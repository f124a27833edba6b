"""The index's products in each sort's order (numpy arrays), so a page is a gather and a partial
sort of ranks instead of a Python key per matching row.

A SortOrder holds every product the index knows, ordered by the sort's (key, id) as
search.bitmap_index.BitmapIndex.sort_key compares them, and each product's rank in that order. A
page of a set of rows: their ranks (one gather), those past the cursor's rank (one bisect over
the order), the `count` smallest (np.partition), mapped back to ids. The order is made once
(numpy's lexsort for the numeric keys, a stable Python sort for names) and kept by `merge`: the
products whose key changed leave it and come back at their new places (np.insert), O(products)
in numpy per refreshed batch, nothing when only stock or documents changed.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap

NOT_RANKED = np.iinfo(np.int32).max  # a product id not in the order (unknown to the index)

WINDOW_MIN = 64  # order positions a walk reads at least at once
WITHIN_TRIES = 4  # page_within: the candidates per part grow 4x each try, then the general way
WALK_WINDOWS = 1  # then the rows' ranks: they sit later in the order than their number says

Key = Callable[[Any], Any]


class SortOrder:
    """One sort's order of the index's products and their ranks (module docstring)."""

    def __init__(self, order: npt.NDArray[np.uint32], capacity: int) -> None:
        self.order = order
        self.rank = np.full(capacity, NOT_RANKED, dtype=np.int32)
        self.rank[order] = np.arange(len(order), dtype=np.int32)
        # per part (a category) and its version: its products' ranks, ascending (page_within;
        # merge forgets them all: ranks move)
        self._parts: dict[Hashable, tuple[int, npt.NDArray[np.int32]]] = {}

    def page_within(
        self,
        key: Key,
        rows: BitMap,
        bound: Any,
        count: int,
        parts: Sequence[tuple[Hashable, int, BitMap]],
    ) -> list[int] | None:
        """page() of `rows` that lie within `parts` (a category's (id, version, products)):
        the next few of each part's ranks past the cursor, merged, kept while in `rows`; as
        far as every part is known, more from each part until the page is full. None: the
        rows are too few among the parts' products (page() answers)."""
        start = 0
        if bound is not None:
            start = bisect.bisect_right(self.order, bound, key=_on_int(key))
        ranked = [self._ranks(part, version, products) for part, version, products in parts]
        heads = [ranks[np.searchsorted(ranks, start) :] for ranks in ranked]
        take = count
        for _ in range(WITHIN_TRIES):
            shown = [head[:take] for head in heads]
            full = [part[-1] for part in shown if len(part) == take]
            candidates = np.sort(np.concatenate(shown)) if shown else np.empty(0, np.int32)
            if full:  # past the lowest last rank shown, a part may have more not shown
                candidates = candidates[candidates <= min(full)]
            ids = np.take(self.order, candidates).tolist()
            found = [pid for pid in ids if pid in rows]
            if len(found) >= count or not full:
                return found[:count]
            take *= 4
        return None

    def _ranks(self, part: Hashable, version: int, products: BitMap) -> npt.NDArray[np.int32]:
        kept = self._parts.get(part)
        if kept is not None and kept[0] == version:
            return kept[1]
        ranks = np.take(self.rank, np.frombuffer(products.to_array(), dtype=np.uint32))
        ranks = np.sort(ranks[ranks < len(self.order)])
        self._parts[part] = (version, ranks)
        return ranks

    def page(self, key: Key, rows: BitMap, bound: Any, count: int) -> list[int]:
        """The first `count` of `rows` (every one of them in the order) whose key is past
        `bound` (None: from the start), in order.

        Many rows (a category, the whole catalog): walk the order from the cursor a few windows
        sized to find the page in the first, keeping the rows met. Few rows (a rare filter), or
        rows the walk did not meet soon (they sit late in the order): the smallest of their
        ranks past where the walk stopped."""
        start = 0
        if bound is not None:
            # keys increase along the order: the first place whose key is past the bound
            start = bisect.bisect_right(self.order, bound, key=_on_int(key))
        found: list[int] = []
        window = count * len(self.order) // max(len(rows), 1) * 3 + WINDOW_MIN
        if window * 4 < len(rows):
            start = self._walk(rows, start, count, window, found)
            if len(found) >= count or start >= len(self.order):
                return found
        # np.take: a gather by uint32 ids without fancy indexing's conversion of them
        ranks = np.take(self.rank, np.frombuffer(rows.to_array(), dtype=np.uint32))
        if start:
            ranks = ranks[ranks >= start]
        wanted = count - len(found)
        if ranks.size > wanted:
            # the smallest `wanted`: among those close after the first (a few compares), not
            # a partition of all of them
            low, span = int(ranks.min()), window
            while (near := ranks[ranks < low + span]).size < wanted:
                span *= 4
            ranks = np.partition(near, wanted - 1)[:wanted] if near.size > wanted else near
        ranks.sort()
        found.extend(np.take(self.order, ranks).tolist())
        return found

    def _walk(self, rows: BitMap, start: int, count: int, window: int, found: list[int]) -> int:
        """Add to `found` the rows met along the order from `start`, in order, for at most
        WALK_WINDOWS windows (each twice the last) or until `count`; where it stopped."""
        order, rank = self.order, self.rank
        for _ in range(WALK_WINDOWS):
            if start >= len(order) or len(found) >= count:
                break
            met = BitMap(array("I", order[start : start + window].tobytes())) & rows
            if met:
                ranks = np.take(rank, np.frombuffer(met.to_array(), dtype=np.uint32))
                ranks.sort()
                found.extend(np.take(order, ranks[: count - len(found)]).tolist())
            start += window
            window *= 2
        return start

    def merge(self, moved: Sequence[int], present: BitMap, key: Key, capacity: int) -> None:
        """`moved` (products whose key changed, or that came or went) at their new places:
        those still `present` are put back where `key` sorts them."""
        if not moved:
            return
        moved_ids = np.array(moved, dtype=np.uint32)
        inside = moved_ids[moved_ids < len(self.rank)]
        places = self.rank[inside]
        clean = np.delete(self.order, places[places != NOT_RANKED])
        back = sorted((pid for pid in moved if pid in present), key=key)
        on_int = _on_int(key)
        where = [bisect.bisect_left(clean, key(pid), key=on_int) for pid in back]
        # equal places keep the order given (np.insert sorts the places stably)
        self.order = np.insert(clean, where, np.array(back, dtype=np.uint32))
        self._parts.clear()
        if capacity > len(self.rank):
            self.rank = np.full(capacity, NOT_RANKED, dtype=np.int32)
        else:
            self.rank.fill(NOT_RANKED)
        self.rank[self.order] = np.arange(len(self.order), dtype=np.int32)


def _on_int(key: Key) -> Key:
    """`key` of a numpy id (as a Python int: `-pid` of a uint32 would wrap)."""
    return lambda pid: key(int(pid))


def make_order(
    sort: str,
    ids: npt.NDArray[np.uint32],
    prices: npt.NDArray[np.int64],
    created: npt.NDArray[np.int64],
    names: Sequence[str],
    missing_price: int,
) -> npt.NDArray[np.uint32]:
    """`ids` (ascending) in `sort`'s (key, id) order; prices, created: per id (all of them),
    prices with the index's NO_PRICE (-1), which price_asc sorts as `missing_price`."""
    signed = ids.astype(np.int64)
    if sort == "price_asc":
        chosen = prices[ids]
        keys = np.where(chosen < 0, missing_price, chosen)
        return ids[np.lexsort((signed, keys))]
    if sort == "price_desc":
        return ids[np.lexsort((-signed, -prices[ids]))]
    if sort == "newest":
        return ids[np.lexsort((-signed, -created[ids]))]
    if sort == "name":
        # ids ascending and a stable sort by name: (name, id)
        return np.array(sorted(ids.tolist(), key=names.__getitem__), dtype=np.uint32)
    raise ValueError(sort)
